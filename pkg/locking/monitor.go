package locking

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rwxnfs/rwxnfs/internal/atomicfile"
)

// The monitor list. NFS locks live only in memory; what survives a
// restart is the list of client hosts that held them, so that the server
// can tell each one (SM_NOTIFY) to reclaim its locks. On disk:
//
//	StateDir/state          the server's NSM state number, in decimal
//	StateDir/sm/<hash>.json one record per monitored client host
//
// Every file is written atomically (temporary file, fsync, rename, fsync
// of the directory). A client is recorded before its first lock is
// granted, so a crash can never leave a lock holder unrecorded.

type monRecord struct {
	Name       string `json:"name"`                 // caller_name
	Addr       string `json:"addr"`                 // where to send SM_NOTIFY
	ServerAddr string `json:"serverAddr,omitempty"` // the address it reached us on
	State      int32  `json:"state"`                // the client's NSM state, from its requests

	lastUsed time.Time
}

// smReg is an SM_MON registration (from a local lock manager).
type smReg struct {
	id   MonID
	priv [smPrivLen]byte
}

const maxSMRegs = 256

type monitor struct {
	dir string
	max int
	log *slog.Logger

	mu       sync.Mutex
	state    int32
	recs     map[string]*monRecord
	inflight map[string]int
	regs     []smReg
}

func recordFile(name string) string {
	h := sha256.Sum256([]byte(name))
	return hex.EncodeToString(h[:16]) + ".json"
}

// nextState returns the next odd state number: odd means "up" in NSM.
func nextState(old int32) int32 {
	n := old + 1
	if old%2 != 0 {
		n = old + 2
	}
	if n <= 0 {
		n = 1
	}
	return n
}

func openMonitor(dir string, maxClients int, log *slog.Logger) (*monitor, []monRecord, error) {
	sm := filepath.Join(dir, "sm")
	if err := os.MkdirAll(sm, 0o700); err != nil {
		return nil, nil, err
	}
	m := &monitor{dir: dir, max: maxClients, log: log, recs: map[string]*monRecord{}, inflight: map[string]int{}}
	var old int32
	switch b, err := os.ReadFile(filepath.Join(dir, "state")); {
	case err == nil:
		v, perr := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 32)
		if perr != nil {
			return nil, nil, fmt.Errorf("locking: corrupt NSM state file: %w", perr)
		}
		old = int32(v)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, nil, err
	}
	m.state = nextState(old)
	if err := m.saveState(m.state); err != nil {
		return nil, nil, err
	}
	ents, err := os.ReadDir(sm)
	if err != nil {
		return nil, nil, err
	}
	var recovered []monRecord
	now := time.Now()
	for _, e := range ents {
		p := filepath.Join(sm, e.Name())
		if strings.HasPrefix(e.Name(), ".tmp-") {
			os.Remove(p) // left by a crash mid-write
			continue
		}
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(p)
		var r monRecord
		if err == nil {
			err = json.Unmarshal(b, &r)
		}
		if err != nil || r.Name == "" || recordFile(r.Name) != e.Name() {
			log.Warn("ignoring unreadable NSM record", "file", p, "err", err)
			continue
		}
		r.lastUsed = now
		rec := r
		m.recs[r.Name] = &rec
		recovered = append(recovered, r)
	}
	slices.SortFunc(recovered, func(a, b monRecord) int { return strings.Compare(a.Name, b.Name) })
	return m, recovered, nil
}

// saveState records the server's NSM state number.
func (m *monitor) saveState(st int32) error {
	return atomicfile.Write(filepath.Join(m.dir, "state"), []byte(strconv.Itoa(int(st))+"\n"), 0o600)
}

// simulateCrash is SM_SIMU_CRASH: the registrations go and the server
// moves to a new state.
func (m *monitor) simulateCrash() error {
	m.mu.Lock()
	m.regs = nil
	m.state = nextState(m.state)
	st := m.state
	m.mu.Unlock()
	return m.saveState(st)
}

func (m *monitor) currentState() int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

