package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// manyDatabases writes a config of n databases (owned by one role) on the
// health instance reached at addr, and returns its path.
func (w *world) manyDatabases(addr string, n int) string {
	host, port, _ := net.SplitHostPort(addr)
	var b strings.Builder
	fmt.Fprintf(&b, `version: 1
defaults: {waitTimeout: 3s}
secrets:
  source: {type: env, env: {prefix: %s}}
postgres:
  - name: health
    host: %s
    port: %s
    sslmode: disable
    admin: {password: {secret: pg-admin}}
    roles:
      - {name: %s_app, password: {secret: role-app}}
    databases:
`, w.prefix, host, port, w.id)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "      - {name: %s_db%02d, owner: %s_app}\n", w.id, i, w.id)
	}
	f := filepath.Join(w.dir, "many.yaml")
	if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return f
}

func (w *world) countDatabases() int {
	c := w.admin("health")
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname LIKE $1", w.id+"_db%").Scan(&n); err != nil {
		w.t.Fatal(err)
	}
	return n
}

func count(r reconcile.Report, s reconcile.Status) int {
	n := 0
	for _, c := range r.Changes {
		if c.Status == s && c.Action != reconcile.Noop {
			n++
		}
	}
	return n
}

// TestConnectionCutMidApply cuts the network between bootstrap and
// PostgreSQL in the middle of an apply: the run fails naming what it applied
// and what failed; the next run converges with nothing lost or duplicated.
func TestConnectionCutMidApply(t *testing.T) {
	w := newWorld(t)
	proxy := testenv.NewProxy(t, w.pgHealth)
	const n = 40
	cfg := w.manyDatabases(proxy.Addr(), n)

	type result struct {
		code int
		rep  reconcile.Report
	}
	done := make(chan result, 1)
	go func() {
		code, rep := w.run("apply", "-f", cfg)
		done <- result{code, rep}
	}()
	eventually(t, 60*time.Second, "some databases created", func() bool { return w.countDatabases() >= 5 })
	proxy.Cut()
	var first result
	select {
	case first = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("apply did not end after the connection was cut")
	}
	applied, failed, skipped := count(first.rep, reconcile.Applied), count(first.rep, reconcile.Failed), count(first.rep, reconcile.Skipped)
	t.Logf("first run: exit %d, %d applied, %d failed, %d skipped", first.code, applied, failed, skipped)
	if first.code != 1 || first.rep.OK || applied == 0 || failed == 0 {
		t.Fatalf("a cut run must fail naming what it applied and what failed: exit %d, %+v", first.code, first.rep.Summary)
	}
	for _, c := range first.rep.Changes {
		if c.Status == reconcile.Failed && c.Error == "" {
			t.Errorf("failed %s without an error", c.Resource)
		}
	}

	proxy.Restore()
	code, rep := w.run("apply", "-f", cfg)
	if code != 0 {
		t.Fatalf("second run: exit %d, failed %v", code, rep.Failed())
	}
	if got := w.countDatabases(); got != n {
		t.Fatalf("%d databases after the second run, want %d", got, n)
	}
	// Nothing done twice: the second run created only what the first did not.
	if created := rep.Summary.Create; created+applied > n+1 || created > n-applied+1 {
		t.Errorf("second run created %d after the first applied %d of %d", created, applied, n+1)
	}
	if code, rep := w.run("verify", "-f", cfg); code != 0 {
		t.Fatalf("verify: exit %d, failed %v", code, rep.Failed())
	}
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary builds bootstrap once per test process, for tests that need a real
// process (signals, RSS).
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bootstrap-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "bootstrap")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatalf("build: %v", binErr)
	}
	return binPath
}

