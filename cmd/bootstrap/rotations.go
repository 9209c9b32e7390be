package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/health-data-ai/bootstrap/internal/amqp"
	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/initdb/postgres"
	"github.com/health-data-ai/bootstrap/internal/initdb/redis"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/rotate"
	"github.com/health-data-ai/bootstrap/internal/secrets"
)

// Application credential rotation (DESIGN.md "Rotation") in a run: the
// start stage runs before the services and the Kubernetes Secrets, so
// they converge on and deliver the promoted login; the retire stage runs
// after them, so an old identity is disabled only once its successor is
// delivered.

// rotation is one run's rotations; nil when the run has none.
type rotation struct {
	creds    []*rotate.Credential
	resolved credential.Resolved
	log      *slog.Logger
	only     bool // verify: finish-only
	length   int  // of generated passwords
	starts   *rotate.Run
}

// firstLogins maps each rotating credential to the login a generated
// first value belongs to.
func firstLogins(rs []config.Rotating) map[string]string {
	out := make(map[string]string, len(rs))
	for _, r := range rs {
		out[r.Secret] = r.Identities()[0]
	}
	return out
}

// newRotation builds the rotations of the selected credentials; o.force
// names those `bootstrap rotate` rotates now.
func newRotation(cfg *config.Config, o options, rs []config.Rotating, src secrets.Source, resolved credential.Resolved, log *slog.Logger) (*rotation, error) {
	if len(rs) == 0 || o.phase == "secrets" {
		return nil, nil
	}
	vault, ok := src.(rotate.Vault)
	if !ok {
		return nil, fmt.Errorf("%s cannot stage a rotating credential's next value; use the file or ocivault source", src)
	}
	rt := &rotation{resolved: resolved, log: log, only: o.command == "verify", length: cfg.Secrets.Generate.Length}
	for _, r := range rs {
		grace := r.Rotation.Grace.Duration
		if grace <= 0 {
			grace = 2 * o.interval
		}
		rt.creds = append(rt.creds, &rotate.Credential{
			Config: r, Vault: vault, Grace: grace, Force: o.force[r.Secret],
			Server: newRotator(cfg, r, resolved, log),
		})
	}
	return rt, nil
}

// newRotator is the server side of r, from its backend.
func newRotator(cfg *config.Config, r config.Rotating, resolved credential.Resolved, log *slog.Logger) rotate.Server {
	switch r.Kind {
	case "postgres":
		for _, c := range cfg.Postgres {
			if c.Target() == r.Target {
				return postgres.NewRotator(c, r.Name, resolved, log)
			}
		}
	case "rabbitmq":
		for _, c := range cfg.RabbitMQ {
			if c.Target() == r.Target {
				return amqp.NewRotator(c, r.Name, resolved, log)
			}
		}
	case "redis":
		for _, c := range cfg.Redis {
			if c.Target() == r.Target {
				return redis.NewRotator(c, r.Name, resolved, log)
			}
		}
	}
	panic("rotation: no target " + r.Target) // config.Rotating lists only declared targets
}

func (rt *rotation) run(stage string, delivered func() bool) *rotate.Run {
	return &rotate.Run{
		Creds: rt.creds, Stage: stage, Resolved: rt.resolved, OnlyFinish: rt.only,
		Generate:  func() (credential.Credential, error) { return secrets.Generate(rt.length) },
		NotFound:  func(err error) bool { return errors.Is(err, secrets.ErrNotFound) },
		Delivered: delivered,
		Now:       time.Now,
		Log:       rt.log.With("target", "rotation"),
	}
}

func (rt *rotation) close() {
	if err := rotate.CloseAll(rt.creds); err != nil {
		rt.log.Warn("rotation: closing connections", "error", err.Error())
	}
}

// start runs the start stage.
func (rt *rotation) start(ctx context.Context, report *reconcile.Report, opts reconcile.Options) {
	rt.starts = rt.run("start", func() bool { return false })
	report.Add(reconcile.Run(ctx, []reconcile.Target{rt.starts}, opts)...)
	report.CredentialAgeSeconds = rt.starts.Ages()
}

// retire runs the retire stage (not in verify: an old identity still in
// its grace is no drift).
func (rt *rotation) retire(ctx context.Context, report *reconcile.Report, opts reconcile.Options) {
	if rt.only {
		return
	}
	delivered := func() bool {
		for _, r := range report.Changes {
			if strings.HasPrefix(r.Resource, "secret/") && (r.Status == reconcile.Failed || r.Status == reconcile.Skipped) {
				return false
			}
		}
		return true
	}
	report.Add(reconcile.Run(ctx, []reconcile.Target{rt.run("retire", delivered)}, opts)...)
}

