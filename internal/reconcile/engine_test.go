package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// memTarget is an in-memory target for testing the engine itself (not a
// stand-in for any server): a set of names that must exist.
type memTarget struct {
	name       string
	want       []string
	have       map[string]bool
	failApply  string // resource whose apply fails
	grouped    bool   // each thing is a group of its own
	failCheck  bool
	downFor    int // Connect fails this many times
	permanent  bool
	connects   atomic.Int32
	running    *atomic.Int32
	maxRunning *atomic.Int32
}

func (m *memTarget) Name() string { return m.name }
func (m *memTarget) Connect(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n := int(m.connects.Add(1))
	if m.permanent {
		return Permanent(errors.New("password authentication failed"))
	}
	if n <= m.downFor {
		return errors.New("connection refused")
	}
	return nil
}
func (m *memTarget) Close() error { return nil }
func (m *memTarget) Plan(ctx context.Context) ([]Change, error) {
	if m.running != nil {
		if n := m.running.Add(1); n > m.maxRunning.Load() {
			m.maxRunning.Store(n)
		}
		time.Sleep(20 * time.Millisecond)
		defer m.running.Add(-1)
	}
	var cs []Change
	for _, w := range m.want {
		r := Resource(m.name, "thing", w)
		if m.have[w] {
			cs = append(cs, Change{Resource: r, Action: Noop})
			continue
		}
		group := ""
		if m.grouped {
			group = w
		}
		cs = append(cs, Change{Resource: r, Action: Create, Group: group, Apply: func(ctx context.Context) error {
			if r == m.failApply {
				return errors.New("boom")
			}
			m.have[w] = true
			return nil
		}})
	}
	cs = append(cs, Change{Resource: Resource(m.name, "check", "ping"), Action: Check, Apply: func(context.Context) error {
		if m.failCheck {
			return errors.New("no pong")
		}
		return nil
	}})
	return cs, nil
}

func statuses(rs []Result) map[string]Status {
	out := map[string]Status{}
	for _, r := range rs {
		out[r.Resource] = r.Status
	}
	return out
}

func TestApplyThenNoop(t *testing.T) {
	m := &memTarget{name: "mem/a", want: []string{"x", "y"}, have: map[string]bool{}}
	rs := Run(context.Background(), []Target{m}, Options{Mode: ModeApply})
	var rep Report
	rep.Add(rs...)
	if rep.Summary.Create != 2 || rep.Summary.Check != 1 || !rep.OK {
		t.Fatalf("first apply: %+v", rep.Summary)
	}
	rep = Report{}
	rep.Add(Run(context.Background(), []Target{m}, Options{Mode: ModeApply})...)
	if s := rep.Summary; s.Create+s.Update+s.Delete != 0 || s.Noop != 2 {
		t.Fatalf("second apply: %+v", s)
	}
}

func TestPlanDoesNotApply(t *testing.T) {
	m := &memTarget{name: "mem/a", want: []string{"x"}, have: map[string]bool{}}
	rs := Run(context.Background(), []Target{m}, Options{Mode: ModePlan})
	if st := statuses(rs); st["mem/a/thing/x"] != Planned || st["mem/a/check/ping"] != Planned {
		t.Fatalf("plan statuses: %v", st)
	}
	if m.have["x"] {
		t.Fatal("plan applied a change")
	}
}

func TestFailedWriteSkipsRestButNotChecks(t *testing.T) {
	m := &memTarget{name: "mem/a", want: []string{"x", "y", "z"}, have: map[string]bool{}, failApply: "mem/a/thing/y"}
	st := statuses(Run(context.Background(), []Target{m}, Options{Mode: ModeApply}))
	want := map[string]Status{"mem/a/thing/x": Applied, "mem/a/thing/y": Failed, "mem/a/thing/z": Skipped, "mem/a/check/ping": OK}
	for r, s := range want {
		if st[r] != s {
			t.Errorf("%s: %s, want %s", r, st[r], s)
		}
	}
}

func TestFailureSkipsOnlyItsGroup(t *testing.T) {
	m := &memTarget{name: "mem/a", want: []string{"x", "y", "z"}, have: map[string]bool{}, failApply: "mem/a/thing/y", grouped: true}
	st := statuses(Run(context.Background(), []Target{m}, Options{Mode: ModeApply}))
	want := map[string]Status{"mem/a/thing/x": Applied, "mem/a/thing/y": Failed, "mem/a/thing/z": Applied}
	for r, s := range want {
		if st[r] != s {
			t.Errorf("%s: %s, want %s", r, st[r], s)
		}
	}
}

