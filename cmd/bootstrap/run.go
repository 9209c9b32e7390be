package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/daemon"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// version is stamped at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

const (
	exitOK      = 0
	exitFailed  = 1
	exitInvalid = 2
)

const usage = `usage: bootstrap <command> [flags]

commands:
  validate   check the config; no network
  plan       read current state, print what apply would change; writes nothing
  apply      converge; print what changed
  verify     read-only: desired state holds and every credential works
  serve      sidecar/daemon: apply every --interval, serve /healthz /readyz /metrics on --listen
  rotate     [CREDENTIAL...] rotate application credentials now (default: every one with rotation:)
             and wait through the grace until the old identities are disabled
  uninstall  remove what helm uninstall leaves of a release (its hook objects, by label); no config
  version    print the version

flags:
  -f, --config FILE      config file (default bootstrap.yaml, env BOOTSTRAP_CONFIG)
  --only LIST            limit targets: postgres/health,minio
  --phase PHASE          secrets | services | all (default all)
  -o, --output FORMAT    text | json (default text)
  --log-format FORMAT    text | json (default text)
  --log-level LEVEL      debug | info | warn | error (default info)
  --timeout DURATION     stop the whole run after this long (default none; serve: each run)
  --interval DURATION    serve: time between runs, ±10% jitter (default 5m)
  --listen ADDR          serve: HTTP address for /healthz /readyz /metrics (default :8080; "" = none)
`

type options struct {
	command   string
	config    string
	only      string
	phase     string
	output    string
	logFormat string
	logLevel  string
	timeout   time.Duration
	interval  time.Duration
	listen    string
	// force: the secrets of the rotating credentials to rotate now
	// (rotate's arguments, resolved against the config).
	force map[string]bool
	args  []string
}

// usageError is invalid input: exit 2, nothing touched.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func parseArgs(args []string, stderr io.Writer) (options, error) {
	var o options
	if len(args) == 0 {
		return o, usageError{"no command given"}
	}
	o.command = args[0]
	fs := flag.NewFlagSet("bootstrap "+o.command, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	def := os.Getenv("BOOTSTRAP_CONFIG")
	if def == "" {
		def = "bootstrap.yaml"
	}
	fs.StringVar(&o.config, "config", def, "")
	fs.StringVar(&o.config, "f", def, "")
	fs.StringVar(&o.only, "only", "", "")
	fs.StringVar(&o.phase, "phase", "all", "")
	fs.StringVar(&o.output, "output", "text", "")
	fs.StringVar(&o.output, "o", "text", "")
	fs.StringVar(&o.logFormat, "log-format", "text", "")
	fs.StringVar(&o.logLevel, "log-level", "info", "")
	fs.DurationVar(&o.timeout, "timeout", 0, "")
	fs.DurationVar(&o.interval, "interval", 5*time.Minute, "")
	fs.StringVar(&o.listen, "listen", ":8080", "")
	if err := fs.Parse(args[1:]); err != nil {
		return o, usageError{err.Error()}
	}
	if fs.NArg() > 0 && o.command != "rotate" {
		return o, usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	o.args = fs.Args()
	var bad []string
	check := func(flag, got string, allowed ...string) {
		for _, a := range allowed {
			if got == a {
				return
			}
		}
		bad = append(bad, fmt.Sprintf("--%s: must be one of %s, got %q", flag, strings.Join(allowed, ", "), got))
	}
	check("phase", o.phase, "secrets", "services", "all")
	check("output", o.output, "text", "json")
	check("log-format", o.logFormat, "text", "json")
	check("log-level", o.logLevel, "debug", "info", "warn", "error")
	if o.timeout < 0 {
		bad = append(bad, "--timeout: must not be negative")
	}
	if o.interval < time.Second {
		bad = append(bad, fmt.Sprintf("--interval: must be at least 1s, got %s", o.interval))
	}
	if len(bad) > 0 {
		return o, usageError{strings.Join(bad, "\n")}
	}
	return o, nil
}

// run is the whole program behind main, testable: it never exits and
// writes only to stdout (the plan/report) and stderr (logs, progress).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	if len(args) > 0 && (args[0] == "version" || args[0] == "--version") {
		fmt.Fprintf(stdout, "bootstrap %s (%s, %s/%s)\n", version, vcsRevision(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	}
	if len(args) > 0 && args[0] == "uninstall" {
		return runUninstall(ctx, args[1:], stdout, stderr)
	}
	o, err := parseArgs(args, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "error: %s\n\n%s", err, usage)
		return exitInvalid
	}
	switch o.command {
	case "validate", "plan", "apply", "verify", "serve", "rotate":
	default:
		fmt.Fprintf(stderr, "error: unknown command %q\n\n%s", o.command, usage)
		return exitInvalid
	}
	log := newLogger(stderr, o.logFormat, o.logLevel)

	cfg, err := config.LoadFile(o.config)
	if err != nil {
		return invalid(stdout, stderr, o, err)
	}
	include, err := selector(cfg, o.only)
	if err != nil {
		return invalid(stdout, stderr, o, err)
	}
	if o.command == "validate" {
		return printValidate(stdout, o, cfg, include)
	}
	if o.command == "serve" {
		return serve(ctx, o, cfg, log, stderr)
	}
	if o.command == "rotate" {
		if o.force, err = chosen(cfg, include, o.args); err != nil {
			return invalid(stdout, stderr, o, err)
		}
		return rotateNow(ctx, o, cfg, include, log, stdout, stderr)
	}

	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	report := timed(ctx, cfg, o, include, log, stderr)
	if err := printReport(stdout, o, report); err != nil {
		log.Error("print report", "error", err)
		return exitFailed
	}
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "error: %s stopped early (%s); what was applied is listed above, run it again to finish\n", o.command, context.Cause(ctx))
		return exitFailed
	}
	if !report.OK {
		return exitFailed
	}
	return exitOK
}

