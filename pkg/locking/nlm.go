package locking

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// MaxHandle is the largest file handle that can name a file (NFSv3's
// limit). NLM carries handles as netobjs of up to 1024 bytes; longer ones
// name nothing here.
const MaxHandle = 64

// Files is what the lock manager needs from the file server: whether a
// handle names a file this client may lock, and which volume it is on
// (locks are dropped per volume when a volume is deleted).
type Files interface {
	// Resolve checks fh for a lock request from client and returns the
	// file's volume. Errors wrapping ErrStale give NLM4_STALE_FH; any
	// other error gives NLM4_FAILED.
	Resolve(fh []byte, client netip.Addr) (volume string, err error)
}

// FilesFunc adapts a function to Files.
type FilesFunc func(fh []byte, client netip.Addr) (string, error)

// Resolve calls f.
func (f FilesFunc) Resolve(fh []byte, client netip.Addr) (string, error) { return f(fh, client) }

// ErrStale is what Files.Resolve wraps for a handle that names no file.
var ErrStale = errors.New("locking: stale file handle")

// ErrTooManyClients means the limit on monitored client hosts is reached.
var ErrTooManyClients = errors.New("locking: too many client hosts hold locks")

// Config configures a Service. Files and StateDir are required.
type Config struct {
	Files Files
	// StateDir holds the NSM state: the server's state number and one
	// file per client host that holds locks. It must survive restarts.
	StateDir string
	// ServerName is the mon_name sent in SM_NOTIFY. Empty: the address
	// each client used to reach the server, which the client's statd
	// matches whether it mounted by address or by a name that resolves
	// to it.
	ServerName string
	// Grace is how long after Start only reclaims are granted, when
	// clients held locks before the restart (default 15s; negative: no
	// grace period at all).
	Grace time.Duration
	// Settle is how long after a client acknowledged our SM_NOTIFY a
	// non-reclaim request from it shows it has nothing to reclaim
	// (default 1s); see grace.
	Settle time.Duration
	Limits Limits
	// MaxClients bounds the client hosts monitored at once (default 4096).
	MaxClients int
	// Dialer reaches clients' lock managers and status monitors (default
	// PortmapDialer{}: the client's portmapper on port 111).
	Dialer Dialer
	// CallbackTimeout bounds one callback or notification (default 5s).
	CallbackTimeout time.Duration
	// CallbackRetries and CallbackBackoff: a GRANTED callback is retried
	// this many times (default 4), first after CallbackBackoff (default
	// 500ms), doubling, before the lock is released.
	CallbackRetries int
	CallbackBackoff time.Duration
	// NotifyRetries and NotifyBackoff do the same for SM_NOTIFY at
	// start-up (defaults 5 and 1s).
	NotifyRetries int
	NotifyBackoff time.Duration
	// UnmonitorAfter: a client host with nothing locked for this long is
	// removed from the monitor list (default 2m). Removal is lazy so
	// that a client locking and unlocking in a loop costs one disk write,
	// not one per lock.
	UnmonitorAfter time.Duration
	// MaxAsync bounds the *_RES replies and other notifications in
	// flight (default 64).
	MaxAsync int
	Log      *slog.Logger
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Grace, 15*time.Second)
	def(&c.Settle, time.Second)
	def(&c.CallbackTimeout, 5*time.Second)
	def(&c.CallbackBackoff, 500*time.Millisecond)
	def(&c.NotifyBackoff, time.Second)
	def(&c.UnmonitorAfter, 2*time.Minute)
	if c.CallbackRetries == 0 {
		c.CallbackRetries = 4
	}
	if c.NotifyRetries == 0 {
		c.NotifyRetries = 5
	}
	if c.MaxClients == 0 {
		c.MaxClients = 4096
	}
	if c.MaxAsync == 0 {
		c.MaxAsync = 64
	}
	if c.Dialer == nil {
		c.Dialer = PortmapDialer{}
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Service is the lock manager: the NLM v4 and NSM programs over a Table.
type Service struct {
	cfg   Config
	log   *slog.Logger
	table *Table
	mon   *monitor
	grace *grace

	recovered []monRecord // clients recorded before this start

	async chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	bgMu   sync.Mutex
	closed bool
	wg     sync.WaitGroup
	start  sync.Once
}

// New opens the NSM state in cfg.StateDir, bumps the server's state
// number and, if clients held locks before, enters the grace period
// (which runs from Start). Register the programs, start serving, then
// call Start.
func New(cfg Config) (*Service, error) {
	if cfg.Files == nil || cfg.StateDir == "" {
		return nil, errors.New("locking: Config.Files and Config.StateDir are required")
	}
	cfg.setDefaults()
	s := &Service{cfg: cfg, log: cfg.Log.With("component", "locking")}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.async = make(chan struct{}, cfg.MaxAsync)
	s.table = NewTable(cfg.Limits, s.onGrant)
	mon, recovered, err := openMonitor(cfg.StateDir, cfg.MaxClients, s.log)
	if err != nil {
		return nil, err
	}
	s.mon, s.recovered = mon, recovered
	names := make([]string, 0, len(recovered))
	for _, r := range recovered {
		names = append(names, r.Name)
	}
	s.grace = newGrace(names, cfg.Grace > 0, cfg.Settle, s.log)
	return s, nil
}

// Table returns the lock table (for admin listings and tests).
func (s *Service) Table() *Table { return s.table }

// NLMProgram is the registration of NLM v4 for rpcserver.Server.Register.
func (s *Service) NLMProgram() rpc.Program {
	return rpc.Program{Prog: NLMProg, Low: NLMVers, High: NLMVers, Name: "nlockmgr", Handler: nlmHandler{s}}
}

// NSMProgram is the registration of NSM v1 for rpcserver.Server.Register.
func (s *Service) NSMProgram() rpc.Program {
	return rpc.Program{Prog: NSMProg, Low: NSMVers, High: NSMVers, Name: "status", Handler: nsmHandler{s}}
}

// Start starts the grace period's clock, sends SM_NOTIFY to every client
// recorded before the restart, and starts the unmonitor sweep. Call it
// once the programs are being served, so that clients told of the
// restart can reclaim at once.
func (s *Service) Start() {
	s.start.Do(func() {
		if s.grace.isActive() {
			t := time.AfterFunc(s.cfg.Grace, func() { s.grace.end("timeout") })
			s.background(func() {
				<-s.ctx.Done()
				t.Stop()
			})
		}
		sem := make(chan struct{}, 8)
		for _, rec := range s.recovered {
			s.background(func() {
				select {
				case sem <- struct{}{}:
				case <-s.ctx.Done():
					return
				}
				defer func() { <-sem }()
				s.notifyClient(rec)
			})
		}
		s.background(func() {
			tick := time.NewTicker(max(s.cfg.UnmonitorAfter/4, time.Second))
			defer tick.Stop()
			for {
				select {
				case <-tick.C:
					s.sweep(time.Now())
				case <-s.ctx.Done():
					return
				}
			}
		})
	})
}

// Close stops callbacks, notifications and the sweep, and waits for them.
// Locks are not persisted: clients reclaim them after the next start.
func (s *Service) Close() {
	s.bgMu.Lock()
	s.closed = true
	s.bgMu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// background runs f on a goroutine Close waits for; false if closed.
func (s *Service) background(f func()) bool {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

func (s *Service) onGrant(w *Waiter) {
	if !s.background(func() { s.deliverGrant(w) }) {
		s.table.Revoke(w)
	}
}

// InGrace reports whether the grace period is on.
func (s *Service) InGrace() bool { return s.grace.isActive() }

// State returns the server's NSM state number.
func (s *Service) State() int32 { return s.mon.currentState() }

type nlmHandler struct{ s *Service }

// call is one decoded request's context.
type call struct {
	host, local netip.Addr
}

func callerOf(name string, host netip.Addr) string {
	if name == "" {
		return host.String()
	}
	return name
}

func ownerOf(l *Lock4, host netip.Addr) Owner {
	return Owner{Caller: callerOf(l.CallerName, host), Svid: l.Svid, OH: string(l.OH), Addr: host}
}

// ServeRPC implements rpc.Handler for NLM v4.
func (h nlmHandler) ServeRPC(_ context.Context, req *rpc.Request, w *xdr.Writer) error {
	s := h.s
	r := req.Args
	c := call{host: req.RemoteIP, local: addrIP(req.Local)}
	switch req.Proc {
	case ProcNull:
		return nil
	case ProcTest, ProcTestMsg:
		var a TestArgs
		if a.Decode(r) != nil {
			return rpc.ErrGarbageArgs
		}
		res := s.test(c, &a)
		if req.Proc == ProcTestMsg {
			s.replyAsync(c.host, c.local, ProcTestRes, res.Encode)
		} else {
			res.Encode(w)
		}
	case ProcLock, ProcLockMsg, ProcNMLock:
		var a LockArgs
		if a.Decode(r) != nil {
			return rpc.ErrGarbageArgs
		}
		res := Res{Cookie: a.Cookie, Stat: s.lock(c, &a, req.Proc == ProcNMLock)}
		if req.Proc == ProcLockMsg {
			s.replyAsync(c.host, c.local, ProcLockRes, res.Encode)
		} else {
			res.Encode(w)
		}
	case ProcCancel, ProcCancelMsg:
		var a CancArgs
		if a.Decode(r) != nil {
			return rpc.ErrGarbageArgs
		}
		res := Res{Cookie: a.Cookie, Stat: s.cancelLock(c, &a)}
		if req.Proc == ProcCancelMsg {
			s.replyAsync(c.host, c.local, ProcCancelRes, res.Encode)
		} else {
			res.Encode(w)
		}
	case ProcUnlock, ProcUnlockMsg:
		var a UnlockArgs
		if a.Decode(r) != nil {
			return rpc.ErrGarbageArgs
		}
		res := Res{Cookie: a.Cookie, Stat: s.unlock(c, &a)}
		if req.Proc == ProcUnlockMsg {
			s.replyAsync(c.host, c.local, ProcUnlockRes, res.Encode)
		} else {
			res.Encode(w)
		}
	case ProcGranted, ProcGrantedMsg:
		// We are a server, never a client with blocked requests: there
		// is nothing a GRANTED could be for.
		var a TestArgs
		if a.Decode(r) != nil {
			return rpc.ErrGarbageArgs
		}
		res := Res{Cookie: a.Cookie, Stat: StatDenied}
		if req.Proc == ProcGrantedMsg {
			s.replyAsync(c.host, c.local, ProcGrantedRes, res.Encode)
		} else {
			res.Encode(w)
		}
	case ProcTestRes:
		var a TestRes
		if a.Decode(r) != nil {
			return rpc.ErrGarbageArgs
		}
	case ProcLockRes, ProcCancelRes, ProcUnlockRes, ProcGrantedRes:
		// Results of calls we never make asynchronously (we use the
		// synchronous GRANTED): accepted and ignored.
		var a Res
		if a.Decode(r) != nil {
			return rpc.ErrGarbageArgs
		}
	case ProcShare, ProcUnshare:
		var a ShareArgs
		if a.Decode(r) != nil {
			return rpc.ErrGarbageArgs
		}
		res := ShareRes{Cookie: a.Cookie, Stat: s.share(c, &a, req.Proc == ProcUnshare)}
		res.Encode(w)
	case ProcFreeAll:
		var a Notify
		if a.Decode(r) != nil {
			return rpc.ErrGarbageArgs
		}
		// Only what the caller itself took is freed (see Owner).
		s.clientRebooted(a.Name, c.host, a.State, false)
	default:
		return rpc.ErrProcUnavail
	}
	return nil
}

// resolve checks a handle and returns its volume, or the NLM status that
// refuses the request.
func (s *Service) resolve(fh []byte, host netip.Addr) (string, Stat) {
	if len(fh) == 0 || len(fh) > MaxHandle {
		return "", StatStaleFH
	}
	vol, err := s.cfg.Files.Resolve(fh, host)
	switch {
	case err == nil:
		return vol, StatGranted
	case errors.Is(err, ErrStale):
		return "", StatStaleFH
	}
	s.log.Debug("lock request refused", "host", host, "err", err)
	return "", StatFailed
}

func holder4(h *Holder) Holder4 {
	return Holder4{Exclusive: h.Exclusive, Svid: h.Owner.Svid, OH: []byte(h.Owner.OH), Offset: h.Range.Start, Len: h.Range.Len()}
}

func (s *Service) test(c call, a *TestArgs) TestRes {
	res := TestRes{Cookie: a.Cookie}
	if _, st := s.resolve(a.Lock.FH, c.host); st != StatGranted {
		res.Stat = st
		return res
	}
	r, ok := RangeOf(a.Lock.Offset, a.Lock.Len)
	if !ok {
		res.Stat = StatFBig
		return res
	}
	owner := ownerOf(&a.Lock, c.host)
	if st := s.grace.admit(owner.Caller, false); st != StatGranted {
		res.Stat = st
		return res
	}
	if h := s.table.Test(string(a.Lock.FH), owner, a.Exclusive, r); h != nil {
		res.Stat = StatDenied
		res.Holder = holder4(h)
	}
	return res
}

// lock serves LOCK, LOCK_MSG and NM_LOCK (nm: non-monitored, never
// blocks, the client is not recorded for reboot notification).
func (s *Service) lock(c call, a *LockArgs, nm bool) Stat {
	vol, st := s.resolve(a.Lock.FH, c.host)
	if st != StatGranted {
		return st
	}
	r, ok := RangeOf(a.Lock.Offset, a.Lock.Len)
	if !ok {
		return StatFBig
	}
	owner := ownerOf(&a.Lock, c.host)
	if st := s.grace.admit(owner.Caller, a.Reclaim); st != StatGranted {
		return st
	}
	if !nm {
		rebooted, created, err := s.mon.hold(owner.Caller, c.host, c.local, a.State, s.busyAt(owner.Caller))
		if err != nil {
			s.log.Warn("cannot monitor client; refusing lock", "client", owner.Caller, "err", err)
			return StatDeniedNoLocks
		}
		defer s.releaseHold(owner.Caller, created)
		if rebooted {
			// Its NSM state changed: the client restarted and its old
			// locks are orphans (its SM_NOTIFY may still be on the way).
			s.log.Info("client restarted; releasing its old locks", "client", owner.Caller, "state", a.State)
			s.table.FreeAllFrom(owner.Caller, c.host)
		}
	}
	req := LockRequest{
		File: string(a.Lock.FH), Volume: vol, Owner: owner, Exclusive: a.Exclusive, Range: r,
		Block: a.Block && !nm && !a.Reclaim,
	}
	if req.Block {
		req.Data = &grantInfo{
			cookie: append([]byte(nil), a.Cookie...), lock: a.Lock.clone(), excl: a.Exclusive,
			host: c.host, local: c.local,
		}
	}
	return s.table.Lock(req).Status
}

func (s *Service) unlock(c call, a *UnlockArgs) Stat {
	// No Resolve: a lock on a file that has since gone stale must still
	// be releasable, and releasing harms nobody.
	r, ok := RangeOf(a.Lock.Offset, a.Lock.Len)
	if !ok {
		return StatFBig
	}
	if len(a.Lock.FH) > MaxHandle {
		return StatGranted
	}
	return s.table.Unlock(string(a.Lock.FH), ownerOf(&a.Lock, c.host), r)
}

func (s *Service) cancelLock(c call, a *CancArgs) Stat {
	r, ok := RangeOf(a.Lock.Offset, a.Lock.Len)
	if !ok {
		return StatFBig
	}
	if len(a.Lock.FH) > MaxHandle {
		return StatDenied
	}
	return s.table.Cancel(string(a.Lock.FH), ownerOf(&a.Lock, c.host), a.Exclusive, r)
}

func (s *Service) share(c call, a *ShareArgs, unshare bool) Stat {
	caller := callerOf(a.Share.CallerName, c.host)
	owner := Owner{Caller: caller, OH: string(a.Share.OH), Addr: c.host}
	if unshare {
		if len(a.Share.FH) > MaxHandle {
			return StatGranted
		}
		return s.table.Unshare(string(a.Share.FH), owner)
	}
	vol, st := s.resolve(a.Share.FH, c.host)
	if st != StatGranted {
		return st
	}
	if st := s.grace.admit(caller, a.Reclaim); st != StatGranted {
		return st
	}
	_, created, err := s.mon.hold(caller, c.host, c.local, 0, s.busyAt(caller))
	if err != nil {
		return StatDeniedNoLocks
	}
	defer s.releaseHold(caller, created)
	return s.table.Share(string(a.Share.FH), vol, owner, a.Share.Mode, a.Share.Access)
}

// busyAt reports whether caller still holds anything taken from an
// address (in its text form, as the monitor records it).
func (s *Service) busyAt(caller string) func(string) bool {
	return func(addr string) bool {
		a, err := netip.ParseAddr(addr)
		return err == nil && s.table.HoldsFrom(caller, a)
	}
}

// clientRebooted releases what a client host held, because it told us it
// restarted (SM_NOTIFY) or asked us to (FREE_ALL). For SM_NOTIFY the
// client is found by name or, failing that, by the address the
// notification came from; a notification carrying the state the client
// already uses in its lock requests is a late duplicate and is ignored
// (its locks were freed when that state first appeared).
//
// Names are only claims, so a request from from acts on a client only if
// from is where that client's locks were taken or its record points:
// only what was taken from from is released, and a notification from
// anywhere else neither records a new state (which would make the real
// client's next request look like a restart) nor ends its grace wait.
func (s *Service) clientRebooted(name string, from netip.Addr, state int32, notify bool) int {
	var names []string
	switch {
	case !notify || s.table.ClientActive(name) || s.mon.has(name):
		names = []string{name}
	case from.IsValid():
		names = s.mon.namesByAddr(from.String())
	}
	n := 0
	for _, nm := range names {
		if from.IsValid() && !s.mon.recordedAt(nm, from.String()) && !s.table.HoldsFrom(nm, from) {
			if s.mon.has(nm) || s.table.ClientActive(nm) {
				s.log.Warn("ignoring a reboot notice or FREE_ALL for a client from another address", "client", nm, "from", from)
			}
			continue
		}
		if notify && !s.mon.newState(nm, state) {
			continue
		}
		if from.IsValid() {
			n += s.table.FreeAllFrom(nm, from)
		} else {
			n += s.table.FreeAll(nm)
		}
		s.grace.done(nm, "client restarted or freed its locks")
	}
	if n > 0 {
		s.log.Info("released the locks of a restarted client", "client", name, "from", from, "items", n)
	}
	return n
}

// hostname is the fallback mon_name.
func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "localhost"
	}
	return h
}
