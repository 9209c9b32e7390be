// Package benchtest is what the benchmarks share: the samples of one
// quantity summarised as min/median/max, ratios of medians, and the
// bootstrap binary built and run as a user runs it (wall time, and peak RSS
// from the child's rusage). Benchmarks run only under `make bench`
// (scripts/bench.sh), never under `make test`.
//
// Every benchmark repeats its measurement once per b.Loop iteration
// (bench.sh passes -benchtime Nx, N >= 5) and reports, for a quantity
// named like "cold-ms", three metrics: "cold-ms" (the median),
// "cold-ms-min" and "cold-ms-max". Ratios ("x-psql") are of medians.
// scripts/benchplot turns them into BENCHMARKS.md and its picture.
package benchtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Series is the samples of one quantity, one per iteration.
type Series []float64

// Add appends a sample.
func (s *Series) Add(v float64) { *s = append(*s, v) }

// AddMs appends a duration in milliseconds.
func (s *Series) AddMs(d time.Duration) { s.Add(Ms(d)) }

// Median is the middle sample (the mean of the middle two for an even
// count); 0 for none.
func (s Series) Median() float64 {
	if len(s) == 0 {
		return 0
	}
	v := slices.Sorted(slices.Values(s))
	m := len(v) / 2
	if len(v)%2 == 1 {
		return v[m]
	}
	return (v[m-1] + v[m]) / 2
}

// Min is the smallest sample; 0 for none.
func (s Series) Min() float64 {
	if len(s) == 0 {
		return 0
	}
	return slices.Min(s)
}

// Max is the largest sample; 0 for none.
func (s Series) Max() float64 {
	if len(s) == 0 {
		return 0
	}
	return slices.Max(s)
}

// Scaled returns every sample multiplied by f (per object: 1/objects).
func (s Series) Scaled(f float64) Series {
	out := make(Series, len(s))
	for i, v := range s {
		out[i] = v * f
	}
	return out
}

// Report reports the median as unit and the extremes as unit-min and
// unit-max.
func (s Series) Report(b *testing.B, unit string) {
	b.Helper()
	if len(s) == 0 {
		b.Fatalf("no samples of %s", unit)
	}
	b.ReportMetric(s.Median(), unit)
	b.ReportMetric(s.Min(), unit+"-min")
	b.ReportMetric(s.Max(), unit+"-max")
}

// Ratio reports median(num)/median(den) as unit and returns it.
func Ratio(b *testing.B, unit string, num, den Series) float64 {
	b.Helper()
	r := num.Median() / den.Median()
	b.ReportMetric(r, unit)
	return r
}

// Ms is d in milliseconds.
func Ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Build builds the bootstrap command in pkgDir into a temporary folder as
// `make build` and the image do (static, -trimpath, -s -w) and returns its
// path.
func Build(b *testing.B, pkgDir string) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "bootstrap")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
	cmd.Dir = pkgDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// Run runs bin with env and args and returns its wall time and peak RSS in
// MiB. A failed run fails the benchmark with its output.
//
// The peak comes from GNU time (%M), which forks before it execs bin. Go's
// os/exec starts a child with vfork (CLONE_VM): until exec the child runs
// in the parent's memory, and Linux carries that memory's high-water mark
// into the child's rusage maxrss, so ProcessState's maxrss would report
// this test binary's size, not bootstrap's. The wall time includes time's
// own fork and exec, a millisecond.
func Run(b *testing.B, bin string, env []string, args ...string) (time.Duration, float64) {
	b.Helper()
	const gnuTime = "/usr/bin/time"
	if _, err := os.Stat(gnuTime); err != nil {
		b.Fatalf("%s (Debian package time) measures peak RSS: %v", gnuTime, err)
	}
	out := filepath.Join(b.TempDir(), "maxrss")
	cmd := exec.Command(gnuTime, append([]string{"-f", "%M", "-o", out, bin}, args...)...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		b.Fatalf("bootstrap %v: %v\n%s\n%s", args, err, stdout.String(), stderr.String())
	}
	m, err := os.ReadFile(out)
	if err != nil {
		b.Fatal(err)
	}
	kib, err := strconv.ParseFloat(strings.TrimSpace(string(m)), 64)
	if err != nil {
		b.Fatalf("GNU time's maxrss %q: %v", m, err)
	}
	return d, kib / 1024
}

// Applies is what the binary's benchmarks measure of one config: a cold
// apply, then its no-op re-run, and the higher peak RSS of the two, one
// sample of each per iteration.
type Applies struct{ Cold, Noop, RSS Series }

// Measure writes config to a file of its own and runs `bootstrap apply`
// on it twice with env: the first run is cold, the second a no-op. It
// returns the file, for runs of other commands on the same config.
func (a *Applies) Measure(b *testing.B, bin string, env []string, config string) string {
	b.Helper()
	f := filepath.Join(b.TempDir(), "bootstrap.yaml")
	if err := os.WriteFile(f, []byte(config), 0o600); err != nil {
		b.Fatal(err)
	}
	d, r1 := Run(b, bin, env, "apply", "-f", f, "--log-level", "warn")
	a.Cold.AddMs(d)
	d, r2 := Run(b, bin, env, "apply", "-f", f, "--log-level", "warn")
	a.Noop.AddMs(d)
	a.RSS.Add(max(r1, r2))
	return f
}

// Report reports cold-ms, noop-ms, x-cold (no-op/cold) and peak-rss-MiB,
// and for objects > 0 the cold apply per object as ms-per-object.
func (a Applies) Report(b *testing.B, objects int) {
	b.Helper()
	a.Cold.Report(b, "cold-ms")
	a.Noop.Report(b, "noop-ms")
	Ratio(b, "x-cold", a.Noop, a.Cold)
	if objects > 0 {
		a.Cold.Scaled(1/float64(objects)).Report(b, "ms-per-object")
	}
	a.RSS.Report(b, "peak-rss-MiB")
}
