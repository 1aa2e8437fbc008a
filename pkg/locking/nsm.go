package locking

import (
	"context"
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
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
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
	if err := atomicfile.Write(filepath.Join(dir, "state"), []byte(strconv.Itoa(int(m.state))+"\n"), 0o600); err != nil {
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

func (m *monitor) currentState() int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

// hold records that a request of client name is being served, writing
// the client's record first if it is new or changed. The record cannot
// be swept until release. rebooted reports that the client's NSM state
// moved on from one it used before: it restarted.
func (m *monitor) hold(name string, addr, server netip.Addr, state int32) (rebooted bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec := m.recs[name]
	if rec == nil && len(m.recs) >= m.max {
		return false, ErrTooManyClients
	}
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
			return false, err
		}
		if rec == nil {
			rec = &monRecord{}
			m.recs[name] = rec
		}
		*rec = want
	}
	rec.lastUsed = time.Now()
	m.inflight[name]++
	return rebooted, nil
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
		err := os.Remove(filepath.Join(m.dir, "sm", recordFile(name)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			m.log.Warn("cannot remove NSM record", "client", name, "err", err)
			continue
		}
		atomicfile.SyncDir(filepath.Join(m.dir, "sm"))
		delete(m.recs, name)
	}
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
	s.mon.sweep(now, s.cfg.UnmonitorAfter, func(name string) bool {
		return s.table.ClientActive(name) || s.grace.isPending(name)
	})
}

// The grace period.
//
// After a restart the lock table is empty and every client recorded in
// the monitor list is told (SM_NOTIFY) to reclaim its locks. Until the
// grace period ends only reclaims (nlm4_lockargs.reclaim, and reclaiming
// SHAREs) are granted; other LOCK, TEST, NM_LOCK and SHARE requests get
// NLM4_DENIED_GRACE_PERIOD and the client retries. UNLOCK, CANCEL and
// UNSHARE are always served: giving something up cannot hurt a reclaim.
// A reclaim after the grace period is refused (NLM4_DENIED): other
// clients may have locked and changed the range since.
//
// The grace period ends after Config.Grace, or earlier once every
// recorded client is settled, that is, has reclaimed all it will or
// has shown it has nothing to reclaim. A client is settled when:
//
//   - it sends FREE_ALL or SM_NOTIFY (it restarted: it holds nothing);
//   - it sends a non-reclaim request after at least one reclaim. A
//     client reclaims all of a server's locks before it sends that server
//     anything new (Linux lockd holds new requests back while its
//     reclaimer runs), and both travel on one connection in order, so a
//     new request after a reclaim means the reclaims are over;
//   - it sends a non-reclaim request at least Config.Settle after it
//     acknowledged our SM_NOTIFY, without having reclaimed. Requests
//     sent before the client learned of our restart (retries of requests
//     we refused with NLM4_DENIED_GRACE_PERIOD) prove nothing, and the
//     client's statd acknowledges SM_NOTIFY before its lockd starts
//     reclaiming; Settle covers that gap;
//   - our SM_NOTIFY could not be delivered after all retries: a client
//     that was not told cannot reclaim, so waiting for it is pointless.
//
// A client that reclaims and then stays silent keeps the grace period
// open until the timeout: nothing it sends can say it has finished.
type grace struct {
	log    *slog.Logger
	settle time.Duration

	mu      sync.Mutex
	active  bool
	pending map[string]*graceClient
}

type graceClient struct {
	notifiedAt time.Time
	reclaimed  bool
}

func newGrace(clients []string, enabled bool, settle time.Duration, log *slog.Logger) *grace {
	g := &grace{log: log, settle: settle, pending: map[string]*graceClient{}}
	if enabled && len(clients) > 0 {
		g.active = true
		for _, c := range clients {
			g.pending[c] = &graceClient{}
		}
		log.Info("grace period: waiting for clients to reclaim their locks", "clients", len(clients))
	}
	return g
}

func (g *grace) isActive() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.active
}

func (g *grace) isPending(name string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.active && g.pending[name] != nil
}

// admit decides whether a request may proceed given the grace period.
func (g *grace) admit(caller string, reclaim bool) Stat {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.active {
		if reclaim {
			return StatDenied
		}
		return StatGranted
	}
	c := g.pending[caller]
	if reclaim {
		if c != nil {
			c.reclaimed = true
		}
		return StatGranted
	}
	if c != nil && (c.reclaimed || (!c.notifiedAt.IsZero() && time.Since(c.notifiedAt) >= g.settle)) {
		g.doneLocked(caller, "client sent a new request")
		if !g.active {
			return StatGranted
		}
	}
	return StatDeniedGracePeriod
}

func (g *grace) notified(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := g.pending[name]; c != nil && c.notifiedAt.IsZero() {
		c.notifiedAt = time.Now()
	}
}

func (g *grace) done(name, why string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.doneLocked(name, why)
}

func (g *grace) doneLocked(name, why string) {
	if !g.active || g.pending[name] == nil {
		return
	}
	delete(g.pending, name)
	g.log.Debug("grace period: client settled", "client", name, "why", why)
	if len(g.pending) == 0 {
		g.endLocked("every client settled")
	}
}

func (g *grace) end(why string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.endLocked(why)
}

func (g *grace) endLocked(why string) {
	if g.active {
		g.active = false
		g.log.Info("grace period over", "why", why, "unsettled", len(g.pending))
	}
	clear(g.pending)
}

