package loadgen

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Result is one workload's figures against one server. It is written as
// one JSON line; Error or NA say why there are no figures.
type Result struct {
	Server   string `json:"server"`
	Workload string `json:"workload"`
	// Mode is ModeOne when a single caller made one call at a time, each
	// waiting for the one before; empty when many calls were in flight.
	Mode string `json:"mode,omitempty"`
	// Client is the NFS client that made the calls: empty for nfsbench's
	// own, ClientLibnfs for libnfs's synchronous API.
	Client string `json:"client,omitempty"`
	// Round is which repetition (1, 2, ...) of the workload this is; every
	// round is reported and the report takes medians.
	Round    int     `json:"round,omitempty"`
	Ops      int64   `json:"ops"`
	Bytes    int64   `json:"bytes,omitempty"`
	Seconds  float64 `json:"seconds"`
	OpsPerS  float64 `json:"ops_per_s"`
	MiBPerS  float64 `json:"mib_per_s,omitempty"`
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
	Conns    int     `json:"conns"`
	InFlight int     `json:"inflight"`
	Rounds   int     `json:"rounds,omitempty"` // rounds run in all
	// ServerCPU is the CPU seconds (user+system, all threads) the server
	// process used during the workload, when its pid is known.
	ServerCPU float64 `json:"server_cpu_s,omitempty"`
	// ClientCPU is the CPU seconds nfsbench itself used meanwhile (it
	// shares the machine's CPUs with the server; for the libnfs client,
	// unknown).
	ClientCPU float64 `json:"client_cpu_s,omitempty"`
	// RPCs is the NFS calls per operation (per listing for readdir) by
	// procedure, as the server counted them (rwxnfs's /metrics), when
	// known.
	RPCs  map[string]float64 `json:"rpcs_per_op,omitempty"`
	Note  string             `json:"note,omitempty"`
	NA    string             `json:"na,omitempty"`
	Error string             `json:"error,omitempty"`
}

// Values of Result.Mode and Result.Client.
const (
	ModeOne      = "one"
	ClientLibnfs = "libnfs"
)

// op is one unit of work by worker w (its i-th claimed item); it returns
// the payload bytes moved.
type op func(ctx context.Context, w int, i int64) (int, error)

// plan says how many workers run and when they stop: after total items
// (claimed in order, so a sequential workload stays sequential), or at the
// deadline when total is 0.
type plan struct {
	workers int
	total   int64
	dur     time.Duration
}

type tally struct {
	ops, bytes int64
	lat        []time.Duration
	elapsed    time.Duration
}

// drive runs f under p and gathers latencies. The first error stops every
// worker and is returned.
func drive(ctx context.Context, p plan, f op) (tally, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var stopAt time.Time
	start := time.Now()
	if p.total == 0 {
		stopAt = start.Add(p.dur)
	}
	lats := make([][]time.Duration, p.workers)
	var bytes, ops atomic.Int64
	var once sync.Once
	var firstErr error
	var wg sync.WaitGroup
	for w := 0; w < p.workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if p.total > 0 && i >= p.total {
					return
				}
				t0 := time.Now()
				if p.total == 0 && t0.After(stopAt) {
					return
				}
				n, err := f(ctx, w, i)
				if err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
				lats[w] = append(lats[w], time.Since(t0))
				bytes.Add(int64(n))
				ops.Add(1)
			}
		}(w)
	}
	wg.Wait()
	t := tally{ops: ops.Load(), bytes: bytes.Load(), elapsed: time.Since(start)}
	for _, l := range lats {
		t.lat = append(t.lat, l...)
	}
	if firstErr == nil && ctx.Err() != nil && !errors.Is(ctx.Err(), context.Canceled) {
		firstErr = ctx.Err()
	}
	return t, firstErr
}

// result turns a tally into figures; extra is time spent after the
// measured operations that still belongs to the workload (a final COMMIT).
func (t tally) result(name string, extra time.Duration) Result {
	r := Result{Workload: name, Ops: t.ops, Bytes: t.bytes}
	secs := (t.elapsed + extra).Seconds()
	r.Seconds = secs
	if secs > 0 {
		r.OpsPerS = float64(t.ops) / secs
		if t.bytes > 0 {
			r.MiBPerS = float64(t.bytes) / secs / (1 << 20)
		}
	}
	r.P50us, r.P99us = percentiles(t.lat)
	return r
}

func percentiles(l []time.Duration) (p50, p99 float64) {
	if len(l) == 0 {
		return 0, 0
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	at := func(q float64) float64 {
		i := int(q * float64(len(l)-1))
		return float64(l[i]) / float64(time.Microsecond)
	}
	return at(0.50), at(0.99)
}
