package locking

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rwxnfs/rwxnfs/internal/rpctest"
	"github.com/rwxnfs/rwxnfs/pkg/portmap"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/rpcserver"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// testFiles accepts handles "vol/<volume>/..." and refuses "stale..."
// (ErrStale) and "forbidden..." (another error).
var testFiles = FilesFunc(func(fh []byte, _ netip.Addr) (string, error) {
	s := string(fh)
	switch {
	case strings.HasPrefix(s, "stale"):
		return "", ErrStale
	case strings.HasPrefix(s, "forbidden"):
		return "", errors.New("client not allowed")
	case strings.HasPrefix(s, "vol/"):
		v, _, _ := strings.Cut(s[4:], "/")
		return v, nil
	}
	return "", ErrStale
})

// clientHost plays a client machine on 127.0.0.1: a portmapper, a lock
// manager and a status monitor, all served by a real rpcserver.Server. The
// lock manager records GRANTED and *_RES calls; GRANTED is answered by
// grantReply.
type clientHost struct {
	port int

	mu         sync.Mutex
	grantReply func(a TestArgs) Stat
	events     chan event
}

type event struct {
	prog, proc uint32
	body       []byte
}

func (h *clientHost) ServeRPC(_ context.Context, req *rpc.Request, w *xdr.Writer) error {
	body := append([]byte(nil), req.Args.Rest()...)
	select {
	case h.events <- event{req.Prog, req.Proc, body}:
	default:
	}
	if req.Prog == NLMProg && req.Proc == ProcGranted {
		var a TestArgs
		if a.Decode(xdr.NewReader(body)) != nil {
			return rpc.ErrGarbageArgs
		}
		h.mu.Lock()
		reply := h.grantReply
		h.mu.Unlock()
		st := StatGranted
		if reply != nil {
			st = reply(a)
		}
		res := Res{Cookie: a.Cookie, Stat: st}
		res.Encode(w)
	}
	return nil
}

func (h *clientHost) setGrantReply(f func(TestArgs) Stat) {
	h.mu.Lock()
	h.grantReply = f
	h.mu.Unlock()
}

// next waits for the next call of prog/proc, skipping others.
func (h *clientHost) next(t *testing.T, prog, proc uint32) []byte {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-h.events:
			if e.prog == prog && e.proc == proc {
				return e.body
			}
		case <-deadline:
			t.Fatalf("no call of program %d procedure %d", prog, proc)
			return nil
		}
	}
}

const testCallbackProg = 200001

func startClientHost(t *testing.T) *clientHost {
	t.Helper()
	h := &clientHost{events: make(chan event, 1024)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.port = ln.Addr().(*net.TCPAddr).Port
	pm := &portmap.Table{}
	pm.Add(portmap.Mapping{Prog: NLMProg, Vers: NLMVers, Network: "tcp", Port: h.port},
		portmap.Mapping{Prog: NSMProg, Vers: NSMVers, Network: "tcp", Port: h.port},
		portmap.Mapping{Prog: testCallbackProg, Vers: 1, Network: "tcp", Port: h.port})
	mux := &rpc.Mux{}
	mux.Handle(pm.Program())
	mux.Handle(rpc.Program{Prog: NLMProg, Low: NLMVers, High: NLMVers, Name: "lockd", Handler: h})
	mux.Handle(rpc.Program{Prog: NSMProg, Low: NSMVers, High: NSMVers, Name: "statd", Handler: h})
	mux.Handle(rpc.Program{Prog: testCallbackProg, Low: 1, High: 1, Name: "cb", Handler: h})
	srv := &rpcserver.Server{Handler: mux, Log: rpctest.Logger(t)}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return h
}

// lockServer is the server under test: the lock service on a real server.
type lockServer struct {
	svc  *Service
	srv  *rpcserver.Server
	addr string
	once sync.Once
}

func (d *lockServer) stop() {
	d.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.srv.Shutdown(ctx)
		d.svc.Close()
	})
}

// startLockServer starts the lock service on a real server; cfg's zero fields get test defaults
// (fast callbacks, the files above, a temporary state directory, the
// client host's portmapper).
func startLockServer(t *testing.T, h *clientHost, cfg Config) *lockServer {
	t.Helper()
	if cfg.Files == nil {
		cfg.Files = testFiles
	}
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	if cfg.Dialer == nil && h != nil {
		cfg.Dialer = PortmapDialer{Port: h.port}
	}
	if cfg.CallbackBackoff == 0 {
		cfg.CallbackBackoff = 10 * time.Millisecond
	}
	if cfg.NotifyBackoff == 0 {
		cfg.NotifyBackoff = 10 * time.Millisecond
	}
	if cfg.CallbackTimeout == 0 {
		cfg.CallbackTimeout = 2 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = rpctest.Logger(t)
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := &rpc.Mux{}
	mux.Handle(svc.NLMProgram())
	mux.Handle(svc.NSMProgram())
	srv := &rpcserver.Server{Handler: mux, Log: rpctest.Logger(t)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	svc.Start()
	d := &lockServer{svc: svc, srv: srv, addr: ln.Addr().String()}
	t.Cleanup(d.stop)
	return d
}

// nlmClient drives the server over a real connection.
type nlmClient struct {
	t *testing.T
	c *rpc.Client
}

func dialNLM(t *testing.T, d *lockServer) *nlmClient {
	t.Helper()
	c, err := rpc.Dial(context.Background(), d.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &nlmClient{t: t, c: c}
}

func (c *nlmClient) call(prog, vers, proc uint32, enc func(*xdr.Writer)) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.c.Call(ctx, prog, vers, proc, enc)
}

func (c *nlmClient) mustCall(proc uint32, enc func(*xdr.Writer)) *xdr.Reader {
	c.t.Helper()
	b, err := c.call(NLMProg, NLMVers, proc, enc)
	if err != nil {
		c.t.Fatalf("NLM proc %d: %v", proc, err)
	}
	return xdr.NewReader(b)
}

func (c *nlmClient) res(proc uint32, enc func(*xdr.Writer)) Res {
	c.t.Helper()
	var res Res
	if err := res.Decode(c.mustCall(proc, enc)); err != nil {
		c.t.Fatal(err)
	}
	return res
}

func (c *nlmClient) lock(a LockArgs) Stat {
	c.t.Helper()
	return c.res(ProcLock, a.Encode).Stat
}

func (c *nlmClient) unlock(l Lock4) Stat {
	c.t.Helper()
	a := UnlockArgs{Cookie: []byte("u"), Lock: l}
	return c.res(ProcUnlock, a.Encode).Stat
}

func (c *nlmClient) test(excl bool, l Lock4) TestRes {
	c.t.Helper()
	a := TestArgs{Cookie: []byte("t"), Exclusive: excl, Lock: l}
	var res TestRes
	if err := res.Decode(c.mustCall(ProcTest, a.Encode)); err != nil {
		c.t.Fatal(err)
	}
	return res
}

func lk(caller string, svid int32, fh string, off, n uint64) Lock4 {
	return Lock4{CallerName: caller, FH: []byte(fh), OH: []byte(caller + "-oh"), Svid: svid, Offset: off, Len: n}
}
