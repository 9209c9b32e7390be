package reconcile

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// listTarget plans the changes it is given.
type listTarget struct{ changes []Change }

func (l *listTarget) Name() string                      { return "list/a" }
func (l *listTarget) Connect(ctx context.Context) error { return ctx.Err() }
func (l *listTarget) Close() error                      { return nil }
func (l *listTarget) Plan(context.Context) ([]Change, error) {
	return l.changes, nil
}

// TestParallelRun: changes next to each other with one Parallel key apply
// at once, never more than Concurrency; results keep plan order; a failed
// one does not stop its siblings, but skips the ungrouped changes after
// the run, as a failed sequential write does.
func TestParallelRun(t *testing.T) {
	var running, most atomic.Int32
	work := func(fail bool) func(context.Context) error {
		return func(context.Context) error {
			n := running.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(30 * time.Millisecond)
			running.Add(-1)
			if fail {
				return errors.New("boom")
			}
			return nil
		}
	}
	var cs []Change
	cs = append(cs, Change{Resource: "list/a/role/r", Action: Create, Apply: work(false)})
	for _, name := range []string{"d1", "d2", "d3", "d4", "d5", "d6", "d7"} {
		cs = append(cs, Change{Resource: "list/a/database/" + name, Action: Create, Parallel: "databases", Apply: work(name == "d2")})
	}
	cs = append(cs, Change{Resource: "list/a/database/d0", Action: Noop, Parallel: "databases"})
	cs = append(cs, Change{Resource: "list/a/extension/e", Action: Create, Apply: work(false)})

	rs := Run(context.Background(), []Target{&listTarget{cs}}, Options{Mode: ModeApply, Concurrency: 3})
	var order []string
	for _, r := range rs {
		order = append(order, r.Resource)
	}
	var want []string
	for _, c := range cs {
		want = append(want, c.Resource)
	}
	if !slices.Equal(order, want) {
		t.Fatalf("results in order %v, want plan order %v", order, want)
	}
	st := statuses(rs)
	for r, s := range map[string]Status{"list/a/database/d1": Applied, "list/a/database/d2": Failed, "list/a/database/d7": Applied,
		"list/a/database/d0": OK, "list/a/extension/e": Skipped} {
		if st[r] != s {
			t.Errorf("%s: %s, want %s", r, st[r], s)
		}
	}
	if m := most.Load(); m != 3 {
		t.Errorf("at most %d at once, want Concurrency (3)", m)
	}
}

// TestParallelOnlyInApply: plan and verify report a Parallel run change by
// change, applying nothing.
func TestParallelOnlyInApply(t *testing.T) {
	applied := atomic.Int32{}
	cs := []Change{
		{Resource: "list/a/database/d1", Action: Create, Parallel: "databases", Apply: func(context.Context) error { applied.Add(1); return nil }},
		{Resource: "list/a/database/d2", Action: Create, Parallel: "databases", Apply: func(context.Context) error { applied.Add(1); return nil }},
	}
	for _, mode := range []Mode{ModePlan, ModeVerify} {
		rs := Run(context.Background(), []Target{&listTarget{cs}}, Options{Mode: mode, Concurrency: 3})
		if len(rs) != 2 || applied.Load() != 0 {
			t.Fatalf("%s: %d results, %d applied", mode, len(rs), applied.Load())
		}
	}
}

// TestParallelResultsStream: a finished change of a parallel run is
// reported while a later one still runs (live progress does not pause for
// the whole run), and results still come in plan order.
func TestParallelResultsStream(t *testing.T) {
	release := make(chan struct{})
	slow := func(ctx context.Context) error {
		select {
		case <-release:
			return nil
		case <-time.After(10 * time.Second):
			return errors.New("not released: the first result was not reported while this one ran")
		}
	}
	fast := func(context.Context) error { return nil }
	cs := []Change{
		{Resource: "list/a/database/d1", Action: Create, Parallel: "databases", Apply: fast},
		{Resource: "list/a/database/d2", Action: Create, Parallel: "databases", Apply: slow},
		{Resource: "list/a/database/d3", Action: Create, Parallel: "databases", Apply: fast},
	}
	var seen []string
	onResult := func(r Result) {
		seen = append(seen, r.Resource)
		if r.Resource == "list/a/database/d1" {
			close(release)
		}
	}
	rs := Run(context.Background(), []Target{&listTarget{cs}}, Options{Mode: ModeApply, Concurrency: 3, OnResult: onResult})
	for _, r := range rs {
		if r.Status != Applied {
			t.Errorf("%s: %s %s", r.Resource, r.Status, r.Error)
		}
	}
	if want := []string{"list/a/database/d1", "list/a/database/d2", "list/a/database/d3"}; !slices.Equal(seen, want) {
		t.Fatalf("reported %v, want plan order %v", seen, want)
	}
}