// waiting lists the rotations of report whose old identity is still in
// its grace: the retire stage planned a noop that says until when.
func waiting(report *reconcile.Report) []string {
	var out []string
	for _, r := range report.Changes {
		if strings.HasPrefix(r.Resource, "rotation/") && strings.HasSuffix(r.Resource, "/old") && r.Action == reconcile.Noop && r.Detail != "" {
			out = append(out, r.Resource+": "+r.Detail)
		}
	}
	return out
}

// chosen resolves rotate's arguments — secret names or declared role/user
// names of rotating credentials — to their secrets; none means all.
func chosen(cfg *config.Config, include func(string) bool, args []string) (map[string]bool, error) {
	rs := cfg.Rotating(include)
	out := map[string]bool{}
	if len(args) == 0 {
		for _, r := range rs {
			out[r.Secret] = true
		}
		if len(out) == 0 {
			return nil, usageError{"rotate: no selected credential has rotation: in the config"}
		}
		return out, nil
	}
	var bad []string
	for _, a := range args {
		found := false
		for _, r := range rs {
			if a == r.Secret || a == r.Name || a == r.Target+"/"+r.Name {
				out[r.Secret], found = true, true
			}
		}
		if !found {
			bad = append(bad, a)
		}
	}
	if len(bad) > 0 {
		return nil, usageError{fmt.Sprintf("rotate: %s: not a rotating credential of the selected targets (give its secret, or its role/user name)", strings.Join(bad, ", "))}
	}
	return out, nil
}

// rotateNow is `bootstrap rotate`: one apply that starts the chosen
// rotations, then the retire stage again until each old identity is
// disabled (no live session, or its grace is over). Interrupted, the
// next run of any kind finishes it.
func rotateNow(ctx context.Context, o options, cfg *config.Config, include func(string) bool, log *slog.Logger, stdout, stderr io.Writer) int {
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	o.command = "apply"
	// Rotations still to start: one whose previous rotation is in its grace
	// starts when that grace ends (its old identity is the standby).
	starts := map[string]string{} // resource -> secret
	for _, r := range cfg.Rotating(include) {
		if o.force[r.Secret] {
			starts[reconcile.Resource("rotation/"+r.Target, r.Name)] = r.Secret
		}
	}
	var report, last *reconcile.Report
	for {
		last = timed(ctx, cfg, o, include, log, stderr)
		if report == nil {
			report = last
		} else {
			report = joinRetires(report, last)
		}
		for _, r := range last.Changes {
			if secret, ok := starts[r.Resource]; ok && r.Status == reconcile.Applied {
				delete(o.force, secret)
			}
		}
		w := waiting(last)
		if !last.OK || ctx.Err() != nil || len(o.force) == 0 && len(w) == 0 {
			break
		}
		log.Info("rotation: waiting for old identities to be released", "waiting", w, "toStart", len(o.force))
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}

	o.command = "rotate"
	if err := printReport(stdout, o, report); err != nil {
		log.Error("print report", "error", err)
		return exitFailed
	}
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "error: rotate stopped early (%s); run it (or apply) again to finish the rotation\n", context.Cause(ctx))
		return exitFailed
	}
	if !report.OK {
		return exitFailed
	}
	return exitOK
}

// joinRetires adds a later run of rotate to what it did so far: its
// rotations (a start that waited for a grace, the retires) replace the
// earlier entries of the same resource, and its failures are added.
func joinRetires(first, last *reconcile.Report) *reconcile.Report {
	later := map[string]reconcile.Result{}
	for _, r := range last.Changes {
		if strings.HasPrefix(r.Resource, "rotation/") && (r.Status != reconcile.OK || r.Detail != "" || strings.HasSuffix(r.Resource, "/old")) {
			later[r.Resource] = r
		}
	}
	out := &reconcile.Report{Command: first.Command, Changes: []reconcile.Result{}, CredentialAgeSeconds: last.CredentialAgeSeconds}
	for _, r := range first.Changes {
		if l, ok := later[r.Resource]; ok {
			r = l
			delete(later, r.Resource)
		}
		out.Changes = append(out.Changes, r)
	}
	for _, r := range last.Changes {
		if _, ok := later[r.Resource]; ok || r.Status == reconcile.Failed && !strings.HasPrefix(r.Resource, "rotation/") {
			out.Changes = append(out.Changes, r)
		}
	}
	out.Add()
	out.DurationMs = first.DurationMs + last.DurationMs
	return out
}
