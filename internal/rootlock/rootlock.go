// Package rootlock makes sure only one nfsd serves a --root at a time.
//
// Two servers on one tree would each trust their own view of usage, the
// volume table and the intent log, and undo each other's work. The lock is
// flock(2) on ROOT/state/nfsd.lock, held through an open descriptor for the
// process's life: the kernel drops it when the process dies however it
// dies (kill -9 included), so a crash never leaves a stale lock behind and
// no pid file needs second-guessing. The file's contents only describe the
// holder (pid, addresses) so that the refused server can name it.
package rootlock

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// FileName is the lock file's name in the state directory.
const FileName = "nfsd.lock"

// Holder describes the server holding the lock.
type Holder struct {
	PID     int               `json:"pid"`
	Started time.Time         `json:"started"`
	Addrs   map[string]string `json:"addrs,omitempty"` // "nfs", "admin", ... -> address
}

func (h Holder) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pid %d", h.PID)
	if !h.Started.IsZero() {
		fmt.Fprintf(&b, ", started %s", h.Started.UTC().Format(time.RFC3339))
	}
	for _, k := range []string{"nfs", "portmap", "admin", "metrics"} {
		if a := h.Addrs[k]; a != "" {
			fmt.Fprintf(&b, ", %s %s", k, a)
		}
	}
	return b.String()
}

// Lock is a held root lock.
type Lock struct {
	f      *os.File
	holder Holder
}

// ErrHeld is wrapped by Acquire's error when another process holds the lock.
var ErrHeld = errors.New("root is in use by another nfsd")

// Acquire takes the lock of the tree whose state directory is stateDir
// (created if missing), or fails at once, naming the holder, if another
// process has it.
func Acquire(stateDir string) (*Lock, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(stateDir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("root lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			who := "another process"
			if b, rerr := os.ReadFile(path); rerr == nil {
				var h Holder
				if json.Unmarshal(b, &h) == nil && h.PID > 0 {
					who = "nfsd " + h.String()
				}
			}
			return nil, fmt.Errorf("%w: %s holds %s; stop it first (two servers on one tree would corrupt its usage and volume table)", ErrHeld, who, path)
		}
		return nil, fmt.Errorf("root lock %s: %w", path, err)
	}
	l := &Lock{f: f, holder: Holder{PID: os.Getpid(), Started: time.Now()}}
	if err := l.write(); err != nil {
		l.Release()
		return nil, err
	}
	return l, nil
}

// Record adds an address (kind "nfs", "admin", ...) to what the lock file
// says about this server. Empty addresses are ignored.
func (l *Lock) Record(kind, addr string) error {
	if addr == "" {
		return nil
	}
	if l.holder.Addrs == nil {
		l.holder.Addrs = map[string]string{}
	}
	l.holder.Addrs[kind] = addr
	return l.write()
}

// write replaces the file's contents in place: the lock lives on this
// inode, so it cannot be replaced by rename. A reader racing a write may
// see a partial record and then names "another process" instead.
func (l *Lock) write() error {
	b, err := json.Marshal(l.holder)
	if err != nil {
		return err
	}
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("root lock: %w", err)
	}
	if _, err := l.f.WriteAt(append(b, '\n'), 0); err != nil {
		return fmt.Errorf("root lock: %w", err)
	}
	return nil
}

// Release drops the lock. The file stays: removing it would let a server
// that opened it just before lock a file nobody else can find.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
