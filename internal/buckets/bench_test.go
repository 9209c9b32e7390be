package buckets

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/health-data-ai/bootstrap/internal/benchtest"
	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// BenchmarkBuckets200 creates 200 buckets with a whole apply, in process
// (connect, plan, apply in the engine's order), and in the same iteration
// 200 other buckets with each of two baselines, on buckets of their own:
//
//   - go: the same requests (one ListBuckets, a PUT per bucket) one at a
//     time from one keep-alive SigV4 client in Go (benchtest.S3Client), the
//     fair baseline: x-go = ours/go;
//   - curl: a sequential loop of `curl --aws-sigv4 ... -X PUT`, a process
//     per bucket, so mostly process start: x-curl = ours/curl.
//
// It also times a no-op re-plan of the 200 existing buckets
// (x-cold = no-op/cold). Ratios are of medians; the three creators take
// turns going first. curl reads the credentials from a 0600 config file
// (-K), never its argument list.
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
	s3 := benchtest.NewS3Client(e.srv.Endpoint, e.srv.AccessKey, e.srv.SecretKey)

	var ours, goBase, curlBase, noop benchtest.Series
	runners := []func(names []string){
		func(names []string) { ours.AddMs(applyBuckets(b, e, names)) },
		func(names []string) {
			start := time.Now()
			if err := s3.CreateBuckets(names); err != nil {
				b.Fatal(err)
			}
			goBase.AddMs(time.Since(start))
		},
		func(names []string) {
			start := time.Now()
			for _, name := range names {
				cmd := exec.Command(curl, "-sSf", "-o", "/dev/null", "-K", cfgFile,
					"--aws-sigv4", "aws:amz:us-east-1:s3", "-X", "PUT", "http://"+e.srv.Endpoint+"/"+name)
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("curl PUT %s: %v: %s", name, err, out)
				}
			}
			curlBase.AddMs(time.Since(start))
		},
	}
	i := 0
	for b.Loop() {
		prefix := testenv.Unique("bb")
		sets := make([][]string, len(runners))
		var all []string
		for k := range sets {
			for j := range n {
				sets[k] = append(sets[k], fmt.Sprintf("%s-%d-%03d", prefix, k, j))
			}
			all = append(all, sets[k]...)
		}
		for k := range runners {
			r := (i + k) % len(runners)
			runners[r](sets[r])
		}
		i++
		noop.AddMs(replanBuckets(b, e, sets[0]))
		if err := s3.RemoveBuckets(all); err != nil {
			b.Fatal(err)
		}
	}
	ours.Report(b, "cold-ms")
	goBase.Report(b, "go-ms")
	curlBase.Report(b, "curl-ms")
	noop.Report(b, "noop-ms")
	benchtest.Ratio(b, "x-go", ours, goBase)
	benchtest.Ratio(b, "x-curl", ours, curlBase)
	benchtest.Ratio(b, "x-cold", noop, ours)
}

func bucketConfigs(names []string) []config.Bucket {
	out := make([]config.Bucket, len(names))
	for i, name := range names {
		out[i] = config.Bucket{Name: name}
	}
	return out
}

// applyBuckets times connect, plan and apply of the buckets, which must all
// be created.
func applyBuckets(b *testing.B, e env, names []string) time.Duration {
	start := time.Now()
	tgt := e.target(bucketConfigs(names)...)
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

// replanBuckets times connect and plan of the existing buckets, which must
// need nothing.
func replanBuckets(b *testing.B, e env, names []string) time.Duration {
	start := time.Now()
	tgt := e.target(bucketConfigs(names)...)
	defer tgt.Close()
	for _, c := range plan(b, tgt) {
		if c.Action != reconcile.Noop {
			b.Fatalf("re-plan: %s %s", c.Action, c.Resource)
		}
	}
	return time.Since(start)
}
