package main

import (
	"fmt"
	"strconv"
	"strings"
)

// scale writes the scale table and links the picture.
func scale(b *strings.Builder, results []result, svgName string) {
	b.WriteString("\n## How cost grows with size\n\n")
	fmt.Fprintf(b, "![cost per object and peak RSS by size](%s)\n\n", svgName)
	b.WriteString("The binary, cold apply then no-op re-run, at three sizes each (medians; per object = cold apply / size).\n\n")
	b.WriteString("| backend | size | cold ms | ms per object (min–max) | baseline ms per object | x-cold | peak RSS MiB (max) |\n")
	b.WriteString("|---|---:|---:|---|---:|---:|---:|\n")
	for _, p := range panels {
		pts := p.points(results)
		for _, pt := range pts {
			name := p.bench + "/" + p.param + "=" + strconv.FormatFloat(pt.n, 'f', -1, 64)
			base := ""
			if pt.base > 0 {
				base = num(pt.base) + " (" + p.baseLabel + ")"
			}
			fmt.Fprintf(b, "| %s | %s %s | %s | %s (%s–%s) | %s | %s | %s |\n", p.title, strconv.FormatFloat(pt.n, 'f', -1, 64), p.param,
				num(med(results, name, "cold-ms")), num(pt.per.med), num(pt.per.min), num(pt.per.max), base,
				num(med(results, name, "x-cold")), num(pt.rss.max))
		}
		if len(pts) >= 2 {
			first, last := pts[0], pts[len(pts)-1]
			fmt.Fprintf(b, "| %s | growth ×%s | | per object ×%s | | | RSS %+.1f MiB |\n", p.title,
				num(last.n/first.n), num(last.per.med/first.per.med), last.rss.max-first.rss.max)
		}
	}
	b.WriteString("\nA per-object cost that stays flat or falls as the size grows ten- and hundredfold is linear or\n")
	b.WriteString("better growth of the whole; the RSS column is what the binary holds at each size.\n")
}

// sizeSection writes the binary's size by module and what the probes
// measured of the Kubernetes code it links.
func sizeSection(b *strings.Builder, sizes []sizeRow, binSize int64, env map[string]string) {
	if len(sizes) == 0 {
		return
	}
	b.WriteString("\n## Binary size\n\n")
	fmt.Fprintf(b, "Shipped (static, -trimpath, -s -w): %s MiB. What takes the room, from `go tool nm -size -sort size` of\n", env["binary_mib"])
	fmt.Fprintf(b, "the same build with symbols (%s MiB), by module (the standard library by top-level package);\n", mib(binSize))
	b.WriteString("the rest of the file is the symbol-less tables (pclntab: function names and line tables).\n\n")
	b.WriteString("| module | MiB | share of symbols |\n|---|---:|---:|\n")
	var total int64
	for _, r := range sizes {
		total += r.bytes
	}
	var rest int64
	for i, r := range sizes {
		if i >= 18 {
			rest += r.bytes
			continue
		}
		fmt.Fprintf(b, "| %s | %s | %.1f%% |\n", r.module, mib(r.bytes), 100*float64(r.bytes)/float64(total))
	}
	fmt.Fprintf(b, "| %d more | %s | %.1f%% |\n", len(sizes)-18, mib(rest), 100*float64(rest)/float64(total))
	fmt.Fprintf(b, "| all symbols | %s | 100%% |\n", mib(total))
	if env["probe_before_size"] == "" {
		return
	}
	b.WriteString("\nTwo probe programs, built and run the same way in this run, import only Kubernetes code:\n\n")
	b.WriteString("| probe | imports | file MiB | RSS at start MiB |\n|---|---|---:|---:|\n")
	fmt.Fprintf(b, "| linked before the trim | %s | %s | %s |\n", env["probe_before_imports"], mibStr(env["probe_before_size"]), kibStr(env["probe_before_rss"]))
	fmt.Fprintf(b, "| linked now | %s | %s | %s |\n", env["probe_now_imports"], mibStr(env["probe_now_size"]), kibStr(env["probe_now_rss"]))
	b.WriteString(trimNote)
}

const trimNote = `
bootstrap uses Kubernetes for a handful of calls on Secrets, a Service and SealedSecrets. It
used to link client-go's typed clientset and sealed-secrets' API package, each of which
registers every API group's types in client-go's scheme at start. It now makes those calls
with client-go's REST client over a core/v1-only scheme and the dynamic client
(internal/secrets/kubecore), declares the SealedSecret's fields itself
(internal/secrets/seal/types.go) and encrypts with sealed-secrets' pkg/crypto; tests unseal
with the library's own code. The difference between the probes is what that saved.
`

func mib(b int64) string { return num(float64(b) / (1 << 20)) }

func mibStr(s string) string {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s
	}
	return num(v / (1 << 20))
}

func kibStr(s string) string {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s
	}
	return num(v / 1024)
}

