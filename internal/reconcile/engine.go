package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Mode is what a run does with the plan.
type Mode string

const (
	ModePlan   Mode = "plan"
	ModeApply  Mode = "apply"
	ModeVerify Mode = "verify"
)

// Options configure a run.
type Options struct {
	Mode        Mode
	Concurrency int
	// WaitTimeout bounds how long each target's Connect is retried.
	WaitTimeout time.Duration
	Logger      *slog.Logger
	// OnResult, when set, is called (serialised) as each result is known,
	// for live progress. Changes are then logged at debug level only.
	OnResult func(Result)
	// OnWait, when set, is called (serialised) when a target is waited for.
	OnWait func(target, what string, attempt int, err error)
}

// Result is one line of the report.
type Result struct {
	Resource   string `json:"resource"`
	Action     Action `json:"action"`
	Status     Status `json:"status"`
	Detail     string `json:"detail,omitempty"`
	Error      string `json:"error,omitempty"`
	DurationMs int64  `json:"durationMs"`
}

// Summary counts results. Create, Update, Delete and Noop count changes
// that were planned or applied; Failed counts every failed entry.
type Summary struct {
	Create  int `json:"create"`
	Update  int `json:"update"`
	Delete  int `json:"delete"`
	Noop    int `json:"noop"`
	Check   int `json:"check"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"`
}

// Report is what a command prints: -o json renders it as one object.
type Report struct {
	Command    string   `json:"command"`
	OK         bool     `json:"ok"`
	DurationMs int64    `json:"durationMs"`
	Changes    []Result `json:"changes"`
	Summary    Summary  `json:"summary"`
	// CredentialAgeSeconds maps each rotating credential to the time since
	// its current value was promoted.
	CredentialAgeSeconds map[string]float64 `json:"credentialAgeSeconds,omitempty"`
}

// Add appends results and recounts.
func (r *Report) Add(rs ...Result) {
	r.Changes = append(r.Changes, rs...)
	r.Summary = Summary{}
	for _, c := range r.Changes {
		switch c.Status {
		case Failed:
			r.Summary.Failed++
			continue
		case Skipped:
			r.Summary.Skipped++
			continue
		}
		switch c.Action {
		case Create:
			r.Summary.Create++
		case Update:
			r.Summary.Update++
		case Delete:
			r.Summary.Delete++
		case Noop:
			r.Summary.Noop++
		case Check:
			r.Summary.Check++
		}
	}
	r.OK = r.Summary.Failed == 0 && r.Summary.Skipped == 0
}

// Failed lists the resources that failed.
func (r *Report) Failed() []string {
	var out []string
	for _, c := range r.Changes {
		if c.Status == Failed {
			out = append(out, c.Resource)
		}
	}
	return out
}

// Run plans, applies or verifies every target, up to opts.Concurrency at
// once, steps in order inside each target. It returns the results in target
// order; a target's failure never stops the others.
func Run(ctx context.Context, targets []Target, opts Options) []Result {
	if opts.Concurrency < 1 {
		opts.Concurrency = 1
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	var mu sync.Mutex // serialises callbacks
	r := &runner{opts: opts, mu: &mu}
	out := make([][]Result, len(targets))
	sem := make(chan struct{}, opts.Concurrency)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				out[i] = []Result{{Resource: t.Name(), Action: Check, Status: Skipped, Error: "not started: " + ctx.Err().Error()}}
				return
			}
			defer func() { <-sem }()
			out[i] = r.target(ctx, t)
		}()
	}
	wg.Wait()
	var all []Result
	for _, rs := range out {
		all = append(all, rs...)
	}
	return all
}

type runner struct {
	opts Options
	mu   *sync.Mutex
}

func (r *runner) emit(log *slog.Logger, res Result) Result {
	level := slog.LevelInfo
	if r.opts.OnResult != nil || res.Action == Noop || r.opts.Mode == ModePlan {
		level = slog.LevelDebug
	}
	if res.Status == Failed {
		level = slog.LevelError
	}
	attrs := []any{"resource", res.Resource, "action", res.Action, "status", res.Status, "durationMs", res.DurationMs}
	if res.Detail != "" {
		attrs = append(attrs, "detail", res.Detail)
	}
	if res.Error != "" {
		attrs = append(attrs, "error", res.Error)
	}
	log.Log(context.Background(), level, "change", attrs...)
	if r.opts.OnResult != nil {
		r.mu.Lock()
		r.opts.OnResult(res)
		r.mu.Unlock()
	}
	return res
}

func (r *runner) target(ctx context.Context, t Target) (results []Result) {
	log := r.opts.Logger.With("target", t.Name())
	start := time.Now()
	// stages times each stage, for the debug line that says where a
	// target's time went (a slow login, a slow read of state, a slow write).
	var stages []any
	var marked int64
	mark := func(stage string) {
		now := ms(time.Since(start))
		stages, marked = append(stages, stage+"Ms", now-marked), now
	}
	fail := func(stage string, err error) []Result {
		mark(stage)
		return append(results, r.emit(log, Result{
			Resource: t.Name(), Action: Check, Status: Failed,
			Error: stage + ": " + err.Error(), DurationMs: ms(time.Since(start)),
		}))
	}
	defer func() {
		if err := t.Close(); err != nil {
			log.Warn("close", "error", err)
		}
		mark("close")
		log.Debug("target done", append(stages, "totalMs", ms(time.Since(start)))...)
	}()
	if err := r.connect(ctx, t, log); err != nil {
		return fail("connect", err)
	}
	mark("connect")
	if l, ok := t.(Locker); ok && r.opts.Mode == ModeApply {
		if err := l.Lock(ctx); err != nil {
			return fail("lock", err)
		}
		mark("lock")
	}
	changes, err := t.Plan(ctx)
	if err != nil {
		return fail("plan", err)
	}
	mark("plan")
	if r.opts.Mode == ModeVerify {
		if v, ok := t.(Verifier); ok {
			checks, err := v.Verify(ctx)
			if err != nil {
				return fail("verify", err)
			}
			// A Verifier may repeat checks its plan already lists; run
			// each resource's check once.
			planned := map[string]bool{}
			for _, c := range changes {
				planned[c.Resource] = true
			}
			for _, c := range checks {
				if !planned[c.Resource] {
					changes = append(changes, c)
				}
			}
			mark("verify")
		}
	}
	defer mark("apply")
	// failed holds the groups with a failed write; "" (ungrouped) means
	// every later ungrouped change is skipped as well.
	a := applier{runner: r, failed: map[string]bool{}}
	for i := 0; i < len(changes); {
		j := i + 1
		if key := changes[i].Parallel; key != "" && r.opts.Mode == ModeApply {
			for j < len(changes) && changes[j].Parallel == key {
				j++
			}
		}
		a.apply(ctx, changes[i:j], func(res Result) { results = append(results, r.emit(log, res)) })
		i = j
	}
	return results
}

