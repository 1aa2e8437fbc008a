// Command e2enode is the test program the e2e harness runs on its qemu
// nodes (built static, CGO_ENABLED=0, into the node initramfs). Each
// subcommand prints one summary line the host parses; errors name their
// errno so the host can tell ESTALE from EDQUOT from EACCES.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/rwxnfs/rwxnfs/e2e/internal/record"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: e2enode append|hold|lockwait|io|asuser ...")
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{
		"append": appendCmd, "append1": append1Cmd, "hold": holdCmd,
		"lockwait": lockwaitCmd, "io": ioCmd, "asuser": asuserCmd,
	}
	f := cmds[os.Args[1]]
	if f == nil {
		fmt.Fprintf(os.Stderr, "e2enode: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := f(os.Args[2:]); err != nil {
		fmt.Printf("ERROR %s: %s\n", os.Args[1], describe(err))
		os.Exit(1)
	}
}

// describe names the errno in err (ESTALE, EDQUOT, ...) as well as its text.
func describe(err error) string {
	var no syscall.Errno
	if errors.As(err, &no) {
		for _, e := range []struct {
			n    syscall.Errno
			name string
		}{{syscall.ESTALE, "ESTALE"}, {syscall.EDQUOT, "EDQUOT"}, {syscall.EACCES, "EACCES"},
			{syscall.EPERM, "EPERM"}, {syscall.EIO, "EIO"}, {syscall.ENOLCK, "ENOLCK"}, {syscall.ENOSPC, "ENOSPC"}} {
			if no == e.n {
				return e.name + " " + err.Error()
			}
		}
		return fmt.Sprintf("errno=%d %v", int(no), err)
	}
	return err.Error()
}

// lock takes an exclusive whole-file lock, waiting for it.
func lock(f *os.File, kind string) error {
	switch kind {
	case "fcntl":
		lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 0}
		for {
			err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLKW, &lk)
			if err != syscall.EINTR {
				return err
			}
		}
	case "flock":
		for {
			err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
			if err != syscall.EINTR {
				return err
			}
		}
	case "none":
		return nil
	}
	return fmt.Errorf("unknown lock kind %q", kind)
}

func unlock(f *os.File, kind string) error {
	switch kind {
	case "fcntl":
		lk := syscall.Flock_t{Type: syscall.F_UNLCK, Whence: 0, Start: 0, Len: 0}
		return syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk)
	case "flock":
		return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	}
	return nil
}

// appendFlags declares what append passes on to each append1 process.
func appendFlags(fs *flag.FlagSet) (file, writer *string, n, size *int, kind *string) {
	file = fs.String("f", "", "file to append to")
	writer = fs.String("w", "", "writer id (append: a prefix, default the hostname)")
	n = fs.Int("n", 1000, "records per process")
	size = fs.Int("size", 64, "record size")
	kind = fs.String("lock", "fcntl", "fcntl, flock or none")
	return
}

