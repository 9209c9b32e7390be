// Command benchplot turns the output of scripts/bench.sh into
// BENCHMARKS.md (the machine, the server versions, every benchmark's
// min/median/max against its target, the scale table, and the binary's
// size by module) and BENCHMARKS.svg (how cost per object and peak RSS
// grow with size). It reads what bench.sh wrote and touches nothing else.
//
//	go run ./scripts/benchplot -bench bench.out -env bench.env -bin BINARY -md BENCHMARKS.md -svg BENCHMARKS.svg
//
// BINARY is the bootstrap command built as `make build` builds it but
// without -s, so that `go tool nm` can attribute its bytes.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

func main() {
	benchOut := flag.String("bench", "bench.out", "go test -bench output")
	envFile := flag.String("env", "bench.env", "key=value lines: machine, date, server versions, probes")
	bin := flag.String("bin", "", "the bootstrap binary with symbols, for the size table")
	md := flag.String("md", "BENCHMARKS.md", "markdown to write")
	svg := flag.String("svg", "BENCHMARKS.svg", "picture to write")
	flag.Parse()
	if err := run(*benchOut, *envFile, *bin, *md, *svg); err != nil {
		fmt.Fprintln(os.Stderr, "benchplot:", err)
		os.Exit(1)
	}
}

func run(benchOut, envFile, bin, mdPath, svgPath string) error {
	env, err := readEnv(envFile)
	if err != nil {
		return err
	}
	// bench.sh runs go test with GOMAXPROCS at its default, the cores.
	procs, err := strconv.Atoi(env["cores"])
	if err != nil {
		return fmt.Errorf("%s: cores=%q is not a number", envFile, env["cores"])
	}
	f, err := os.Open(benchOut)
	if err != nil {
		return err
	}
	defer f.Close()
	results, err := parse(f, procs)
	if err != nil {
		return fmt.Errorf("read %s: %w", benchOut, err)
	}
	if len(results) == 0 {
		return fmt.Errorf("no benchmark results in %s", benchOut)
	}
	var sizes []sizeRow
	var binSize int64
	if bin != "" {
		if sizes, binSize, err = sizeTable(bin); err != nil {
			return fmt.Errorf("size table: %w", err)
		}
	}
	doc := render(results, env, sizes, binSize, filepath.Base(svgPath))
	if err := os.WriteFile(mdPath, []byte(doc), 0o644); err != nil {
		return err
	}
	return os.WriteFile(svgPath, []byte(picture(results, env["date"])), 0o644)
}

// readEnv reads key=value lines; later keys win.
func readEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out, sc.Err()
}

func render(results []result, env map[string]string, sizes []sizeRow, binSize int64, svgName string) string {
	var b strings.Builder
	b.WriteString("# Benchmarks\n\n")
	fmt.Fprintf(&b, "Measured by `make bench` (scripts/bench.sh) on %s, on %s.\n", env["date"], env["machine"])
	fmt.Fprintf(&b, "Load average when it started and ended: %s / %s (other work shared the machine; ratios against\n", env["load_start"], env["load_end"])
	b.WriteString("baselines measured in the same iterations are what to read, not absolute times).\n\n")
	b.WriteString("Servers (the test environment of scripts/testenv.sh):\n\n")
	for _, k := range []string{"postgres", "redis", "rabbitmq", "minio", "go"} {
		if v := env[k]; v != "" {
			fmt.Fprintf(&b, "- %s\n", v)
		}
	}
	b.WriteString(method)
	verdicts := summary(&b, results)
	b.WriteString("\n## All results\n\n")
	table(&b, results)
	scale(&b, results, svgName)
	sizeSection(&b, sizes, binSize, env)
	notes(&b, results, verdicts, env)
	return b.String()
}

const method = `
How it measures. Every benchmark repeats its measurement at least five times (one b.Loop
iteration each, -benchtime Nx) and reports the median and the extremes; every ratio (x-…) is
a ratio of medians, of bootstrap against a baseline measured in the same iterations, the two
taking turns going first. The cmd/bootstrap benchmarks run the binary as a user does, built as
` + "`make build`" + ` builds it (static, -trimpath, -s -w), with its peak RSS as GNU time reports it (%M, the
binary's own maxrss); the others run the backend in process.

Baselines: ` + "`psql -f`" + ` of the same DDL (PostgreSQL; plaintext passwords the server hashes with
the same 4096 SCRAM rounds bootstrap spends client-side); one ` + "`POST /api/definitions`" + ` of the
same objects (RabbitMQ); the same S3 requests sent one at a time by one keep-alive SigV4 client
in Go, and, as a second row, a sequential ` + "`curl --aws-sigv4`" + ` loop, which is mostly process
start (MinIO); SET/GET/DEL on a go-redis client connected and authenticated before timing
(Redis); re-sealing (sealed Secrets); the cold run itself (every x-cold row: no-op/cold).
`

// summary lists the judged targets, met or not, and returns them.
func summary(b *strings.Builder, results []result) []verdict {
	var tmp strings.Builder
	judged := table(&tmp, results)
	met := 0
	for _, v := range judged {
		if v.ok {
			met++
		}
	}
	fmt.Fprintf(b, "\n## Targets\n\n%d of %d targets met.\n\n", met, len(judged))
	b.WriteString("| benchmark | metric | value | target | ok |\n|---|---|---:|---|---|\n")
	for _, v := range judged {
		val := v.value.med
		if v.t.onMax {
			val = v.value.max
		}
		ok := "yes"
		if !v.ok {
			ok = "**no**"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", v.bench, v.unit, num(val), v.t, ok)
	}
	return judged
}
