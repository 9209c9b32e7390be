package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/rotate"
	"github.com/health-data-ai/bootstrap/internal/secrets"
	"github.com/health-data-ai/bootstrap/internal/secrets/ocivault"
	"github.com/health-data-ai/bootstrap/internal/secrets/sink"
)

// execute runs the phases: credentials first (everything needs them),
// then the Kubernetes Secrets (--phase secrets|all) and the services
// (--phase services|all) in parallel — or, while an admin credential may be
// in rotation, the services first (rotation.go).
func execute(ctx context.Context, cfg *config.Config, o options, include func(string) bool, log *slog.Logger, stderr io.Writer) *reconcile.Report {
	report := &reconcile.Report{Command: o.command, Changes: []reconcile.Result{}}
	opts := reconcile.Options{
		Mode:        reconcile.Mode(o.command),
		Concurrency: cfg.Defaults.Concurrency,
		WaitTimeout: cfg.Defaults.WaitTimeout.Duration,
		Logger:      log,
	}
	if o.output == "text" && o.command == "apply" && isTerminal(stderr) {
		p := &progress{w: stderr}
		opts.OnResult, opts.OnWait = p.result, p.wait
	}

	src, err := newSource(cfg, log)
	if err != nil {
		report.Add(reconcile.Result{Resource: "vault", Action: reconcile.Check, Status: reconcile.Failed, Error: err.Error()})
		return report
	}
	creds := secrets.NewCredentials(src,
		cfg.SecretRefs(include, o.phase != "services"),
		cfg.Secrets.Generate.Enabled && o.phase != "services",
		cfg.Secrets.Generate.Length)
	rotatingCreds := cfg.Rotating(include)
	creds.GenerateLogins(firstLogins(rotatingCreds))
	report.Add(reconcile.Run(ctx, []reconcile.Target{creds}, opts)...)
	if !report.OK {
		log.Error("credentials are not all available; Kubernetes Secrets and services were not touched")
		return report
	}
	resolved := creds.Resolved()
	rotate.Resolve(resolved, rotatingCreds)
	admins := cfg.AdminSecrets(include)
	rotating, err := secrets.AddPrevious(ctx, src, resolved, slices.Sorted(maps.Keys(admins)))
	if err != nil {
		report.Add(reconcile.Result{Resource: "vault", Action: reconcile.Check, Status: reconcile.Failed, Error: err.Error()})
		return report
	}
	rot, err := newRotation(cfg, o, rotatingCreds, src, resolved, log)
	if err != nil {
		report.Add(reconcile.Result{Resource: "rotation", Action: reconcile.Check, Status: reconcile.Failed, Error: err.Error()})
		return report
	}
	if rot != nil {
		defer rot.close()
		// Before the services are built: a promoted login is what they
		// converge on and what the Secrets deliver.
		rot.start(ctx, report, opts)
		defer rot.retire(ctx, report, opts)
	}
	delivers := o.phase != "services" && cfg.Secrets.Output.Type != "none"
	newSink := func(s config.Secrets) reconcile.Target {
		return sink.New(s, resolved, cfg.Defaults.WaitTimeout.Duration, log.With("target", "secret/"+cfg.Secrets.Output.Namespace))
	}
	var services []reconcile.Target
	if o.phase != "secrets" {
		services = buildTargets(cfg, include, resolved, log)
	}
	if delivers && len(services) > 0 && len(rotating) > 0 {
		// An admin credential may be in rotation: the services take it
		// first, then its Secret is delivered (rotation.go).
		report.Add(reconcile.Run(ctx, services, opts)...)
		keep, skipped := withhold(cfg.Secrets, report, admins, rotating)
		report.Add(skipped...)
		s := cfg.Secrets
		s.KubernetesSecrets = keep
		report.Add(reconcile.Run(ctx, []reconcile.Target{newSink(s)}, opts)...)
		return report
	}
	// Otherwise the Kubernetes Secrets and the services need only the
	// credentials, not each other: they run side by side.
	targets := services
	if delivers {
		targets = append([]reconcile.Target{newSink(cfg.Secrets)}, services...)
	}
	report.Add(reconcile.Run(ctx, targets, opts)...)
	return report
}