// timed runs execute and records its duration in the report.
func timed(ctx context.Context, cfg *config.Config, o options, include func(string) bool, log *slog.Logger, stderr io.Writer) *reconcile.Report {
	start := time.Now()
	report := execute(ctx, cfg, o, include, log, stderr)
	report.DurationMs = time.Since(start).Milliseconds()
	return report
}

// invalid prints config or flag problems, one per line, and returns 2.
func invalid(stdout, stderr io.Writer, o options, err error) int {
	var lines []string
	var ps config.Problems
	if errors.As(err, &ps) {
		for _, p := range ps {
			lines = append(lines, p.String())
		}
	} else {
		lines = []string{err.Error()}
	}
	if o.output == "json" {
		_ = writeJSON(stdout, map[string]any{"command": o.command, "ok": false, "errors": lines})
	}
	if len(ps) > 0 {
		fmt.Fprintf(stderr, "error: %s: %d problem(s); nothing was touched\n", o.config, len(ps))
	} else {
		fmt.Fprintf(stderr, "error: ")
	}
	for _, l := range lines {
		fmt.Fprintln(stderr, l)
	}
	return exitInvalid
}

// selector turns --only into a predicate on target names. An entry is a
// kind ("minio") or a target ("postgres/health"); one that matches nothing
// is invalid input.
func selector(cfg *config.Config, only string) (func(string) bool, error) {
	if strings.TrimSpace(only) == "" {
		return func(string) bool { return true }, nil
	}
	want := map[string]bool{}
	var ps config.Problems
	for _, e := range strings.Split(only, ",") {
		e = strings.TrimSpace(e)
		matched := false
		for _, t := range cfg.Targets() {
			kind, _, _ := strings.Cut(t, "/")
			if t == e || kind == e {
				want[t] = true
				matched = true
			}
		}
		if !matched {
			ps = append(ps, config.Problem{Path: "--only", Reason: fmt.Sprintf("%q matches no target (have %s)", e, strings.Join(cfg.Targets(), ", "))})
		}
	}
	if len(ps) > 0 {
		return nil, ps
	}
	return func(t string) bool { return want[t] }, nil
}

func printValidate(stdout io.Writer, o options, cfg *config.Config, include func(string) bool) int {
	var targets []string
	for _, t := range cfg.Targets() {
		if include(t) {
			targets = append(targets, t)
		}
	}
	if o.output == "json" {
		_ = writeJSON(stdout, map[string]any{"command": "validate", "ok": true, "targets": targets})
		return exitOK
	}
	fmt.Fprintf(stdout, "%s is valid: %d target(s): %s\n", o.config, len(targets), strings.Join(targets, ", "))
	return exitOK
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// newLogger builds the slog logger on stderr. Credentials redact themselves
// (credential.Credential implements LogValuer); as a second line of defence
// any attribute whose key names a secret is replaced.
func newLogger(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: redactAttr}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func redactAttr(_ []string, a slog.Attr) slog.Attr {
	switch strings.ToLower(a.Key) {
	case "password", "secret", "secretkey", "token", "credential", "passwd":
		return slog.String(a.Key, "REDACTED")
	}
	return a
}

func vcsRevision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "unknown", ""
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
			if len(rev) > 12 {
				rev = rev[:12]
			}
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	return rev + dirty + ", " + info.GoVersion
}

// serve reconciles every interval until SIGTERM/SIGINT, then exits 0.
// The config file is re-read before each run, so an updated ConfigMap is
// picked up; a file that no longer validates, or takes longer than the
// daemon's reload timeout to read, is logged and reported in /readyz, and
// the last good config is kept.
func serve(ctx context.Context, o options, cfg *config.Config, log *slog.Logger, stderr io.Writer) int {
	o.command = "apply"
	d := &daemon.Daemon{
		Interval: o.interval,
		Logger:   log,
		Reload: func(context.Context) (func(), error) {
			fresh, err := config.LoadFile(o.config)
			if err != nil {
				return nil, err
			}
			// --only chose what this daemon may touch: a config it no
			// longer matches is refused like a broken one (the last good
			// config stays, /readyz says why), never widened to all.
			if _, err := selector(fresh, o.only); err != nil {
				return nil, err
			}
			return func() { cfg = fresh }, nil
		},
		Reconcile: func(ctx context.Context) *reconcile.Report {
			// The config in use always matches --only: the first was
			// checked before serving, each reload before it is taken.
			include, err := selector(cfg, o.only)
			if err != nil {
				var r reconcile.Report
				r.Add(reconcile.Result{Resource: "config", Action: reconcile.Check, Status: reconcile.Failed, Error: err.Error()})
				return &r
			}
			if o.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, o.timeout)
				defer cancel()
			}
			return timed(ctx, cfg, o, include, log, stderr)
		},
	}
	if err := d.Run(ctx, o.listen); err != nil {
		log.Error("serve", "error", err.Error())
		return exitFailed
	}
	return exitOK
}
