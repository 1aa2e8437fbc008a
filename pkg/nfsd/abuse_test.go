package nfsd

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/internal/rpctest"
	"github.com/rwxnfs/rwxnfs/pkg/nfs3/wire"
	"github.com/rwxnfs/rwxnfs/pkg/nfsclient"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
)

// Abusive network clients beside a well-behaved one, against the real
// daemon with its default limits. Each abuser runs from addresses of its
// own (all of 127/8 is loopback); the well-behaved client, from
// 127.0.0.1, makes GETATTR, 64 KiB WRITE and 64 KiB READ calls meanwhile,
// and every one must succeed. Its success rate and latency are logged
// (go test -v -run TestAbusiveClients ./pkg/nfsd/): figures, not
// assertions.

// abuseFor is how long the well-behaved client works under each abuser.
const abuseFor = 3 * time.Second

func TestAbusiveClients(t *testing.T) {
	d := start(t, t.TempDir())
	c := dial(t, d, 0, 0)
	root := mount(t, c, "default")
	big, _, err := c.Create(ctx(t), root, "big", 0, nfsclient.SetAttr{Mode: nfsclient.U32(0o644)})
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for i := range uint64(2) {
		if _, err := c.Write(ctx(t), big, i<<20, chunk, nfsclient.FileSync); err != nil {
			t.Fatal(err)
		}
	}
	own, _, err := c.Create(ctx(t), root, "own", 0, nfsclient.SetAttr{Mode: nfsclient.U32(0o644)})
	if err != nil {
		t.Fatal(err)
	}
	lim := d.rpc.Limits // filled in by Serve
	for _, ab := range []struct {
		name  string
		start func(t *testing.T)
	}{
		{"none", func(t *testing.T) {}},
		{"unread 1 MiB READs, 4 connections from one address", func(t *testing.T) {
			var stream []byte
			for i := range uint32(300) {
				args := rpctest.Encode(&wire.ReadArgs{FH: big, Offset: 0, Count: 1 << 20})
				stream = append(stream, rpctest.Frag(rpctest.CallMsg(i, wire.Program, wire.Version, wire.ProcRead, rootCred(), args), true)...)
			}
			for range 4 {
				c := rpctest.DialFrom(t, "127.0.0.2", d.Addr().String())
				go c.Write(stream) // the server stops reading: never completes
			}
		}},
		{"stalled 1 MiB claims, 64 connections from each of 12 addresses", func(t *testing.T) {
			claim := append(rpctest.U32(1<<31|uint32(lim.MaxRecord)), "a few bytes"...)
			for a := range 12 {
				for range lim.PerClientConns {
					rpctest.DialFrom(t, fmt.Sprintf("127.0.1.%d", a+1), d.Addr().String()).WriteRaw(claim)
				}
			}
		}},
		{"stalled 1 MiB claims, 8 connections from each of 64 addresses", func(t *testing.T) {
			// Twice the server-wide budget: taken back as others wait.
			claim := append(rpctest.U32(1<<31|uint32(lim.MaxRecord)), "a few bytes"...)
			for a := range 64 {
				for range 8 {
					rpctest.DialFrom(t, fmt.Sprintf("127.0.2.%d", a+1), d.Addr().String()).WriteRaw(claim)
				}
			}
		}},
		{fmt.Sprintf("idle connections from many addresses, 1.5 × MaxConns (%d)", lim.MaxConns), func(t *testing.T) {
			for i := range lim.MaxConns * 3 / 2 {
				rpctest.DialFrom(t, fmt.Sprintf("127.1.%d.%d", i/200, i%200+1), d.Addr().String())
			}
		}},
	} {
		t.Run(ab.name, func(t *testing.T) {
			ab.start(t)
			time.Sleep(200 * time.Millisecond) // let the abuser settle in
			good := dialFrom(t, d, "127.0.0.1")
			var lat []time.Duration
			ok, failed := 0, 0
			data := make([]byte, 64<<10)
			for end := time.Now().Add(abuseFor); time.Now().Before(end); {
				for i, call := range []func() error{
					func() error { _, err := good.GetAttr(ctx(t), own); return err },
					func() error { _, err := good.Write(ctx(t), own, 0, data, nfsclient.Unstable); return err },
					func() error { _, _, err := good.Read(ctx(t), own, 0, 64<<10); return err },
				} {
					t0 := time.Now()
					if err := call(); err != nil {
						failed++
						t.Errorf("call %d: %v", i, err)
						continue
					}
					ok++
					lat = append(lat, time.Since(t0))
				}
			}
			slices.Sort(lat)
			pct := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))].Round(time.Microsecond) }
			t.Logf("well-behaved client under %q: %d/%d calls succeeded (%.1f%%); latency p50 %v p99 %v max %v; server %+v",
				ab.name, ok, ok+failed, 100*float64(ok)/float64(ok+failed), pct(0.5), pct(0.99), pct(1), d.rpc.Stats())
			if ok == 0 {
				t.Fatal("no call was served")
			}
		})
	}
}