// newSource builds the configured credential source; OCI Vault lives in a
// package of its own (it links the OCI SDK).
func newSource(cfg *config.Config, log *slog.Logger) (secrets.Source, error) {
	if cfg.Secrets.Source.Type == "ocivault" {
		return ocivault.New(cfg.Secrets.Source.OCIVault, cfg.Defaults.WaitTimeout.Duration, log.With("target", "vault")), nil
	}
	return secrets.NewSource(cfg.Secrets.Source)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress prints one line per change as it happens, on a terminal.
type progress struct{ w io.Writer }

func (p *progress) result(r reconcile.Result) {
	if r.Action == reconcile.Noop && r.Status == reconcile.OK {
		return
	}
	fmt.Fprintf(p.w, "%s %-8s %s%s\n", mark(r), r.Action, r.Resource, suffix(r))
}

func (p *progress) wait(target, what string, attempt int, err error) {
	fmt.Fprintf(p.w, "… %s: waiting for %s (attempt %d): %s\n", target, what, attempt, err)
}

func mark(r reconcile.Result) string {
	switch r.Status {
	case reconcile.Failed:
		return "✗"
	case reconcile.Skipped:
		return "-"
	case reconcile.Planned:
		switch r.Action {
		case reconcile.Create:
			return "+"
		case reconcile.Update:
			return "~"
		case reconcile.Delete:
			return "-"
		}
		return "·"
	}
	return "✓"
}

func suffix(r reconcile.Result) string {
	var parts []string
	if r.Detail != "" {
		parts = append(parts, r.Detail)
	}
	if r.Status == reconcile.Skipped {
		parts = append(parts, "skipped")
	}
	if r.Error != "" {
		parts = append(parts, r.Error)
	}
	if len(parts) == 0 {
		return ""
	}
	return ": " + strings.Join(parts, "; ")
}

func printReport(w io.Writer, o options, r *reconcile.Report) error {
	if o.output == "json" {
		return writeJSON(w, r)
	}
	shown := 0
	for _, c := range r.Changes {
		// Only what changes or fails is listed; the summary counts the rest.
		quiet := c.Status == reconcile.OK || c.Action == reconcile.Check && c.Status == reconcile.Planned
		if quiet {
			continue
		}
		fmt.Fprintf(w, "%s %-8s %s%s\n", mark(c), c.Action, c.Resource, suffix(c))
		shown++
	}
	s := r.Summary
	switch o.command {
	case "plan":
		if s.Create+s.Update+s.Delete == 0 && s.Failed == 0 {
			fmt.Fprintf(w, "No changes: %d resource(s) in sync, %d check(s) to run on apply.\n", s.Noop, s.Check)
			return nil
		}
		fmt.Fprintf(w, "Plan: %d to create, %d to update, %d to delete; %d unchanged; %d check(s); %d failed.\n", s.Create, s.Update, s.Delete, s.Noop, s.Check, s.Failed)
	case "apply", "rotate":
		fmt.Fprintf(w, "Apply %s: %d created, %d updated, %d deleted, %d unchanged, %d check(s) ok, %d failed (%d ms).\n",
			okWord(r.OK), s.Create, s.Update, s.Delete, s.Noop, s.Check, s.Failed, r.DurationMs)
	case "verify":
		if r.OK {
			fmt.Fprintf(w, "Verify ok: %d resource(s) in sync, %d check(s) passed.\n", s.Noop, s.Check)
		} else {
			fmt.Fprintf(w, "Verify failed: %d problem(s): %s\n", s.Failed, strings.Join(r.Failed(), ", "))
		}
	}
	return nil
}

func okWord(ok bool) string {
	if ok {
		return "complete"
	}
	return "incomplete"
}