// notes explains, with this run's numbers, each target not met, then what
// every reader should know.
func notes(b *strings.Builder, results []result, verdicts []verdict, env map[string]string) {
	b.WriteString("\n## Notes\n\n")
	floor := med(results, "BenchmarkPlatform", "version-ms")
	for _, v := range verdicts {
		if v.ok {
			continue
		}
		fmt.Fprintf(b, "- **%s %s %s** (target %s): %s\n", v.bench, v.unit, num(pick(v)), v.t, reason(results, v, floor, env))
	}
	b.WriteString("- BenchmarkUnchanged is slow on purpose: deciding that a sealed Secret is unchanged recomputes a\n")
	b.WriteString("  salted argon2id hash of its plaintext (64 MiB, 3 passes) instead of re-sealing, so the hash kept\n")
	b.WriteString("  on the object is expensive to guess from.\n")
}

func pick(v verdict) float64 {
	if v.t.onMax {
		return v.value.max
	}
	return v.value.med
}

// reason says, from the measurements, why a target was missed.
func reason(results []result, v verdict, floor float64, env map[string]string) string {
	noop, cold := med(results, v.bench, "noop-ms"), med(results, v.bench, "cold-ms")
	switch {
	case v.unit == "x-cold" && v.bench == "BenchmarkPlatform":
		return fmt.Sprintf("any no-op of this config pays its floor, %s ms measured in the same iterations: %s ms of process start "+
			"and exit alone (`bootstrap version`) and %s ms for one fresh client per service, all six at once, to log in and get "+
			"one answer (SCRAM-SHA-256 on each PostgreSQL session: 4096 PBKDF2 rounds on each side). The no-op's %s ms are "+
			"%s× that floor: the logins again, then one read round per object kind. The cold run that would have to be ten times "+
			"the no-op is only %s ms: six services with one or two objects each, little for the servers to do.",
			num(med(results, v.bench, "floor-ms")), num(floor), num(med(results, v.bench, "logins-ms")),
			num(noop), num(med(results, v.bench, "x-floor")), num(cold))
	case v.unit == "x-cold" && strings.Contains(v.bench, "uckets"):
		s := fmt.Sprintf("the no-op still sends a request per bucket, as the cold run does: a GET of its object lock, "+
			"against the cold run's PUT (S3 has no batch read and ListBuckets does not say; the location, the same for "+
			"every bucket on MinIO, is read once): %s ms of no-op against %s ms cold%s.",
			num(noop), num(cold), floorNote(v.bench, noop, floor))
		if n := size(v.bench); n > 0 && floor > 0 {
			s += fmt.Sprintf(" Past process start, that is %s ms per bucket for the read against %s for the create.",
				num((noop-floor)/n), num((cold-floor)/n))
		}
		return s
	case v.unit == "x-cold":
		return fmt.Sprintf("%s ms of no-op against %s ms cold%s.", num(noop), num(cold), floorNote(v.bench, noop, floor))
	case v.unit == "x-psql":
		base := med(results, v.bench, "psql-ms")
		s := fmt.Sprintf("CREATE DATABASE is the server's work: with the default strategy (wal_log) it writes every block of "+
			"the template to the WAL and again to the new files, and psql's %s ms is almost all of it, one at a time. bootstrap "+
			"runs two creates at once (more were slower: see createSessions in internal/initdb/postgres), which only pays "+
			"while the server has cores and disk to spare: this machine has %s cores, and the load average was %s at the start "+
			"and %s at the end.", num(base), env["cores"], env["load_start"], env["load_end"])
		if fc := med(results, v.bench+",strategy=file_copy", "x-psql"); fc > 0 {
			s += fmt.Sprintf(" Declared `strategy: file_copy`, which copies the template's files (a checkpoint before and after "+
				"each), the same databases take %s× psql's time.", num(fc))
		}
		return s
	case v.unit == "x-go":
		return fmt.Sprintf("the baseline sends the same requests from inside the benchmark over a connection it already has; "+
			"bootstrap starts a process and connects first: %s ms of its %s ms cold run is process start and exit alone "+
			"(`bootstrap version`), a fixed cost that matters at the smallest size only.", num(floor), num(cold))
	case v.unit == "peak-rss-MiB":
		return fmt.Sprintf("%s MiB of it is the binary's start alone (`bootstrap version`: its code and data paged in); "+
			"the probes under Binary size measure what the Kubernetes code linked costs.", num(med(results, "BenchmarkPlatform", "version-rss-MiB")))
	}
	return "measured as shown."
}

// size is N in a sub-benchmark named bench/param=N, or 0.
func size(bench string) float64 {
	_, v, ok := strings.Cut(bench, "=")
	if !ok {
		return 0
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0
	}
	return n
}

// floorNote puts a binary row's no-op beside the process start every run
// pays (BenchmarkPlatform's version-ms).
func floorNote(bench string, noop, floor float64) string {
	if floor <= 0 || !strings.Contains(bench, "/") {
		return ""
	}
	return fmt.Sprintf("; %s ms of the no-op is process start and exit alone (`bootstrap version`), %.0f%% of it", num(floor), 100*floor/noop)
}
