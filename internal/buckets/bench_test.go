package buckets

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// BenchmarkBuckets200 creates 200 buckets with a whole apply (connect, plan,
// apply in the engine's order) and, in the same run, 200 other buckets with
// the baseline: a sequential loop of `curl --aws-sigv4 ... -X PUT`. It
// reports ours/curl as x-curl (target <= 1.0), both times, and the time of
// a no-op re-plan of the 200 existing buckets. The credentials reach curl
// through a 0600 config file (-K), never its argument list.
func BenchmarkBuckets200(b *testing.B) {
	const n = 200
	e := newEnv(b)
	curl, err := exec.LookPath("curl")
	if err != nil {
		testenv.Missing(b, "curl (the baseline)")
	}
	cfgFile := filepath.Join(b.TempDir(), "curl.cfg")
	if err := os.WriteFile(cfgFile, fmt.Appendf(nil, "user = \"%s:%s\"\n", e.srv.AccessKey, e.srv.SecretKey), 0o600); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.Remove(cfgFile) })

	ours := func(names []string) time.Duration {
		buckets := make([]config.Bucket, len(names))
		for i, name := range names {
			buckets[i] = config.Bucket{Name: name}
		}
		start := time.Now()
		tgt := e.target(buckets...)
		defer tgt.Close()
		created := 0
		for _, c := range plan(b, tgt) {
			if c.Apply == nil {
				continue
			}
			if err := c.Apply(context.Background()); err != nil {
				b.Fatalf("apply %s: %v", c.Resource, err)
			}
			created++
		}
		d := time.Since(start)
		if created != len(names) {
			b.Fatalf("apply created %d buckets, want %d", created, len(names))
		}
		return d
	}
	baseline := func(names []string) time.Duration {
		start := time.Now()
		for _, name := range names {
			cmd := exec.Command(curl, "-sSf", "-o", "/dev/null", "-K", cfgFile,
				"--aws-sigv4", "aws:amz:us-east-1:s3", "-X", "PUT", "http://"+e.srv.Endpoint+"/"+name)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("curl PUT %s: %v: %s", name, err, out)
			}
		}
		return time.Since(start)
	}
	noop := func(names []string) time.Duration {
		buckets := make([]config.Bucket, len(names))
		for i, name := range names {
			buckets[i] = config.Bucket{Name: name}
		}
		start := time.Now()
		tgt := e.target(buckets...)
		defer tgt.Close()
		for _, c := range plan(b, tgt) {
			if c.Action != reconcile.Noop {
				b.Fatalf("re-plan: %s %s", c.Action, c.Resource)
			}
		}
		return time.Since(start)
	}

	var oursTotal, curlTotal, noopTotal time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		prefix := testenv.Unique("bb")
		mine, theirs := make([]string, n), make([]string, n)
		for j := range n {
			mine[j] = fmt.Sprintf("%s-o-%03d", prefix, j)
			theirs[j] = fmt.Sprintf("%s-c-%03d", prefix, j)
		}
		e.removeBuckets(b, append(append([]string{}, mine...), theirs...)...)
		b.StartTimer()
		// Alternate who goes first so neither gets a warmer server.
		if i%2 == 0 {
			oursTotal += ours(mine)
			curlTotal += baseline(theirs)
		} else {
			curlTotal += baseline(theirs)
			oursTotal += ours(mine)
		}
		noopTotal += noop(mine)
	}
	b.ReportMetric(float64(oursTotal)/float64(curlTotal), "x-curl")
	b.ReportMetric(float64(oursTotal.Milliseconds())/float64(b.N), "apply-ms")
	b.ReportMetric(float64(curlTotal.Milliseconds())/float64(b.N), "curl-ms")
	b.ReportMetric(float64(noopTotal.Milliseconds())/float64(b.N), "noop-plan-ms")
	// A no-op must read each bucket's location and object lock (S3 has no
	// batch read), while creating one is a single PUT: expect ~0.3×, not
	// the 0.1× the expensive creates of PostgreSQL and RabbitMQ allow.
	b.ReportMetric(float64(noopTotal)/float64(oursTotal), "x-cold")
}
