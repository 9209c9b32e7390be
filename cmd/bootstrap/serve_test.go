package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// syncBuffer is a bytes.Buffer safe for the daemon's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func eventually(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("not within %v: %s", within, what)
}

// TestServe runs the daemon against the real servers: it becomes ready,
// heals a database dropped by hand within two intervals, rolls out a rotated
// password within one, exports metrics, and exits 0 on SIGTERM quickly.
func TestServe(t *testing.T) {
	w := newWorld(t)
	cfg := w.config("30s")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	base := "http://" + addr
	const interval = 2 * time.Second

	ctx, stop := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-f", cfg, "--interval", interval.String(), "--listen", addr, "--only", "postgres/health,redis"}, &stdout, &stderr)
	}()
	t.Cleanup(func() {
		stop()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
		}
	})

	eventually(t, 30*time.Second, "/healthz answers", func() bool { c, _ := get(base + "/healthz"); return c == 200 })
	eventually(t, 30*time.Second, "/readyz is 200", func() bool { c, _ := get(base + "/readyz"); return c == 200 })

	// A database dropped by hand is back within two intervals.
	c := w.admin("health")
	db := w.id + "_db"
	if _, err := c.Exec(context.Background(), "DROP DATABASE "+db+" WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}
	dropped := time.Now()
	eventually(t, 2*interval+5*time.Second, "database recreated", func() bool {
		var n int
		_ = c.QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname = $1", db).Scan(&n)
		return n == 1
	})
	t.Logf("database back after %v", time.Since(dropped).Round(100*time.Millisecond))

	// A rotated password is rolled out within one interval (+ the run).
	newPW := testenv.Unique("rotated-")
	w.setSecret("role-app", newPW)
	pg := w.pg["health"]
	eventually(t, interval+5*time.Second, "rotated password works", func() bool {
		_, err := pg.Connect(t, w.id+"_app", newPW, db)
		return err == nil
	})

	code, metrics := get(base + "/metrics")
	for _, m := range []string{"bootstrap_reconciles_total{result=\"ok\"}", "bootstrap_reconcile_duration_seconds", "bootstrap_changes_total", "bootstrap_last_success_timestamp_seconds", "bootstrap_target_up{target=\"postgres/health\"} 1", "bootstrap_drift_resources"} {
		if code != 200 || !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}

	stop()
	stopped := time.Now()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited %d on SIGTERM, want 0", code)
		}
		if d := time.Since(stopped); d > 10*time.Second {
			t.Errorf("serve took %v to stop", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop within 10s")
	}
	w.record([]byte(stdout.String()), []byte(stderr.String()))
	w.leakScan(metrics)
	if !strings.Contains(stderr.String(), "msg=serving") {
		t.Error("no log line says where it serves")
	}
}
