// Package daemon runs bootstrap as a long-lived sidecar: it reconciles
// every interval (jittered), re-reading credentials each time so rotated
// ones roll out, and serves /healthz, /readyz and /metrics. It owns the loop
// and the HTTP endpoints, never what a reconcile does.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// Daemon reconciles on a timer and reports its state over HTTP.
type Daemon struct {
	// Interval between the end of one reconcile and the start of the
	// next, ±10% jitter so sidecars of many pods do not run in step.
	Interval time.Duration
	// Reload, when set, reads the configuration again before each
	// reconcile and returns a function that puts it in use. It runs on a
	// goroutine of its own, bounded by ReloadTimeout; the loop calls use
	// itself, before Reconcile, and only when Reload returned in time
	// without error, so a reload abandoned at its timeout can never change
	// what Reconcile sees. A failed or timed-out reload keeps the last good
	// configuration and makes /readyz 503, naming the reload, until one
	// succeeds. Reload should stop when ctx ends; one that does not is left
	// running, and no other starts until it returns.
	Reload func(ctx context.Context) (use func(), err error)
	// ReloadTimeout bounds Reload; zero means DefaultReloadTimeout.
	ReloadTimeout time.Duration
	// Reconcile performs one apply run and returns its report.
	Reconcile func(ctx context.Context) *reconcile.Report
	Logger    *slog.Logger

	reg       *prometheus.Registry
	m         metrics
	mu        sync.Mutex
	last      *reconcile.Report
	runs      int
	reloadBad *reloadFailure // the last reload's failure, nil after a good one
	reloading chan struct{}  // closed when the last reload started returns
	// seen is every target a run has reported: one the last run did not
	// reach (a failed vault stops a run before any target) goes to 0.
	seen map[string]bool
}

type metrics struct {
	reloads     *prometheus.CounterVec
	reconciles  *prometheus.CounterVec
	duration    prometheus.Histogram
	changes     *prometheus.CounterVec
	drift       prometheus.Gauge
	lastSuccess prometheus.Gauge
	targetUp    *prometheus.GaugeVec
	credAge     *prometheus.GaugeVec
	rotations   *prometheus.CounterVec
}

