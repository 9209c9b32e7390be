package redis

import (
	"context"
	"testing"
	"time"

	"github.com/health-data-ai/bootstrap/internal/benchtest"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// BenchmarkRedisRoundtrip compares the round-trip check (SET with a TTL,
// GET, DEL of a random probe key) with the same three commands written
// directly against go-redis. Both clients are connected and authenticated
// before anything is timed: go-redis dials and sends AUTH lazily, on the
// first command, which would otherwise land in the baseline's first
// sample. Each iteration times 200 checks and 200 baseline round trips,
// interleaved so both see the same server load, and reports microseconds
// per check; x-baseline is the ratio of medians.
func BenchmarkRedisRoundtrip(b *testing.B) {
	const rounds = 200
	s := testenv.Redis(b, "health")
	srv := server{name: "health", addr: s.Addr, password: s.Password}
	tgt := New(srv.config(0), srv.creds(), nil)
	defer tgt.Close()
	ctx := context.Background()
	if err := tgt.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	base := srv.admin(b, 0)
	if err := base.Ping(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	if err := tgt.probeRoundtrip(ctx); err != nil {
		b.Fatal(err)
	}
	var ours, baseline benchtest.Series
	for b.Loop() {
		var o, p time.Duration
		for range rounds {
			t0 := time.Now()
			if err := tgt.probeRoundtrip(ctx); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			k := KeyPrefix + randomHex(8)
			if err := base.Set(ctx, k, randomHex(16), KeyTTL).Err(); err != nil {
				b.Fatal(err)
			}
			if err := base.Get(ctx, k).Err(); err != nil {
				b.Fatal(err)
			}
			if err := base.Del(ctx, k).Err(); err != nil {
				b.Fatal(err)
			}
			o, p = o+t1.Sub(t0), p+time.Since(t1)
		}
		ours.Add(float64(o.Nanoseconds()) / 1000 / rounds)
		baseline.Add(float64(p.Nanoseconds()) / 1000 / rounds)
	}
	ours.Report(b, "us-per-check")
	baseline.Report(b, "us-per-baseline")
	benchtest.Ratio(b, "x-baseline", ours, baseline)
}
