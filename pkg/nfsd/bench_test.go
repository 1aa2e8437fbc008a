package nfsd

import (
	"context"
	"testing"
)

// BenchmarkNullRoundTrip: NULL calls on one connection, one in flight.
func BenchmarkNullRoundTrip(b *testing.B) {
	d := start(b, b.TempDir())
	c := dial(b, d, 0, 0)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Null(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkNullPipelined: NULL calls on one connection, 32 in flight.
func BenchmarkNullPipelined(b *testing.B) {
	d := start(b, b.TempDir())
	c := dial(b, d, 0, 0)
	ctx := context.Background()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.Null(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
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
	for i := 0; i < b.N; i++ {
		if _, err := c.GetAttr(ctx, vol); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}
