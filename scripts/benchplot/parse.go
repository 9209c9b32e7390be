package main

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// result is one benchmark line of `go test -bench` output: its name
// without the GOMAXPROCS suffix, its iterations and its metrics by unit.
type result struct {
	name    string
	runs    int
	metrics map[string]float64
	order   []string // units in output order
}

// stat is one quantity of a result: its median (the unit's own metric)
// and, when reported, its extremes (unit-min, unit-max).
type stat struct {
	med, min, max float64
	spread        bool
}

func (r result) stat(unit string) (stat, bool) {
	v, ok := r.metrics[unit]
	if !ok {
		return stat{}, false
	}
	s := stat{med: v, min: v, max: v}
	lo, okLo := r.metrics[unit+"-min"]
	hi, okHi := r.metrics[unit+"-max"]
	if okLo && okHi {
		s.min, s.max, s.spread = lo, hi, true
	}
	return s, true
}

// units lists the result's quantities: every unit but ns/op and the
// -min/-max companions of another.
func (r result) units() []string {
	var out []string
	for _, u := range r.order {
		if u == "ns/op" {
			continue
		}
		if base, ok := strings.CutSuffix(u, "-min"); ok && r.has(base) {
			continue
		}
		if base, ok := strings.CutSuffix(u, "-max"); ok && r.has(base) {
			continue
		}
		out = append(out, u)
	}
	return out
}

func (r result) has(unit string) bool { _, ok := r.metrics[unit]; return ok }

// parse reads benchmark lines ("BenchmarkX/sub-2  5  123 ns/op  4.5 unit
// ..."), in order; other lines are ignored. procs is the GOMAXPROCS the
// benchmarks ran with: go test appends "-procs" to every name unless it is
// 1, and only that suffix is removed (a name may end in a number itself,
// "databases-1000").
func parse(r io.Reader, procs int) ([]result, error) {
	suffix := ""
	if procs > 1 {
		suffix = "-" + strconv.Itoa(procs)
	}
	var out []result
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		runs, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		name := f[0]
		if suffix != "" {
			name = strings.TrimSuffix(name, suffix)
		}
		res := result{name: name, runs: runs, metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			res.metrics[f[i+1]] = v
			res.order = append(res.order, f[i+1])
		}
		out = append(out, res)
	}
	return out, sc.Err()
}
