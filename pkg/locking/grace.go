package locking

import (
	"log/slog"
	"sync"
	"time"
)

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