// append runs -procs copies of append1 (separate processes, so each has
// its own lock owner as separate pods would) and waits for them all.
func appendCmd(args []string) error {
	fs := flag.NewFlagSet("append", flag.ExitOnError)
	file, name, n, size, kind := appendFlags(fs)
	procs := fs.Int("procs", 4, "processes")
	fs.Parse(args)
	if *name == "" {
		*name, _ = os.Hostname()
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, *procs)
	outs := make([]bytes.Buffer, *procs)
	for i := 0; i < *procs; i++ {
		c := exec.Command(os.Args[0], "append1", "-f", *file, "-w", fmt.Sprintf("%s.p%d", *name, i),
			"-n", strconv.Itoa(*n), "-size", strconv.Itoa(*size), "-lock", *kind)
		c.Stdout, c.Stderr = &outs[i], &outs[i]
		wg.Add(1)
		go func(i int) { defer wg.Done(); errs[i] = c.Run() }(i)
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	failed := 0
	for i := range errs {
		os.Stdout.Write(outs[i].Bytes())
		if errs[i] != nil {
			failed++
		}
	}
	fmt.Printf("APPEND done procs=%d n=%d lock=%s secs=%.3f rate=%.1f failed=%d\n",
		*procs, *n, *kind, secs, float64(*procs**n)/secs, failed)
	if failed > 0 {
		return fmt.Errorf("%d of %d appenders failed", failed, *procs)
	}
	return nil
}

func append1Cmd(args []string) error {
	fs := flag.NewFlagSet("append1", flag.ExitOnError)
	file, w, n, size, kind := appendFlags(fs)
	fs.Parse(args)
	f, err := os.OpenFile(*file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o666)
	if err != nil {
		return err
	}
	defer f.Close()
	for s := 1; s <= *n; s++ {
		rec, err := record.Make(*w, s, *size)
		if err != nil {
			return err
		}
		if err := lock(f, *kind); err != nil {
			return fmt.Errorf("lock %d: %w", s, err)
		}
		// Under the lock the client revalidates the file size, so
		// O_APPEND lands at the true end; unlock flushes the write.
		if _, err := f.Write(rec); err != nil {
			return fmt.Errorf("write %d: %w", s, err)
		}
		if *kind == "none" {
			// Without a lock nothing flushes per record; fsync so
			// the control run races the way unlocked pods would.
			if err := f.Sync(); err != nil {
				return fmt.Errorf("fsync %d: %w", s, err)
			}
		}
		if err := unlock(f, *kind); err != nil {
			return fmt.Errorf("unlock %d: %w", s, err)
		}
	}
	fmt.Printf("APPEND1 %s n=%d\n", *w, *n)
	return nil
}

// hold takes the lock and keeps it until killed.
func holdCmd(args []string) error {
	fs := flag.NewFlagSet("hold", flag.ExitOnError)
	file := fs.String("f", "", "")
	kind := fs.String("lock", "fcntl", "")
	fs.Parse(args)
	f, err := os.OpenFile(*file, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return err
	}
	if err := lock(f, *kind); err != nil {
		return err
	}
	fmt.Println("HELD")
	for { // sleep, not select{}: the runtime kills a program with no goroutine left to run
		time.Sleep(time.Hour)
	}
}

// lockwait blocks for the lock and reports how long it took.
func lockwaitCmd(args []string) error {
	fs := flag.NewFlagSet("lockwait", flag.ExitOnError)
	file := fs.String("f", "", "")
	kind := fs.String("lock", "fcntl", "")
	fs.Parse(args)
	f, err := os.OpenFile(*file, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return err
	}
	start := time.Now()
	fmt.Println("WAITING")
	if err := lock(f, *kind); err != nil {
		return err
	}
	fmt.Printf("GOT after=%.2fs\n", time.Since(start).Seconds())
	return unlock(f, *kind)
}

// io writes fsync'ed records to DIR/<w>.dat for -dur (or until SIGTERM),
// and between writes
// re-reads its own file, the peers' files and a file made before the run
// (DIR/stable), so a server restart that changes handles or loses
// committed data shows up as ESTALE or a short file.
func ioCmd(args []string) error {
	fs := flag.NewFlagSet("io", flag.ExitOnError)
	dir := fs.String("dir", "", "")
	w := fs.String("w", "", "")
	dur := fs.Duration("dur", 0, "how long; 0: until SIGTERM")
	size := fs.Int("size", 128, "")
	fs.Parse(args)
	if *w == "" {
		*w, _ = os.Hostname()
	}
	own := filepath.Join(*dir, *w+".dat")
	f, err := os.OpenFile(own, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	stable, err := os.Open(filepath.Join(*dir, "stable"))
	if err != nil {
		return err
	}
	defer stable.Close()
	committed, reads := 0, 0
	report := func() { fmt.Printf("IO %s committed=%d reads=%d\n", *w, committed, reads) }
	defer report()
	maxGap := time.Duration(0)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	end := time.Now().Add(*dur)
	for *dur == 0 || time.Now().Before(end) {
		select {
		case <-stop:
			fmt.Printf("IOGAP %s max=%.2fs\n", *w, maxGap.Seconds())
			return nil
		default:
		}
		t0 := time.Now()
		rec, _ := record.Make(*w, committed+1, *size)
		if _, err := f.Write(rec); err != nil {
			return fmt.Errorf("write %d: %w", committed+1, err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("fsync %d: %w", committed+1, err)
		}
		committed++
		// Progress on the console lets the host see that I/O continues.
		if committed%50 == 0 {
			fmt.Printf("IOPROGRESS %s committed=%d\n", *w, committed)
		}
		if committed%5 == 0 {
			data, err := os.ReadFile(own)
			if err != nil {
				return fmt.Errorf("read own: %w", err)
			}
			r := record.Verify(data, *size, map[string]int{*w: committed})
			if !r.OK() {
				return fmt.Errorf("own file after %d commits: %v", committed, r)
			}
			peers, _ := filepath.Glob(filepath.Join(*dir, "*.dat"))
			for _, p := range peers {
				if _, err := os.ReadFile(p); err != nil {
					return fmt.Errorf("read %s: %w", p, err)
				}
			}
			var st syscall.Stat_t
			if err := syscall.Fstat(int(stable.Fd()), &st); err != nil {
				return fmt.Errorf("fstat stable: %w", err)
			}
			if _, err := stable.ReadAt(make([]byte, 16), 0); err != nil {
				return fmt.Errorf("read stable: %w", err)
			}
			reads++
		}
		if g := time.Since(t0); g > maxGap {
			maxGap = g
		}
	}
	fmt.Printf("IOGAP %s max=%.2fs\n", *w, maxGap.Seconds())
	return nil
}

// asuser runs a command as uid:gid (supplementary groups: just gid).
func asuserCmd(args []string) error {
	fs := flag.NewFlagSet("asuser", flag.ExitOnError)
	uid := fs.Int("u", 1000, "")
	gid := fs.Int("g", 1000, "")
	fs.Parse(args)
	if fs.NArg() == 0 {
		return errors.New("asuser: no command")
	}
	if err := syscall.Setgroups([]int{*gid}); err != nil {
		return err
	}
	if err := syscall.Setgid(*gid); err != nil {
		return err
	}
	if err := syscall.Setuid(*uid); err != nil {
		return err
	}
	prog, err := exec.LookPath(fs.Arg(0))
	if err != nil {
		return err
	}
	return syscall.Exec(prog, fs.Args(), os.Environ())
}
