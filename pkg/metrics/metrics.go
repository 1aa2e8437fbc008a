// Package metrics exposes nfsd's Prometheus metrics: RPC calls and their
// latency per program and procedure, NFS errors by status, bytes moved,
// and open connections.
package metrics

import (
	"errors"
	"net/http"
	httppprof "net/http/pprof"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rwxnfs/rwxnfs/internal/version"
	"github.com/rwxnfs/rwxnfs/pkg/nfs3/wire"
	"github.com/rwxnfs/rwxnfs/pkg/portmap"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
)

// Metrics implements rpcserver.Observer and nfs3.Metrics.
type Metrics struct {
	Registry *prometheus.Registry

	calls     *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	rpcErrors *prometheus.CounterVec
	nfsErrors *prometheus.CounterVec
	read      prometheus.Counter
	written   prometheus.Counter
	conns     prometheus.Gauge
}

// New registers nfsd's metrics in a fresh registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rwxnfs_rpc_calls_total", Help: "RPC calls served, by program and procedure.",
		}, []string{"program", "procedure"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rwxnfs_rpc_duration_seconds", Help: "Time to serve an RPC call, by program and procedure.",
			Buckets: prometheus.ExponentialBuckets(25e-6, 2.5, 12),
		}, []string{"program", "procedure"}),
		rpcErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rwxnfs_rpc_errors_total", Help: "RPC calls answered with an RPC-level error, by program and error.",
		}, []string{"program", "error"}),
		nfsErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rwxnfs_nfs_errors_total", Help: "NFS calls that failed, by procedure and NFS status.",
		}, []string{"procedure", "status"}),
		read: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rwxnfs_read_bytes_total", Help: "File data bytes returned by READ.",
		}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rwxnfs_written_bytes_total", Help: "File data bytes accepted by WRITE.",
		}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rwxnfs_connections_open", Help: "Open client connections.",
		}),
	}
	// The build, as a constant 1 with labels: joins on it tell which
	// version served what.
	b := version.Get()
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rwxnfs_build_info", Help: "The nfsd build: module version, VCS revision and Go version (always 1).",
	}, []string{"version", "revision", "goversion"})
	build.WithLabelValues(b.Version, b.Revision, b.GoVersion).Set(1)
	m.Registry.MustRegister(build, m.calls, m.latency, m.rpcErrors, m.nfsErrors, m.read, m.written, m.conns,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ConnOpened implements rpcserver.Observer.
func (m *Metrics) ConnOpened() { m.conns.Inc() }

// ConnClosed implements rpcserver.Observer.
func (m *Metrics) ConnClosed() { m.conns.Dec() }

// CallDone implements rpcserver.Observer.
func (m *Metrics) CallDone(prog, vers, proc uint32, d time.Duration, err error) {
	p, name := names(prog, proc)
	m.calls.WithLabelValues(p, name).Inc()
	m.latency.WithLabelValues(p, name).Observe(d.Seconds())
	if err != nil {
		var ce *rpc.CallError
		label := "system_err"
		if errors.As(err, &ce) {
			label = ce.Error()
		}
		m.rpcErrors.WithLabelValues(p, label).Inc()
	}
}

// BytesRead implements nfs3.Metrics.
func (m *Metrics) BytesRead(n int) { m.read.Add(float64(n)) }

// BytesWritten implements nfs3.Metrics.
func (m *Metrics) BytesWritten(n int) { m.written.Add(float64(n)) }

// Status implements nfs3.Metrics.
func (m *Metrics) Status(proc uint32, s wire.Status) {
	m.nfsErrors.WithLabelValues(wire.ProcName(proc), s.String()).Inc()
}

func names(prog, proc uint32) (string, string) {
	switch prog {
	case wire.Program:
		return "nfs", wire.ProcName(proc)
	case wire.MountProgram:
		return "mount", wire.MountProcName(proc)
	case portmap.Prog:
		return "portmap", strconv.Itoa(int(proc))
	case 100021:
		return "nlm", strconv.Itoa(int(proc))
	case 100024:
		return "nsm", strconv.Itoa(int(proc))
	}
	return "other", "other"
}

// Handler serves /metrics and /healthz, and with pprof /debug/pprof/.
// healthy reports readiness.
func (m *Metrics) Handler(healthy func() error, pprof bool) http.Handler {
	mux := http.NewServeMux()
	if pprof {
		mux.HandleFunc("/debug/pprof/", httppprof.Index)
		mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", httppprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", httppprof.Trace)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	return mux
}

// VolumeStats is one volume's usage and limits (0: no limit).
type VolumeStats struct {
	ID                     string
	UsedBytes, LimitBytes  int64
	UsedInodes, InodeLimit int64
}

// volumeCollector reads every volume's figures at scrape time, so the
// metrics follow volumes as they come and go.
type volumeCollector struct {
	stats                       func() []VolumeStats
	used, limit, inodes, ilimit *prometheus.Desc
}

// WatchVolumes exports per-volume usage and limits read from stats at
// every scrape. A volume without a limit has no limit sample (rather
// than 0, which alerts on used/limit would divide by).
func (m *Metrics) WatchVolumes(stats func() []VolumeStats) {
	l := []string{"volume"}
	m.Registry.MustRegister(&volumeCollector{stats: stats,
		used:   prometheus.NewDesc("rwxnfs_volume_used_bytes", "Bytes a volume holds, as its quota counts them.", l, nil),
		limit:  prometheus.NewDesc("rwxnfs_volume_limit_bytes", "A volume's byte limit (no sample: no limit).", l, nil),
		inodes: prometheus.NewDesc("rwxnfs_volume_used_inodes", "Files, directories and other entries a volume holds.", l, nil),
		ilimit: prometheus.NewDesc("rwxnfs_volume_inode_limit", "A volume's inode limit (no sample: no limit).", l, nil),
	})
}

func (c *volumeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.used
	ch <- c.limit
	ch <- c.inodes
	ch <- c.ilimit
}

func (c *volumeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, v := range c.stats() {
		ch <- prometheus.MustNewConstMetric(c.used, prometheus.GaugeValue, float64(v.UsedBytes), v.ID)
		ch <- prometheus.MustNewConstMetric(c.inodes, prometheus.GaugeValue, float64(v.UsedInodes), v.ID)
		if v.LimitBytes > 0 {
			ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(v.LimitBytes), v.ID)
		}
		if v.InodeLimit > 0 {
			ch <- prometheus.MustNewConstMetric(c.ilimit, prometheus.GaugeValue, float64(v.InodeLimit), v.ID)
		}
	}
}
