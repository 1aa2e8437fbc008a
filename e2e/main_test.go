// Package e2e is the real-Linux-client test bed: Debian's kernel NFSv3
// client in qemu (TCG) nodes against our nfsd, in a private network
// namespace. It runs only with RWXNFS_E2E=1 (make e2e, make e2e-smoke);
// in the default suite every test skips with the reason printed.
package e2e

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// runDir holds this run's per-test logs and server roots
// (e2e/.build/logs/<time>/<test>/).
var runDir string

func TestMain(m *testing.M) {
	if os.Getenv("RWXNFS_E2E") != "1" {
		fmt.Println("e2e: skipped: set RWXNFS_E2E=1 (make e2e / make e2e-smoke) to boot qemu test nodes; needs root")
		os.Exit(m.Run())
	}
	if os.Geteuid() != 0 {
		fmt.Println("e2e: must run as root (netns, taps, nfsd)")
		os.Exit(1)
	}
	runDir = filepath.Join(buildDir(), "logs", time.Now().UTC().Format("20060102-150405"))
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		panic(err)
	}
	os.Remove(filepath.Join(buildDir(), "logs", "latest"))
	os.Symlink(filepath.Base(runDir), filepath.Join(buildDir(), "logs", "latest"))
	logf("logs in %s", runDir)
	// Ctrl-C or SIGTERM: tear down whatever beds are up, then exit.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sig
		logf("caught %v: tearing down", s)
		stopping.Store(true)
		runTeardowns()
		os.Exit(130)
	}()
	code := m.Run()
	runTeardowns()
	cleanupLeftovers()
	os.Exit(code)
}

var (
	regMu     sync.Mutex
	regNext   int
	teardowns = map[int]func(){}
)

// register records a teardown for the signal handler; the returned func
// forgets it.
func register(f func()) func() {
	regMu.Lock()
	defer regMu.Unlock()
	regNext++
	id := regNext
	teardowns[id] = f
	return func() { regMu.Lock(); delete(teardowns, id); regMu.Unlock() }
}

func runTeardowns() {
	regMu.Lock()
	fs := make([]func(), 0, len(teardowns))
	for _, f := range teardowns {
		fs = append(fs, f)
	}
	regMu.Unlock()
	for _, f := range fs {
		f()
	}
}

var logMu sync.Mutex

// logf writes to the run's summary log (e2e/.build/logs/<run>/run.log)
// and stderr, so timings survive even when go test hides test logs.
func logf(format string, args ...any) {
	logMu.Lock()
	defer logMu.Unlock()
	line := fmt.Sprintf("%s e2e: %s\n", time.Now().UTC().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	os.Stderr.WriteString(line)
	if runDir != "" {
		if f, err := os.OpenFile(filepath.Join(runDir, "run.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			f.WriteString(line)
			f.Close()
		}
	}
}
