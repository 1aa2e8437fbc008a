package nfsd

import (
	"context"
	"testing"

	"golang.org/x/sys/unix"
)

// cpuTime is the process's CPU time so far (client and server: both run
// in the test). CPU per call counts what wall time hides on a loaded
// machine: the scheduler's spinning for work after each hand-off.
func cpuTime(b *testing.B) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// cpuPerOp reports the CPU µs per call since start.
func cpuPerOp(b *testing.B, start int64) {
	b.ReportMetric(float64(cpuTime(b)-start)/1e3/float64(b.N), "cpu-µs/op")
}

// BenchmarkNullRoundTrip: NULL calls on one connection, one in flight.
func BenchmarkNullRoundTrip(b *testing.B) {
	d := start(b, b.TempDir())
	c := dial(b, d, 0, 0)
	ctx := context.Background()
	b.ResetTimer()
	cpu := cpuTime(b)
	for i := 0; i < b.N; i++ {
		if err := c.Null(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	cpuPerOp(b, cpu)
}

// BenchmarkNullPipelined: NULL calls on one connection, 32 in flight.
func BenchmarkNullPipelined(b *testing.B) {
	d := start(b, b.TempDir())
	c := dial(b, d, 0, 0)
	ctx := context.Background()
	b.SetParallelism(16)
	b.ResetTimer()
	cpu := cpuTime(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.Null(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	cpuPerOp(b, cpu)
}

// BenchmarkGetattr: GETATTR of a file on one connection, one in flight.
func BenchmarkGetattr(b *testing.B) {
	d := start(b, b.TempDir())
	c := dial(b, d, 0, 0)
	ctx := context.Background()
	vol, err := c.Mount(ctx, "/volumes/default")
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu := cpuTime(b)
	for i := 0; i < b.N; i++ {
		if _, err := c.GetAttr(ctx, vol); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	cpuPerOp(b, cpu)
}