// notifyClient tells a client recorded before the restart that we
// restarted, so that it reclaims its locks.
func (s *Service) notifyClient(rec monRecord) {
	host, err := hostAddr(rec.Addr)
	if err != nil {
		s.grace.done(rec.Name, "unusable address")
		return
	}
	var local netip.Addr
	if a, err := netip.ParseAddr(rec.ServerAddr); err == nil {
		local = a
	}
	monName := s.cfg.ServerName
	if monName == "" {
		monName = rec.ServerAddr
	}
	if monName == "" {
		monName = hostname()
	}
	args := StatChge{MonName: monName, State: s.mon.currentState()}
	delay := s.cfg.NotifyBackoff
	for attempt := 0; ; attempt++ {
		err = s.callNotify(local, host, &args)
		if err == nil {
			s.log.Info("told client of our restart", "client", rec.Name, "host", host)
			s.grace.notified(rec.Name)
			return
		}
		if attempt >= s.cfg.NotifyRetries {
			break
		}
		select {
		case <-time.After(delay):
		case <-s.ctx.Done():
			return
		}
		delay *= 2
	}
	s.log.Warn("cannot tell client of our restart; its locks are lost", "client", rec.Name, "host", host, "err", err)
	s.grace.done(rec.Name, "SM_NOTIFY undeliverable")
}

func (s *Service) callNotify(local, host netip.Addr, args *StatChge) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.CallbackTimeout)
	defer cancel()
	c, err := s.cfg.Dialer.Dial(ctx, local, host, NSMProg, NSMVers)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Call(ctx, NSMProg, NSMVers, SMProcNotify, args.Encode)
	return err
}

type nsmHandler struct{ s *Service }

// ServeRPC implements rpc.Handler for NSM v1. The server is its own
// status monitor: SM_NOTIFY from a restarted client releases that
// client's locks; SM_STAT reports our state. SM_MON, SM_UNMON,
// SM_UNMON_ALL and SM_SIMU_CRASH are for a lock manager on the same host,
// so they are honoured only from loopback addresses; registrations are
// called back (status) when the monitored host sends SM_NOTIFY.
func (h nsmHandler) ServeRPC(_ context.Context, req *rpc.Request, w *xdr.Writer) error {
	s := h.s
	m := s.mon
	r := req.Args
	local := req.RemoteIP.IsLoopback()
	switch req.Proc {
	case SMProcNull:
	case SMProcStat:
		var a SMName
		if a.Decode(r) != nil {
			return rpc.ErrGarbageArgs
		}
		res := SMStatRes{Res: SMStatSucc, State: m.currentState()}
		res.Encode(w)
	case SMProcMon:
		var a Mon
		if a.Decode(r) != nil {
			return rpc.ErrGarbageArgs
		}
		res := SMStatRes{Res: SMStatFail, State: m.currentState()}
		if local && m.addReg(smReg{id: a.MonID, priv: a.Priv}) {
			res.Res = SMStatSucc
		}
		res.Encode(w)
	case SMProcUnmon:
		var a MonID
		if a.Decode(r) != nil {
			return rpc.ErrGarbageArgs
		}
		if local {
			m.removeRegs(func(g smReg) bool { return g.id == a })
		}
		w.Int32(m.currentState())
	case SMProcUnmonAll:
		var a MyID
		if a.Decode(r) != nil {
			return rpc.ErrGarbageArgs
		}
		if local {
			m.removeRegs(func(g smReg) bool { return g.id.MyID == a })
		}
		w.Int32(m.currentState())
	case SMProcSimuCrash:
		// A simulated crash of this host: drop the registrations and
		// move to a new state. Lock clients are not told: their locks
		// were not lost, and a reclaim outside a grace period would be
		// refused.
		if local {
			m.mu.Lock()
			m.regs = nil
			m.state = nextState(m.state)
			st := m.state
			m.mu.Unlock()
			if err := atomicfile.Write(filepath.Join(m.dir, "state"), []byte(strconv.Itoa(int(st))+"\n"), 0o600); err != nil {
				return err
			}
		}
	case SMProcNotify:
		var a StatChge
		if a.Decode(r) != nil {
			return rpc.ErrGarbageArgs
		}
		s.clientRebooted(a.MonName, req.RemoteIP, a.State, true)
		s.callRegistrations(a)
	default:
		return rpc.ErrProcUnavail
	}
	return nil
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
// to loopback only.
func (s *Service) callRegistrations(a StatChge) {
	s.mon.mu.Lock()
	var regs []smReg
	for _, g := range s.mon.regs {
		if g.id.MonName == a.MonName {
			regs = append(regs, g)
		}
	}
	s.mon.mu.Unlock()
	for _, g := range regs {
		host := netip.AddrFrom4([4]byte{127, 0, 0, 1})
		if ip, err := netip.ParseAddr(g.id.MyID.MyName); err == nil && ip.IsLoopback() {
			host = ip
		}
		st := SMStatus{MonName: a.MonName, State: a.State, Priv: g.priv}
		id := g.id.MyID
		select {
		case s.async <- struct{}{}:
		default:
			continue
		}
		if !s.background(func() {
			defer func() { <-s.async }()
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.CallbackTimeout)
			defer cancel()
			c, err := s.cfg.Dialer.Dial(ctx, netip.Addr{}, host, uint32(id.Prog), uint32(id.Vers))
			if err != nil {
				s.log.Debug("SM_MON callback: cannot connect", "err", err)
				return
			}
			defer c.Close()
			c.Call(ctx, uint32(id.Prog), uint32(id.Vers), uint32(id.Proc), st.Encode)
		}) {
			<-s.async
		}
	}
}