func rootCred() rpc.OpaqueAuth { return rpc.AuthSysCred{Machine: "abuser"}.Opaque() }

// Idle connections from many addresses, far more than descriptors allow,
// against a daemon whose RLIMIT_NOFILE is 1024 (in a child process, so the
// abuser's own sockets are not counted against it): a connected client
// working through more files than the node cache holds never fails for
// want of a descriptor.
func TestDescriptorsKeptForWork(t *testing.T) {
	if os.Getenv("RWXNFS_FDTEST_CHILD") != "" {
		fdTestChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDescriptorsKeptForWork$")
	cmd.Env = append(os.Environ(), "RWXNFS_FDTEST_CHILD="+t.TempDir())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close() // the child stops its daemon and exits
		if err := cmd.Wait(); err != nil {
			t.Errorf("child: %v", err)
		}
	}()
	var addr, metricsAddr string
	for sc := bufio.NewScanner(stdout); sc.Scan(); {
		if _, err := fmt.Sscanf(sc.Text(), "ADDR %s METRICS %s", &addr, &metricsAddr); err == nil {
			break
		}
	}
	if addr == "" {
		t.Fatal("the child did not start a daemon")
	}
	go io.Copy(io.Discard, stdout)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &nfsclient.Client{RPC: rpc.NewClient(conn)}
	c.SetCred(0, 0)
	defer c.Close()
	root := mount(t, c, "default")
	var (
		mu   sync.Mutex
		idle []net.Conn
	)
	defer func() {
		for _, ic := range idle {
			ic.Close()
		}
	}()
	// 500 idle connections to the metrics endpoint: they wait in its
	// listen backlog beyond a few, holding no descriptor of the daemon's.
	for range 500 {
		mc, err := net.Dial("tcp", metricsAddr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, mc)
	}
	// 3,000 NFS connections in all, from 60 addresses, while the client
	// creates, writes and reads 600 files (three times the node cache).
	for i := range 600 {
		for j := range 5 {
			n := i*5 + j
			dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 2, byte(n%60), 1)}}
			ic, err := dl.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("dial %d: %v", n, err)
			}
			mu.Lock()
			idle = append(idle, ic)
			mu.Unlock()
		}
		name := fmt.Sprintf("f%d", i)
		fh, _, err := c.Create(ctx(t), root, name, 0, nfsclient.SetAttr{Mode: nfsclient.U32(0o644)})
		if err != nil {
			t.Fatalf("create %s with %d idle connections: %v", name, len(idle), err)
		}
		if _, err := c.Write(ctx(t), fh, 0, []byte(name), nfsclient.FileSync); err != nil {
			t.Fatalf("write %s: %v", name, err)
		}
	}
	for i := range 600 {
		name := fmt.Sprintf("f%d", i)
		fh, _, err := c.Lookup(ctx(t), root, name)
		if err != nil {
			t.Fatalf("lookup %s: %v", name, err)
		}
		if b, _, err := c.Read(ctx(t), fh, 0, 100); err != nil || string(b) != name {
			t.Fatalf("read %s: %q, %v", name, b, err)
		}
	}
}

// fdTestChild runs the daemon with a descriptor limit of 1024, prints its
// address and serves until its stdin closes.
func fdTestChild(t *testing.T) {
	rl := unix.Rlimit{Cur: 1024, Max: 1024}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	d, err := Start(Config{
		Root:          os.Getenv("RWXNFS_FDTEST_CHILD"),
		Listen:        "127.0.0.1:0",
		MetricsListen: "127.0.0.1:0",
		DefaultVolume: "default",
		Log:           rpctest.Logger(t),
		NoLocking:     true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, d)
	fmt.Printf("ADDR %s METRICS %s\n", d.Addr(), d.MetricsAddr())
	io.Copy(io.Discard, os.Stdin)
	if st := d.rpc.Stats(); st.ReclaimedConns == 0 {
		t.Errorf("no connection was reclaimed: %+v", st)
	}
}