// hold records that a request of client name is being served, writing
// the client's record first if it is new or changed. The record cannot
// be swept until release. rebooted reports that the client's NSM state
// moved on from one it used before: it restarted.
//
// A record names the address its client's locks were taken from. If
// busyAt reports that the recorded address still holds something, a
// request under the same name from another address does not take the
// record over (nor count as a restart): else anyone could redirect a
// client's reboot notification, or make its state look new, by naming it.
//
// created reports that this call wrote the client's first record: if the
// request then leaves the client holding nothing, releaseNew removes it
// at once, so refused requests do not fill the monitor list.
func (m *monitor) hold(name string, addr, server netip.Addr, state int32, busyAt func(addr string) bool) (rebooted, created bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec := m.recs[name]
	if rec == nil && len(m.recs) >= m.max {
		return false, false, ErrTooManyClients
	}
	if rec != nil && rec.Addr != addr.String() && busyAt(rec.Addr) {
		m.inflight[name]++
		return false, false, nil
	}
	created = rec == nil
	want := monRecord{Name: name, Addr: addr.String(), State: state}
	if server.IsValid() {
		want.ServerAddr = server.String()
	}
	if rec != nil {
		rebooted = rec.State != 0 && state != 0 && state != rec.State
		if state == 0 {
			want.State = rec.State
		}
	}
	if rec == nil || rec.Addr != want.Addr || rec.ServerAddr != want.ServerAddr || rec.State != want.State {
		b, _ := json.Marshal(want)
		if err := atomicfile.Write(filepath.Join(m.dir, "sm", recordFile(name)), b, 0o600); err != nil {
			return false, false, err
		}
		if rec == nil {
			rec = &monRecord{}
			m.recs[name] = rec
		}
		*rec = want
	}
	rec.lastUsed = time.Now()
	m.inflight[name]++
	return rebooted, created, nil
}

// releaseNew is release for a hold that created the record: the record
// goes at once unless keep(name) (the client holds or awaits something)
// or another request of the client is in flight.
func (m *monitor) releaseNew(name string, keep func(name string) bool) {
	m.release(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.recs[name] != nil && m.inflight[name] == 0 && !keep(name) {
		m.removeLocked(name)
	}
}

func (m *monitor) release(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.inflight[name]--; m.inflight[name] <= 0 {
		delete(m.inflight, name)
	}
	if rec := m.recs[name]; rec != nil {
		rec.lastUsed = time.Now()
	}
}

func (m *monitor) has(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.recs[name] != nil
}

// recordedAt reports whether client name's record names addr.
func (m *monitor) recordedAt(name, addr string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec := m.recs[name]
	return rec != nil && rec.Addr == addr
}

func (m *monitor) namesByAddr(addr string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for n, r := range m.recs {
		if r.Addr == addr {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// newState notes a client's new NSM state from its SM_NOTIFY. It reports
// false when the client's requests already carry that state.
func (m *monitor) newState(name string, state int32) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec := m.recs[name]
	if rec == nil {
		return true
	}
	if state != 0 && rec.State == state {
		return false
	}
	rec.State = state // in memory: the next request's state is then no surprise
	return true
}

// sweep removes the records of clients that have held nothing for idle.
func (m *monitor) sweep(now time.Time, idle time.Duration, keep func(name string) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, rec := range m.recs {
		if m.inflight[name] > 0 || now.Sub(rec.lastUsed) < idle || keep(name) {
			continue
		}
		m.removeLocked(name)
	}
}

// removeLocked removes a client's record; m.mu is held.
func (m *monitor) removeLocked(name string) {
	err := os.Remove(filepath.Join(m.dir, "sm", recordFile(name)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.log.Warn("cannot remove NSM record", "client", name, "err", err)
		return
	}
	atomicfile.SyncDir(filepath.Join(m.dir, "sm"))
	delete(m.recs, name)
}

func (m *monitor) list() []monRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]monRecord, 0, len(m.recs))
	for _, r := range m.recs {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b monRecord) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (s *Service) sweep(now time.Time) {
	s.mon.sweep(now, s.cfg.UnmonitorAfter, s.keepRecord)
}

// keepRecord reports whether a client's record must stay: it holds or
// awaits something, or the grace period waits for it.
func (s *Service) keepRecord(name string) bool {
	return s.table.ClientActive(name) || s.grace.isPending(name)
}

// releaseHold ends a request's hold on its client's record.
func (s *Service) releaseHold(name string, created bool) {
	if created {
		s.mon.releaseNew(name, s.keepRecord)
	} else {
		s.mon.release(name)
	}
}

func (m *monitor) addReg(g smReg) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.regs {
		if m.regs[i].id == g.id {
			m.regs[i] = g
			return true
		}
	}
	if len(m.regs) >= maxSMRegs {
		return false
	}
	m.regs = append(m.regs, g)
	return true
}

func (m *monitor) removeRegs(match func(smReg) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.regs = slices.DeleteFunc(m.regs, match)
}

// callRegistrations calls back the SM_MON registrations for a host that
// sent SM_NOTIFY. Registrations come from loopback only, so callbacks go
