package nfsd

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rwxnfs/rwxnfs/pkg/rpcserver"
)

// registerLimitMetrics exports what the transports hold against their
// limits and what they refused, so an operator sees an abusive client
// being held off (docs/design.md, "Abusive clients"). Each value is summed
// over the daemon's servers (NFS port, its UDP, the portmapper) when
// scraped.
func (d *Daemon) registerLimitMetrics() {
	sum := func(f func(st rpcserver.Stats) float64) func() float64 {
		return func() float64 {
			var v float64
			for _, s := range []*rpcserver.Server{d.rpc, d.udp, d.pmap} {
				if s != nil {
					v += f(s.Stats())
				}
			}
			return v
		}
	}
	reg := d.Metrics.Registry
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rwxnfs_rpc_calls_serving", Help: "Calls being served (holding a server-wide call slot)."},
			sum(func(st rpcserver.Stats) float64 { return float64(st.Calls) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rwxnfs_rpc_replies_unsent", Help: "Calls served whose replies their clients have not yet taken."},
			sum(func(st rpcserver.Stats) float64 { return float64(st.Replying) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rwxnfs_rpc_reserved_bytes", Help: "Bytes of call records reserved from the in-flight budget."},
			sum(func(st rpcserver.Stats) float64 { return float64(st.Bytes) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rwxnfs_rpc_rejected_connections_total", Help: "Connections closed or refused for breaking a limit (oversized or stalled record, too many from one client or in all)."},
			sum(func(st rpcserver.Stats) float64 { return float64(st.RejectedConns) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rwxnfs_rpc_reclaimed_connections_total", Help: "Idle connections closed to admit new ones at the connection cap, or for being idle too long."},
			sum(func(st rpcserver.Stats) float64 { return float64(st.ReclaimedConns) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rwxnfs_rpc_stalled_claims_total", Help: "Connections closed for holding a claim on the byte budget, with no bytes arriving, while others waited for it."},
			sum(func(st rpcserver.Stats) float64 { return float64(st.StalledClaims) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rwxnfs_rpc_udp_dropped_total", Help: "UDP calls dropped for their source's reply rate."},
			sum(func(st rpcserver.Stats) float64 { return float64(st.UDPDropped) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rwxnfs_rpc_dropped_calls_total", Help: "Malformed messages dropped without a reply."},
			sum(func(st rpcserver.Stats) float64 { return float64(st.DroppedCalls) })),
	)
}