// TestSIGTERMMidRun stops a real process with SIGTERM during apply: it exits
// promptly with 1, its report lists what was applied and what was skipped,
// and the next run finishes the job.
func TestSIGTERMMidRun(t *testing.T) {
	w := newWorld(t)
	const n = 40
	cfg := w.manyDatabases(w.pgHealth, n)
	cmd := exec.Command(binary(t), "apply", "-f", cfg, "-o", "json")
	cmd.Env = os.Environ()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "some databases created", func() bool { return w.countDatabases() >= 3 })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- cmd.Wait() }()
	select {
	case <-errc:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("apply did not stop within 10s of SIGTERM")
	}
	w.record(stdout.Bytes(), stderr.Bytes())
	t.Logf("stopped %v after SIGTERM", time.Since(sent).Round(time.Millisecond))
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("exit %d after SIGTERM, want 1\n%s", code, stderr.String())
	}
	var rep reconcile.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("no report after SIGTERM: %v\n%s", err, stdout.String())
	}
	if count(rep, reconcile.Applied) == 0 || rep.OK {
		t.Errorf("report after SIGTERM: %+v", rep.Summary)
	}
	if !strings.Contains(stderr.String(), "stopped early") {
		t.Errorf("stderr does not say the run stopped early:\n%s", stderr.String())
	}
	if code, rep := w.run("apply", "-f", cfg); code != 0 {
		t.Fatalf("next run: exit %d, failed %v", code, rep.Failed())
	}
	if got := w.countDatabases(); got != n {
		t.Fatalf("%d databases, want %d", got, n)
	}
}

// applyConcurrently starts n applies at the same moment and returns their
// exit codes and stderr.
func (w *world) applyConcurrently(cfg string, n int) ([]int, []string) {
	var wg sync.WaitGroup
	codes := make([]int, n)
	stderrs := make([]string, n)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var stdout, stderr bytes.Buffer
			codes[i] = run(context.Background(), []string{"apply", "-f", cfg, "-o", "json"}, &stdout, &stderr)
			w.record(stdout.Bytes(), stderr.Bytes())
			stderrs[i] = stderr.String()
		}()
	}
	wg.Wait()
	return codes, stderrs
}

// TestFiveConcurrentApplies: five runs at the same moment all succeed and
// leave one result.
func TestFiveConcurrentApplies(t *testing.T) {
	w := newWorld(t)
	cfg := w.config("60s")
	codes, stderrs := w.applyConcurrently(cfg, 5)
	for i, c := range codes {
		if c != 0 {
			t.Errorf("run %d exited %d:\n%s", i, c, stderrs[i])
		}
	}
	if code, rep := w.run("apply", "-f", cfg); code != 0 || summaryWrites(rep) != 0 {
		t.Fatalf("apply after five: exit %d, %+v", code, rep.Summary)
	}
	if code, rep := w.run("verify", "-f", cfg); code != 0 {
		t.Fatalf("verify: exit %d, failed %v", code, rep.Failed())
	}
}

// TestWrongCredentialsEveryService: each of the four services with a wrong
// credential fails fast with an error naming its instance, and no output
// holds any credential.
func TestWrongCredentialsEveryService(t *testing.T) {
	w := newWorld(t)
	rmq := testenv.RabbitMQ(t)
	mio := testenv.MinIO(t)
	wrong := "wrong-" + w.id
	w.setSecret("pg-admin", wrong+"-pg")
	w.setSecret("redis", wrong+"-redis")
	w.setSecret("minio-user", mio.AccessKey)
	suite.secret(mio.SecretKey)
	w.setSecret("minio-secret", wrong+"-minio")
	w.setSecret("rabbit", wrong+"-rabbit")
	cfg := fmt.Sprintf(`version: 1
defaults: {waitTimeout: 60s}
secrets:
  source: {type: env, env: {prefix: %s}}
postgres:
  - {name: health, host: %s, port: %d, sslmode: disable, admin: {password: {secret: pg-admin}}}
redis:
  - {name: health, address: "%s", password: {secret: redis}}
minio:
  - {name: datalake, endpoint: "%s", accessKey: {secret: minio-user}, secretKey: {secret: minio-secret}}
rabbitmq:
  - {name: events, host: %s, port: %d, managementPort: %d, user: %s, password: {secret: rabbit}}
`, w.prefix, w.pg["health"].Host, w.pg["health"].Port, w.redis["health"].Addr, mio.Endpoint, rmq.Host, rmq.Port, rmq.ManagementPort, rmq.User)
	f := filepath.Join(w.dir, "wrong.yaml")
	if err := os.WriteFile(f, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, rep := w.run("plan", "-f", f)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %v: wrong credentials must not be waited on", d)
	}
	for _, target := range []string{"postgres/health", "redis/health", "minio/datalake", "rabbitmq/events"} {
		r := find(rep, target)
		if r == nil || r.Status != reconcile.Failed {
			t.Errorf("%s: no failure reported: %+v", target, r)
			continue
		}
		t.Logf("%s: %s", target, r.Error)
	}
	w.leakScan()
}
