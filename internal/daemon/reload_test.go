package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// probe is what /healthz and /readyz answer.
type probe struct {
	health, ready int
	reason, err   string
}

func probeOf(t *testing.T, base string) probe {
	t.Helper()
	var p probe
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	p.health = resp.StatusCode
	resp, err = http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p.ready = resp.StatusCode
	var body struct{ Reason, Error string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("readyz body: %v", err)
	}
	p.reason, p.err = body.Reason, body.Error
	return p
}

// waitFor polls the probes until ok holds, or fails after 5 s with the
// last answer.
func waitFor(t *testing.T, base, what string, ok func(probe) bool) probe {
	t.Helper()
	var p probe
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if p = probeOf(t, base); ok(p) {
			return p
		}
	}
	t.Fatalf("not within 5s: %s; last: %+v", what, p)
	return p
}

// start runs d every few milliseconds and serves its handler; both stop
// with the test.
func start(t *testing.T, d *Daemon) string {
	t.Helper()
	d.Interval = 20 * time.Millisecond
	srv := httptest.NewServer(d.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, "") }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		srv.Close()
	})
	return srv.URL
}

func okReport(context.Context) *reconcile.Report { return &reconcile.Report{OK: true} }

// TestReadyzReloadHostileConfig: a config file replaced by an alias bomb makes
// /readyz 503 naming the failed reload and where the file went wrong, while
// /healthz stays 200 and reconciles go on with the last good config; a good
// file makes it ready again.
func TestReadyzReloadHostileConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bootstrap.yaml")
	good := "version: 1\nredis:\n  - {name: health, address: 'redis:6379', password: {secret: r}}\n"
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(good)
	var mu sync.Mutex
	var cfg *config.Config
	var reconciled atomic.Int32
	d := &Daemon{
		Reload: func(context.Context) (func(), error) {
			fresh, err := config.LoadFile(file)
			if err != nil {
				return nil, err
			}
			return func() { mu.Lock(); cfg = fresh; mu.Unlock() }, nil
		},
		Reconcile: func(ctx context.Context) *reconcile.Report {
			mu.Lock()
			defer mu.Unlock()
			if cfg == nil {
				return &reconcile.Report{}
			}
			reconciled.Add(1)
			return okReport(ctx)
		},
	}
	base := start(t, d)
	waitFor(t, base, "ready on the good file", func(p probe) bool { return p.ready == 200 })

	// Nested anchors through the config's own lists: width³ schemas.
	var b strings.Builder
	b.WriteString("version: 1\npostgres:\n  - &p {name: h, host: db, admin: {password: {secret: a}}, databases: [&d {name: d, schemas: [&s {name: s}")
	b.WriteString(strings.Repeat(", *s", 199) + "]}" + strings.Repeat(", *d", 199) + "]}\n")
	b.WriteString(strings.Repeat("  - *p\n", 199))
	write(b.String())
	p := waitFor(t, base, "readyz 503 naming the reload", func(p probe) bool { return p.ready == 503 })
	if p.health != 200 || !strings.Contains(p.reason, "config reload failed") || !strings.Contains(p.err, "postgres[0].databases[") {
		t.Errorf("after a hostile file: %+v; want healthz 200, readyz naming the failed reload and the path", p)
	}
	before := reconciled.Load()
	waitFor(t, base, "reconciles go on", func(probe) bool { return reconciled.Load() > before+1 })

	write(good)
	waitFor(t, base, "ready again on a good file", func(p probe) bool { return p.ready == 200 })
}

// TestReadyzReloadTimeout: a reload that hangs is abandoned at ReloadTimeout,
// /readyz says so while /healthz stays 200, no second reload starts beside
// it, and reconciles go on with the config in use.
func TestReadyzReloadTimeout(t *testing.T) {
	release := make(chan struct{})
	var hung, calls, used atomic.Int32
	hung.Store(1)
	var reconciled atomic.Int32
	d := &Daemon{
		ReloadTimeout: 100 * time.Millisecond,
		Reload: func(ctx context.Context) (func(), error) {
			calls.Add(1)
			if hung.Load() == 1 {
				<-release // ignores ctx, as a read of a hung volume would
				return func() { used.Add(1) }, nil
			}
			return func() { used.Add(1) }, nil
		},
		Reconcile: func(ctx context.Context) *reconcile.Report {
			reconciled.Add(1)
			return okReport(ctx)
		},
	}
	base := start(t, d)
	p := waitFor(t, base, "readyz 503 naming the timeout", func(p probe) bool { return strings.Contains(p.reason, "timed out after 100ms") })
	if p.health != 200 || p.ready != 503 {
		t.Errorf("during a hung reload: %+v; want healthz 200, readyz 503", p)
	}
	p = waitFor(t, base, "the next reload waits for the hung one", func(p probe) bool { return strings.Contains(p.reason, "still running") })
	if p.health != 200 || p.ready != 503 {
		t.Errorf("while the reload stays hung: %+v", p)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("Reload started %d times while the first was hung; want 1", n)
	}
	if reconciled.Load() == 0 {
		t.Error("no reconcile ran while the reload was hung")
	}
	if used.Load() != 0 {
		t.Error("the abandoned reload's config was put in use")
	}
	hung.Store(0)
	close(release)
	waitFor(t, base, "ready once reloads return", func(p probe) bool { return p.ready == 200 })
	if used.Load() == 0 {
		t.Error("a reload in time was not put in use")
	}
}

// TestReadyzReloadError: the error Reload returns is in /readyz as given.
func TestReadyzReloadError(t *testing.T) {
	d := &Daemon{
		Reload:    func(context.Context) (func(), error) { return nil, errors.New("read config: permission denied") },
		Reconcile: okReport,
	}
	base := start(t, d)
	p := waitFor(t, base, "readyz 503", func(p probe) bool { return p.ready == 503 && p.err != "" })
	if p.health != 200 || p.err != "read config: permission denied" || !strings.HasPrefix(p.reason, "config reload failed") {
		t.Errorf("got %+v", p)
	}
}
