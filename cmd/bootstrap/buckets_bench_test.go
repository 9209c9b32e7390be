package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/health-data-ai/bootstrap/internal/benchtest"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// BenchmarkBuckets runs the binary on N plain buckets, N = 20, 200 and
// 2,000, against its baseline in the same iteration: the same requests (one
// ListBuckets, a PUT per bucket) sent one at a time from one keep-alive
// SigV4 client in Go (benchtest.S3Client), on buckets of its own; the two
// alternate which goes first. It reports the cold apply, the no-op re-run
// (x-cold = no-op/cold), the baseline (x-go = cold/baseline), the cold
// apply per bucket and the binary's peak RSS.
func BenchmarkBuckets(b *testing.B) {
	mio := testenv.MinIO(b)
	bin := benchtest.Build(b, ".")
	env := append(os.Environ(), "BENCH_MINIO_USER="+mio.AccessKey, "BENCH_MINIO_SECRET="+mio.SecretKey)
	s3 := benchtest.NewS3Client(mio.Endpoint, mio.AccessKey, mio.SecretKey)
	for _, n := range []int{20, 200, 2000} {
		b.Run("buckets="+strconv.Itoa(n), func(b *testing.B) {
			var apply benchtest.Applies
			var base benchtest.Series
			ours := func(prefix string) { apply.Measure(b, bin, env, bucketsConfig(mio, prefix, n)) }
			theirs := func(prefix string) {
				t0 := time.Now()
				if err := s3.CreateBuckets(bucketNames(prefix, n)); err != nil {
					b.Fatal(err)
				}
				base.AddMs(time.Since(t0))
			}
			i := 0
			for b.Loop() {
				po, pg := testenv.Unique("bo"), testenv.Unique("bg")
				if i%2 == 0 {
					ours(po)
					theirs(pg)
				} else {
					theirs(pg)
					ours(po)
				}
				i++
				removeBuckets(b, mio, append(bucketNames(po, n), bucketNames(pg, n)...)...)
			}
			apply.Report(b, n)
			base.Report(b, "go-ms")
			benchtest.Ratio(b, "x-go", apply.Cold, base)
		})
	}
}

func bucketNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%04d", prefix, i)
	}
	return out
}

func bucketsConfig(mio testenv.MinIOServer, prefix string, n int) string {
	var c strings.Builder
	fmt.Fprintf(&c, `version: 1
secrets: {source: {type: env, env: {prefix: BENCH_}}}
minio:
  - name: datalake
    endpoint: "%s"
    accessKey: {secret: minio-user}
    secretKey: {secret: minio-secret}
    buckets:
`, mio.Endpoint)
	for _, name := range bucketNames(prefix, n) {
		fmt.Fprintf(&c, "      - {name: %s}\n", name)
	}
	return c.String()
}