// applier applies one target's changes, a run of independent ones at once.
type applier struct {
	*runner
	failed    map[string]bool
	anyFailed bool
}

// apply decides each change's result and applies those that need it, all
// at once (up to Options.Concurrency) when there are several: they are
// independent, so what blocks them is decided before the first starts.
// Results go to emit in plan order, each as soon as it and those before it
// are done, so live progress does not pause for the whole run.
func (a *applier) apply(ctx context.Context, changes []Change, emit func(Result)) {
	out := make([]Result, len(changes))
	// done[i] is closed when change i has been applied; nil for a change
	// whose result is decided without applying it.
	done := make([]chan struct{}, len(changes))
	var todo []int
	for i, c := range changes {
		blocked := a.failed[c.Group] || (c.Group == "" && a.anyFailed)
		res := Result{Resource: c.Resource, Action: c.Action, Detail: c.Detail}
		switch {
		case c.Drift != "":
			res.Status, res.Error = Failed, "drift: "+c.Drift
		case c.Action == Noop:
			res.Status = OK
		case a.opts.Mode == ModePlan:
			res.Status = Planned
		case a.opts.Mode == ModeVerify && c.Action != Check:
			// Detail, reported beside it, says what differs.
			res.Status, res.Error = Failed, fmt.Sprintf("drift: %s needed", c.Action)
		case blocked && c.Action != Check:
			res.Status = Skipped
		case ctx.Err() != nil:
			res.Status, res.Error = Skipped, ctx.Err().Error()
		case c.Apply == nil:
			res.Status = OK
		default:
			todo = append(todo, i)
			done[i] = make(chan struct{})
		}
		out[i] = res
	}
	run := func(i int) {
		defer close(done[i])
		c := changes[i]
		t0 := time.Now()
		err := c.Apply(ctx)
		out[i].DurationMs = ms(time.Since(t0))
		switch {
		case err != nil:
			out[i].Status, out[i].Error = Failed, err.Error()
		case c.Action == Check:
			out[i].Status = OK
		default:
			out[i].Status = Applied
		}
	}
	if len(todo) == 1 {
		run(todo[0])
	} else if len(todo) > 1 {
		// Started in the background, so that results are emitted while
		// later changes still wait for a slot.
		go func() {
			sem := make(chan struct{}, max(a.opts.Concurrency, 1))
			for _, i := range todo {
				sem <- struct{}{}
				go func() {
					defer func() { <-sem }()
					run(i)
				}()
			}
		}()
	}
	for i := range changes {
		if done[i] != nil {
			<-done[i]
			// Later steps may depend on a failed write (a database on
			// its owner): they are skipped, within its group. A failed
			// check blocks nothing.
			if out[i].Status == Failed && changes[i].Action != Check {
				a.failed[changes[i].Group], a.anyFailed = true, true
			}
		}
		emit(out[i])
	}
}

// connect retries t.Connect with capped, jittered exponential backoff until
// it succeeds, fails permanently, or WaitTimeout passes.
func (r *runner) connect(ctx context.Context, t Target, log *slog.Logger) error {
	what := t.Name()
	if d, ok := t.(WaitDescriber); ok {
		what = d.WaitingFor()
	}
	wctx := ctx
	if r.opts.WaitTimeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, r.opts.WaitTimeout)
		defer cancel()
	}
	backoff := 250 * time.Millisecond
	const maxBackoff = 5 * time.Second
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := t.Connect(wctx)
		if err == nil {
			if attempt > 1 {
				log.Info("service is up", "waitedFor", what, "after", time.Since(start).Round(time.Millisecond).String())
			}
			return nil
		}
		if IsPermanent(err) || ctx.Err() != nil {
			return err
		}
		if wctx.Err() != nil {
			return fmt.Errorf("%s did not accept connections within %s: %w", what, r.opts.WaitTimeout, err)
		}
		// Full jitter in [backoff/2, backoff): runs started together do
		// not knock in lockstep.
		sleep := backoff/2 + rand.N(backoff/2)
		log.Info("waiting for service", "waitingFor", what, "attempt", attempt, "retryIn", sleep.Round(time.Millisecond).String(), "error", err.Error())
		if r.opts.OnWait != nil {
			r.mu.Lock()
			r.opts.OnWait(t.Name(), what, attempt, err)
			r.mu.Unlock()
		}
		timer := time.NewTimer(sleep)
		select {
		case <-timer.C:
		case <-wctx.Done():
			timer.Stop()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%s did not accept connections within %s: %w", what, r.opts.WaitTimeout, err)
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

func ms(d time.Duration) int64 { return d.Milliseconds() }