func (d *Daemon) init() {
	if d.reg != nil {
		return
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	d.reg = prometheus.NewRegistry()
	d.m = metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bootstrap_config_reloads_total", Help: "Config reloads by result (ok, failed, timeout).",
		}, []string{"result"}),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bootstrap_reconciles_total", Help: "Reconcile runs by result (ok, failed).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "bootstrap_reconcile_duration_seconds", Help: "Duration of reconcile runs.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bootstrap_changes_total", Help: "Changes by resource kind, action and status.",
		}, []string{"kind", "action", "status"}),
		drift: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bootstrap_drift_resources", Help: "Resources that failed or drifted in the last run.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bootstrap_last_success_timestamp_seconds", Help: "Unix time of the last fully successful run.",
		}),
		targetUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bootstrap_target_up", Help: "1 when the target was reached and planned in the last run.",
		}, []string{"target"}),
		credAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bootstrap_credential_age_seconds", Help: "Seconds since each rotating credential's current value was promoted.",
		}, []string{"credential"}),
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bootstrap_rotations_total", Help: "Rotations of application credentials by result (ok, failed).",
		}, []string{"result"}),
	}
	d.reg.MustRegister(d.m.reloads, d.m.reconciles, d.m.duration, d.m.changes, d.m.drift, d.m.lastSuccess, d.m.targetUp, d.m.credAge, d.m.rotations,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// Handler serves /healthz, /readyz and /metrics.
func (d *Daemon) Handler() http.Handler {
	d.init()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", d.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}))
	return mux
}

// readyz is 200 once the last reconcile succeeded with nothing failed or
// drifted, 503 before the first run, after a failed one, and while the
// config cannot be reloaded.
func (d *Daemon) readyz(w http.ResponseWriter, _ *http.Request) {
	d.mu.Lock()
	last, runs, bad := d.last, d.runs, d.reloadBad
	d.mu.Unlock()
	body := map[string]any{"runs": runs}
	code := http.StatusServiceUnavailable
	switch {
	case bad != nil:
		body["reason"] = bad.reason
		body["error"] = bad.err
	case last == nil:
		body["reason"] = "no reconcile has finished yet"
	case !last.OK:
		body["reason"] = "last reconcile failed"
		body["failed"] = last.Failed()
	default:
		code = http.StatusOK
		body["summary"] = last.Summary
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

// Run serves on listen (when not empty) and reconciles until ctx ends, then
// shuts the server down within a few seconds and returns nil.
func (d *Daemon) Run(ctx context.Context, listen string) error {
	d.init()
	var srv *http.Server
	errc := make(chan error, 1)
	if listen != "" {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return err
		}
		srv = &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 5 * time.Second}
		d.Logger.Info("serving", "addr", ln.Addr().String(), "paths", "/healthz /readyz /metrics")
		go func() {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	for {
		d.once(ctx)
		next := jitter(d.Interval)
		d.Logger.Info("next reconcile", "in", next.Round(time.Second).String())
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return d.shutdown(srv)
		case err := <-errc:
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

func (d *Daemon) shutdown(srv *http.Server) error {
	d.Logger.Info("stopping")
	if srv == nil {
		return nil
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// once reloads the config, then runs one reconcile and records it.
func (d *Daemon) once(ctx context.Context) {
	if d.Reload != nil {
		d.reload(ctx)
		if ctx.Err() != nil {
			return
		}
	}
	start := time.Now()
	rep := d.Reconcile(ctx)
	if ctx.Err() != nil {
		return // stopped mid-run: not a result worth reporting
	}
	d.Record(rep, time.Since(start))
}

// Record updates metrics and readiness from one report.
func (d *Daemon) Record(rep *reconcile.Report, took time.Duration) {
	d.init()
	result := "ok"
	if !rep.OK {
		result = "failed"
	}
	d.m.reconciles.WithLabelValues(result).Inc()
	d.m.duration.Observe(took.Seconds())
	failed := 0
	up := map[string]float64{}
	for cred, age := range rep.CredentialAgeSeconds {
		d.m.credAge.WithLabelValues(cred).Set(age)
	}
	for _, c := range rep.Changes {
		kind, _, _ := strings.Cut(c.Resource, "/")
		d.m.changes.WithLabelValues(kind, string(c.Action), string(c.Status)).Inc()
		if rotation(c) {
			if c.Status == reconcile.Failed {
				d.m.rotations.WithLabelValues("failed").Inc()
			} else {
				d.m.rotations.WithLabelValues("ok").Inc()
			}
		}
		if c.Status == reconcile.Failed {
			failed++
		}
		target := targetOf(c.Resource)
		if _, seen := up[target]; !seen {
			up[target] = 1
		}
		// A failure or skip reported on the target itself (connect, plan,
		// not started) means the target was not reached.
		if c.Resource == target && (c.Status == reconcile.Failed || c.Status == reconcile.Skipped) {
			up[target] = 0
		}
	}
	d.mu.Lock()
	if d.seen == nil {
		d.seen = map[string]bool{}
	}
	for t := range d.seen {
		if _, ok := up[t]; !ok {
			up[t] = 0
		}
	}
	for t, v := range up {
		d.seen[t] = true
		d.m.targetUp.WithLabelValues(t).Set(v)
	}
	d.mu.Unlock()
	d.m.drift.Set(float64(failed))
	if rep.OK {
		d.m.lastSuccess.SetToCurrentTime()
	}
	d.mu.Lock()
	d.last = rep
	d.runs++
	d.mu.Unlock()
	d.Logger.Info("reconciled", "ok", rep.OK, "create", rep.Summary.Create, "update", rep.Summary.Update,
		"failed", rep.Summary.Failed, "took", took.Round(time.Millisecond).String())
}

// rotation reports whether c is a credential rotation this run took (the
// start stage's rotation/KIND/INSTANCE/NAME, set and promoted or failed).
func rotation(c reconcile.Result) bool {
	return strings.HasPrefix(c.Resource, "rotation/") && !strings.HasSuffix(c.Resource, "/old") &&
		c.Action == reconcile.Update && (c.Status == reconcile.Applied || c.Status == reconcile.Failed)
}

// targetOf is KIND/INSTANCE of a resource (vault and rotation resources
// are one target each).
func targetOf(resource string) string {
	parts := strings.SplitN(resource, "/", 3)
	if parts[0] == "vault" || parts[0] == "rotation" || len(parts) < 2 {
		return parts[0]
	}
	return parts[0] + "/" + parts[1]
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Minute
	}
	return d - d/10 + rand.N(d/5+1)
}
