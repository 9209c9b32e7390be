package main

import (
	"fmt"
	"strconv"
	"strings"
)

// target is a bound on one metric of the benchmarks whose name starts with
// bench ("" for every one). onMax judges the largest sample instead of
// the median (peak RSS). A rule with op "" says the metric is shown, not
// judged. The first rule that matches applies.
type target struct {
	bench, unit string
	op          string
	bound       float64
	onMax       bool
}

var targets = []target{
	{bench: "BenchmarkPostgres/dbs=10", unit: "x-psql"}, // process start and one login dominate ten databases
	{bench: "", unit: "x-psql", op: "<=", bound: 0.8},
	{bench: "", unit: "x-cold", op: "<=", bound: 0.1},
	{bench: "BenchmarkPlatform", unit: "peak-rss-MiB", op: "<", bound: 32, onMax: true},
	{bench: "", unit: "peak-rss-MiB", op: "<", bound: 64, onMax: true},
	{bench: "", unit: "x-definitions", op: "<=", bound: 1.5},
	{bench: "", unit: "x-curl", op: "<=", bound: 1.0},
	{bench: "", unit: "x-go", op: "<=", bound: 1.25},
}

func targetFor(bench, unit string) (target, bool) {
	for _, t := range targets {
		if t.unit == unit && (t.bench == "" || bench == t.bench || strings.HasPrefix(bench, t.bench+"/")) {
			return t, t.op != ""
		}
	}
	return target{}, false
}

func (t target) String() string {
	s := t.op + " " + num(t.bound)
	if t.onMax {
		s += " (max)"
	}
	return s
}

func (t target) met(s stat) bool {
	v := s.med
	if t.onMax {
		v = s.max
	}
	if t.op == "<" {
		return v < t.bound
	}
	return v <= t.bound
}

// verdict is one judged metric.
type verdict struct {
	bench, unit string
	value       stat
	t           target
	ok          bool
}

// table renders every metric of every result as one markdown row and
// returns the judged ones.
func table(b *strings.Builder, results []result) []verdict {
	var judged []verdict
	b.WriteString("| benchmark | metric | median | min | max | runs | target | ok |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---|---|\n")
	for _, r := range results {
		for _, u := range r.units() {
			s, _ := r.stat(u)
			lo, hi := "", ""
			if s.spread {
				lo, hi = num(s.min), num(s.max)
			}
			t, ok := targetFor(r.name, u)
			tgt, verdictCell := "", ""
			if ok {
				v := verdict{r.name, u, s, t, t.met(s)}
				judged = append(judged, v)
				tgt, verdictCell = t.String(), "yes"
				if !v.ok {
					verdictCell = "**no**"
				}
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %d | %s | %s |\n", r.name, u, num(s.med), lo, hi, r.runs, tgt, verdictCell)
		}
	}
	return judged
}

// num formats a value with three or four significant digits and no
// exponent.
func num(v float64) string {
	a := v
	if a < 0 {
		a = -a
	}
	prec := 0
	switch {
	case a == 0 || a >= 100:
	case a >= 10:
		prec = 1
	case a >= 1:
		prec = 2
	case a >= 0.1:
		prec = 3
	default:
		prec = 4
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// find returns the result named name.
func find(results []result, name string) (result, bool) {
	for _, r := range results {
		if r.name == name {
			return r, true
		}
	}
	return result{}, false
}

// med returns the median of unit in the result named name, or 0.
func med(results []result, name, unit string) float64 {
	r, ok := find(results, name)
	if !ok {
		return 0
	}
	s, _ := r.stat(unit)
	return s.med
}