func TestVerifyReportsDrift(t *testing.T) {
	m := &memTarget{name: "mem/a", want: []string{"x"}, have: map[string]bool{}}
	var rep Report
	rep.Add(Run(context.Background(), []Target{m}, Options{Mode: ModeVerify})...)
	if rep.OK || rep.Failed()[0] != "mem/a/thing/x" {
		t.Fatalf("verify: %+v", rep)
	}
	if m.have["x"] {
		t.Fatal("verify wrote")
	}
}

func TestWaitsForLateService(t *testing.T) {
	m := &memTarget{name: "mem/a", want: []string{"x"}, have: map[string]bool{}, downFor: 2}
	var waits int
	rs := Run(context.Background(), []Target{m}, Options{Mode: ModeApply, WaitTimeout: 10 * time.Second,
		OnWait: func(string, string, int, error) { waits++ }})
	if st := statuses(rs); st["mem/a/thing/x"] != Applied {
		t.Fatalf("late service: %v", rs)
	}
	if waits != 2 {
		t.Errorf("waited %d times, want 2", waits)
	}
}

func TestWaitTimeout(t *testing.T) {
	m := &memTarget{name: "mem/a", downFor: 1 << 30, have: map[string]bool{}}
	start := time.Now()
	rs := Run(context.Background(), []Target{m}, Options{Mode: ModeApply, WaitTimeout: 700 * time.Millisecond})
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("gave up after %v", d)
	}
	if len(rs) != 1 || rs[0].Status != Failed || rs[0].Resource != "mem/a" {
		t.Fatalf("want one failed target result, got %+v", rs)
	}
}

func TestPermanentErrorIsNotRetried(t *testing.T) {
	m := &memTarget{name: "mem/a", permanent: true, have: map[string]bool{}}
	Run(context.Background(), []Target{m}, Options{Mode: ModeApply, WaitTimeout: time.Minute})
	if n := m.connects.Load(); n != 1 {
		t.Fatalf("connected %d times, want 1", n)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	var running, maxRunning atomic.Int32
	var ts []Target
	for i := 0; i < 6; i++ {
		ts = append(ts, &memTarget{name: "mem/" + string(rune('a'+i)), have: map[string]bool{}, running: &running, maxRunning: &maxRunning})
	}
	Run(context.Background(), ts, Options{Mode: ModePlan, Concurrency: 2})
	if m := maxRunning.Load(); m > 2 || m < 2 {
		t.Fatalf("max %d targets at once, want 2", m)
	}
}

func TestCancelledRunSkips(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := &memTarget{name: "mem/a", want: []string{"x"}, have: map[string]bool{}}
	var rep Report
	rep.Add(Run(ctx, []Target{m}, Options{Mode: ModeApply})...)
	if rep.OK || m.have["x"] {
		t.Fatalf("cancelled run: %+v", rep)
	}
}

// The debug line at a target's end says where its time went, stage by
// stage, and the stages add up to the total.
func TestTargetDoneSaysWhereTimeWent(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var running, maxRunning atomic.Int32
	m := &memTarget{name: "mem/a", want: []string{"x"}, have: map[string]bool{}, running: &running, maxRunning: &maxRunning}
	Run(context.Background(), []Target{m}, Options{Mode: ModeApply, Logger: log})
	var done map[string]any
	for line := range strings.Lines(buf.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec["msg"] == "target done" {
			done = rec
		}
	}
	if done == nil {
		t.Fatalf("no target done line in:\n%s", buf.String())
	}
	var sum float64
	for _, k := range []string{"connectMs", "planMs", "applyMs", "closeMs"} {
		v, ok := done[k].(float64)
		if !ok {
			t.Fatalf("%s missing: %v", k, done)
		}
		sum += v
	}
	if done["planMs"].(float64) < 20 {
		t.Errorf("planMs = %v, want >= 20 (Plan sleeps 20ms): %v", done["planMs"], done)
	}
	if total := done["totalMs"].(float64); sum > total || total-sum > 1 {
		t.Errorf("stages add up to %v ms, total %v ms: %v", sum, total, done)
	}
}
