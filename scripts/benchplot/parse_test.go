package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in  string
		procs     int
		wantNames []string
		check     func(t *testing.T, rs []result)
	}{
		{
			name:      "GOMAXPROCS suffix dropped, other lines ignored",
			procs:     2,
			in:        "goos: linux\nBenchmarkBuckets200-2   \t5\t 123456 ns/op\t 0.42 x-cold\nPASS\nok  \tpkg\t1.2s\n",
			wantNames: []string{"BenchmarkBuckets200"},
			check: func(t *testing.T, rs []result) {
				if rs[0].runs != 5 || rs[0].metrics["x-cold"] != 0.42 {
					t.Errorf("got %+v", rs[0])
				}
			},
		},
		{
			name:      "sub-benchmark with a dash in its name keeps it",
			procs:     2,
			in:        "BenchmarkScale/databases-1000-2 5 1 ns/op 2.5 ms/object\n",
			wantNames: []string{"BenchmarkScale/databases-1000"},
		},
		{
			name:      "one core: go test adds no suffix, and a number ending the name stays",
			procs:     1,
			in:        "BenchmarkScale/databases-1000 5 1 ns/op 2.5 ms/object\n",
			wantNames: []string{"BenchmarkScale/databases-1000"},
		},
		{
			name: "min and max are a unit's spread, not units of their own",
			in:   "BenchmarkPostgres-2 5 9 ns/op 0.7 x-psql 0.6 x-psql-min 0.9 x-psql-max 30 MiB-rss\n",
			check: func(t *testing.T, rs []result) {
				if u := rs[0].units(); !slices.Equal(u, []string{"x-psql", "MiB-rss"}) {
					t.Errorf("units %v", u)
				}
				s, ok := rs[0].stat("x-psql")
				if !ok || !s.spread || s.med != 0.7 || s.min != 0.6 || s.max != 0.9 {
					t.Errorf("stat %+v", s)
				}
				if s, _ := rs[0].stat("MiB-rss"); s.spread || s.min != 30 || s.max != 30 {
					t.Errorf("a unit without extremes: %+v", s)
				}
			},
		},
		{
			name:      "a line without an iteration count is not a result",
			in:        "BenchmarkFoo running against 127.0.0.1\nBenchmarkBar-2 5 1 ns/op\n",
			wantNames: []string{"BenchmarkBar"},
		},
		{
			name:      "a value that is not a number is skipped, the rest kept",
			in:        "BenchmarkBaz-2 5 1 ns/op NaNish x-cold 3 x-go\n",
			wantNames: []string{"BenchmarkBaz"},
			check: func(t *testing.T, rs []result) {
				if rs[0].has("x-cold") || rs[0].metrics["x-go"] != 3 {
					t.Errorf("metrics %v", rs[0].metrics)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			procs := tc.procs
			if procs == 0 {
				procs = 2
			}
			rs, err := parse(strings.NewReader(tc.in), procs)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantNames != nil {
				var names []string
				for _, r := range rs {
					names = append(names, r.name)
				}
				if !slices.Equal(names, tc.wantNames) {
					t.Fatalf("names %v, want %v", names, tc.wantNames)
				}
			}
			if tc.check != nil {
				if len(rs) == 0 {
					t.Fatal("no result")
				}
				tc.check(t, rs)
			}
		})
	}
}

// FuzzParse: any input parses without panicking, into results named
// Benchmark..., each with a unit list drawn from its metrics.
func FuzzParse(f *testing.F) {
	f.Add("BenchmarkX-2 5 1 ns/op 0.5 x-cold 0.4 x-cold-min 0.6 x-cold-max\n")
	f.Add("Benchmark 1 2 3\n")
	f.Fuzz(func(t *testing.T, in string) {
		rs, err := parse(strings.NewReader(in), 2)
		if err != nil {
			return
		}
		for _, r := range rs {
			if !strings.HasPrefix(r.name, "Benchmark") {
				t.Fatalf("name %q", r.name)
			}
			for _, u := range r.units() {
				if !r.has(u) {
					t.Fatalf("unit %q of %q has no metric", u, r.name)
				}
			}
		}
	})
}
