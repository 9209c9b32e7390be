package daemon

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

func TestReadyz(t *testing.T) {
	d := &Daemon{}
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	status := func(path string) int {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if status("/healthz") != 200 || status("/readyz") != 503 {
		t.Fatal("before the first run: want healthz 200, readyz 503")
	}
	var ok reconcile.Report
	ok.Add(reconcile.Result{Resource: "postgres/health/role/a", Action: reconcile.Noop, Status: reconcile.OK})
	d.Record(&ok, time.Second)
	if status("/readyz") != 200 {
		t.Fatal("after a good run: want readyz 200")
	}
	var bad reconcile.Report
	bad.Add(reconcile.Result{Resource: "postgres/health", Action: reconcile.Check, Status: reconcile.Failed, Error: "connect: refused"})
	d.Record(&bad, time.Second)
	if status("/readyz") != 503 {
		t.Fatal("after a failed run: want readyz 503")
	}
	resp, _ := http.Get(srv.URL + "/metrics")
	buf := new(strings.Builder)
	_, _ = io.Copy(buf, resp.Body)
	resp.Body.Close()
	for _, m := range []string{`bootstrap_target_up{target="postgres/health"} 0`, `bootstrap_reconciles_total{result="failed"} 1`, `bootstrap_drift_resources 1`} {
		if !strings.Contains(buf.String(), m) {
			t.Errorf("metrics lack %s", m)
		}
	}
}

// TestTargetUpFallsWhenNotReached: a run that stops before the targets (the
// vault failed) or never starts one leaves no target at 1.
func TestTargetUpFallsWhenNotReached(t *testing.T) {
	d := &Daemon{}
	metric := func() string {
		srv := httptest.NewServer(d.Handler())
		defer srv.Close()
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	var ok reconcile.Report
	ok.Add(reconcile.Result{Resource: "postgres/health/role/a", Action: reconcile.Noop, Status: reconcile.OK},
		reconcile.Result{Resource: "redis/cache", Action: reconcile.Check, Status: reconcile.OK})
	d.Record(&ok, time.Second)
	if m := metric(); !strings.Contains(m, `bootstrap_target_up{target="postgres/health"} 1`) || !strings.Contains(m, `bootstrap_target_up{target="redis/cache"} 1`) {
		t.Fatalf("after a good run both targets should be up:\n%s", m)
	}
	var vault reconcile.Report
	vault.Add(reconcile.Result{Resource: "vault", Action: reconcile.Check, Status: reconcile.Failed, Error: "vault: 503"},
		reconcile.Result{Resource: "redis/cache", Action: reconcile.Check, Status: reconcile.Skipped, Error: "not started"})
	d.Record(&vault, time.Second)
	m := metric()
	for _, want := range []string{`bootstrap_target_up{target="postgres/health"} 0`, `bootstrap_target_up{target="redis/cache"} 0`} {
		if !strings.Contains(m, want) {
			t.Errorf("after a run that reached no target, metrics lack %s", want)
		}
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	runs := 0
	d := &Daemon{Interval: time.Hour, Reconcile: func(context.Context) *reconcile.Report {
		runs++
		cancel()
		return &reconcile.Report{OK: true}
	}}
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx, "127.0.0.1:0") }()
	select {
	case err := <-errc:
		if err != nil || runs != 1 {
			t.Fatalf("Run = %v after %d runs", err, runs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func TestJitter(t *testing.T) {
	for i := 0; i < 100; i++ {
		if j := jitter(time.Minute); j < 54*time.Second || j > 66*time.Second {
			t.Fatalf("jitter(1m) = %v", j)
		}
	}
}
