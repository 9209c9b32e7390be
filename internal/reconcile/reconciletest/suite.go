// Package reconciletest is the conformance suite every backend passes against
// a real server: plan on empty state has changes, apply succeeds, plan again
// is empty, apply again changes nothing, plan never writes, cancellation is
// honoured. It is the only place the Target contract is proved.
package reconciletest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// Env is what a backend gives the suite for one test: a way to build a Target
// over a desired state that does not exist on the server yet (unique names,
// cleaned up by the backend's t.Cleanup), and a snapshot of the observable
// server state of exactly those resources.
type Env struct {
	// NewTarget returns a fresh Target for the same desired state.
	NewTarget func() reconcile.Target
	// Snapshot renders the server state of the test's resources; two equal
	// snapshots mean nothing was written.
	Snapshot func(ctx context.Context) (string, error)
	// CheckOnly marks a verify-only backend (Redis): its plans hold only
	// Check changes, so "plan on empty state has changes" does not apply.
	CheckOnly bool
}

// Run runs the suite. setup is called once per subtest.
func Run(t *testing.T, setup func(t *testing.T) Env) {
	t.Helper()
	ctx := context.Background()

	t.Run("Converge", func(t *testing.T) {
		env := setup(t)
		before := snapshot(t, ctx, env)
		changes := plan(t, ctx, env.NewTarget())
		if !env.CheckOnly && countWrites(changes) == 0 {
			t.Fatalf("plan on empty state has no changes: %v", describe(changes))
		}
		if after := snapshot(t, ctx, env); after != before {
			t.Fatalf("plan wrote to the server:\nbefore: %s\nafter:  %s", before, after)
		}
		apply(t, ctx, env.NewTarget())
		if again := plan(t, ctx, env.NewTarget()); countWrites(again) != 0 {
			t.Fatalf("after applying, the plan was not empty: %v", describe(again))
		}
		applied := snapshot(t, ctx, env)
		if n := apply(t, ctx, env.NewTarget()); n != 0 {
			t.Fatalf("second apply made %d changes, want 0", n)
		}
		if after := snapshot(t, ctx, env); after != applied {
			t.Fatalf("second apply changed the server:\nbefore: %s\nafter:  %s", applied, after)
		}
		tgt := env.NewTarget()
		defer tgt.Close()
		connect(t, ctx, tgt)
		if v, ok := tgt.(reconcile.Verifier); ok {
			checks, err := v.Verify(ctx)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			for _, c := range checks {
				if c.Apply == nil {
					continue
				}
				if err := c.Apply(ctx); err != nil {
					t.Errorf("verify check %s: %v", c.Resource, err)
				}
			}
		}
	})

	t.Run("Cancellation", func(t *testing.T) {
		env := setup(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		tgt := env.NewTarget()
		defer tgt.Close()
		start := time.Now()
		err := tgt.Connect(cctx)
		if err == nil {
			_, err = tgt.Plan(cctx)
		}
		if err == nil {
			t.Fatal("Connect+Plan with a cancelled context succeeded")
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error does not wrap context.Canceled: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("cancelled call took %v", d)
		}

		// Apply with a context cancelled between plan and apply stops
		// before writing anything.
		before := snapshot(t, ctx, env)
		tgt2 := env.NewTarget()
		defer tgt2.Close()
		connect(t, ctx, tgt2)
		changes, err := tgt2.Plan(ctx)
		if err != nil {
			t.Fatalf("plan: %v", err)
		}
		for _, c := range changes {
			if c.Apply == nil || c.Action == reconcile.Check {
				continue
			}
			if err := c.Apply(cctx); err == nil {
				t.Errorf("apply of %s with a cancelled context succeeded", c.Resource)
			}
			break
		}
		if after := snapshot(t, ctx, env); after != before {
			t.Errorf("a cancelled apply wrote to the server:\nbefore: %s\nafter:  %s", before, after)
		}
	})
}

func snapshot(t *testing.T, ctx context.Context, env Env) string {
	t.Helper()
	s, err := env.Snapshot(ctx)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return s
}

func connect(t *testing.T, ctx context.Context, tgt reconcile.Target) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := tgt.Connect(cctx); err != nil {
		t.Fatalf("connect %s: %v", tgt.Name(), err)
	}
}

// plan connects and plans on a target it closes.
func plan(t *testing.T, ctx context.Context, tgt reconcile.Target) []reconcile.Change {
	t.Helper()
	defer tgt.Close()
	return planOpen(t, ctx, tgt)
}

// planOpen connects and plans, leaving tgt open for the changes' Apply;
// drift fails the test, since the suite's desired state is reachable.
func planOpen(t *testing.T, ctx context.Context, tgt reconcile.Target) []reconcile.Change {
	t.Helper()
	connect(t, ctx, tgt)
	changes, err := tgt.Plan(ctx)
	if err != nil {
		t.Fatalf("plan %s: %v", tgt.Name(), err)
	}
	for _, c := range changes {
		if c.Drift != "" {
			t.Fatalf("plan reports drift on %s: %s", c.Resource, c.Drift)
		}
	}
	return changes
}

// apply plans and runs every change, checks included, and returns how many
// writes it made.
func apply(t *testing.T, ctx context.Context, tgt reconcile.Target) int {
	t.Helper()
	defer tgt.Close()
	n := 0
	for _, c := range planOpen(t, ctx, tgt) {
		if c.Apply == nil {
			continue
		}
		if err := c.Apply(ctx); err != nil {
			t.Fatalf("apply %s %s: %v", c.Action, c.Resource, err)
		}
		if c.Action != reconcile.Check {
			n++
		}
	}
	return n
}

func countWrites(cs []reconcile.Change) int {
	n := 0
	for _, c := range cs {
		switch c.Action {
		case reconcile.Create, reconcile.Update, reconcile.Delete:
			n++
		}
	}
	return n
}

func describe(cs []reconcile.Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, string(c.Action)+" "+c.Resource)
	}
	return out
}
