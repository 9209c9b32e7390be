package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// blackHole accepts connections and reads from them, never answering: a
// server that hangs after the TCP handshake.
func blackHole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	return l.Addr().String()
}

// runConfig runs the CLI in-process on a config text and returns the exit
// code and the JSON report; the run must end within limit.
func runConfig(t *testing.T, limit time.Duration, cfg string, args ...string) (int, reconcile.Report, string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "bootstrap.yaml")
	if err := os.WriteFile(f, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, append(args, "-f", f, "-o", "json"), &stdout, &stderr)
	if ctx.Err() != nil {
		t.Fatalf("the run did not end within %s (the timeouts did not bound it):\n%s", limit, stderr.String())
	}
	suite.output(stdout.Bytes())
	suite.output(stderr.Bytes())
	var r reconcile.Report
	_ = json.Unmarshal(stdout.Bytes(), &r)
	return code, r, stderr.String()
}

// TestHungServersTimeOut: against a server of each kind that accepts
// connections and never answers, every attempt ends at the configured
// connect or request timeout (not whenever the OS gives up), and the run
// fails naming the target once the wait is over.
func TestHungServersTimeOut(t *testing.T) {
	// Every entry's credential is secret "a": BOOTSTRAP_TEST_HUNG_A.
	prefix := "BOOTSTRAP_TEST_HUNG_"
	t.Setenv(prefix+"A", "not-a-real-password")
	// minio-go retries a request three times itself (buckets.options), so
	// one of its attempts takes about 4 s against a silent server.
	for _, c := range []struct {
		target, entry string
		wait          int
	}{
		{"postgres/hung", "postgres:\n  - {name: hung, host: %s, port: %s, sslmode: disable, admin: {password: {secret: a}}}", 4},
		{"redis/hung", "redis:\n  - {name: hung, address: \"%s:%s\", password: {secret: a}}", 4},
		{"minio/hung", "minio:\n  - {name: hung, endpoint: \"%s:%s\", accessKey: {secret: a}, secretKey: {secret: a}, buckets: [{name: hung-bucket}]}", 10},
		{"rabbitmq/hung", "rabbitmq:\n  - {name: hung, host: %s, port: %s, managementPort: %s, user: admin, password: {secret: a}, vhosts: [{name: v}]}", 4},
	} {
		t.Run(c.target, func(t *testing.T) {
			host, port, _ := net.SplitHostPort(blackHole(t))
			args := []any{host, port}
			if strings.Count(c.entry, "%s") == 3 {
				args = append(args, port)
			}
			cfg := fmt.Sprintf("version: 1\ndefaults: {waitTimeout: %ds, timeouts: {connect: 1s, request: 1s}}\nsecrets:\n  source: {type: env, env: {prefix: %s}}\n", c.wait, prefix) +
				fmt.Sprintf(c.entry, args...) + "\n"
			start := time.Now()
			code, r, stderr := runConfig(t, 60*time.Second, cfg, "plan")
			if code != exitFailed {
				t.Fatalf("exit %d, want 1:\n%s", code, stderr)
			}
			var named bool
			for _, ch := range r.Changes {
				named = named || ch.Status == reconcile.Failed && strings.HasPrefix(ch.Resource, c.target)
			}
			if !named {
				t.Errorf("the report names no failed resource of %s: %+v\n%s", c.target, r.Changes, stderr)
			}
			// Each attempt ends at its own connect or request timeouts (1 s),
			// so several fit in the wait; without them the first would hang
			// until the wait ran out.
			attempts := strings.Count(stderr, `msg="waiting for service" target=`+c.target)
			if attempts < 2 {
				t.Errorf("%d attempts within the %ds wait: an attempt was not bounded by the 1s timeouts:\n%s", attempts, c.wait, stderr)
			}
			t.Logf("%s: %d attempts, failed after %s", c.target, attempts, time.Since(start).Round(100*time.Millisecond))
		})
	}
}

// TestLockTimeout: a statement that waits for a lock another session holds
// is cancelled after timeouts.lock, naming what it was doing; nothing hangs.
func TestLockTimeout(t *testing.T) {
	pg := testenv.Postgres(t, "health")
	ctx := context.Background()
	admin := pg.Admin(t, "postgres")
	role := testenv.Unique("locked_")
	if _, err := admin.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" NOLOGIN CONNECTION LIMIT 1"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c := pg.Admin(t, "postgres")
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP ROLE IF EXISTS "+pgx.Identifier{role}.Sanitize())
	})
	// Another session holds the role's row until the test ends.
	holder := pg.Admin(t, "postgres")
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "ALTER ROLE "+pgx.Identifier{role}.Sanitize()+" CONNECTION LIMIT 2"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()); holder.Close(context.Background()) })

	t.Setenv("BOOTSTRAP_TEST_LOCK_A", pg.Password)
	cfg := fmt.Sprintf(`version: 1
defaults: {waitTimeout: 2s, timeouts: {lock: 1s}}
secrets:
  source: {type: env, env: {prefix: BOOTSTRAP_TEST_LOCK_}}
postgres:
  - name: health
    host: %s
    port: %d
    sslmode: disable
    admin: {user: %s, password: {secret: a}}
    roles:
      - {name: %s, login: false, connectionLimit: 7}
`, pg.Host, pg.Port, pg.User, role)
	code, r, stderr := runConfig(t, 60*time.Second, cfg, "apply")
	if code != exitFailed {
		t.Fatalf("exit %d, want 1:\n%s", code, stderr)
	}
	want := "postgres/health/role/" + role
	var found bool
	for _, c := range r.Changes {
		if c.Resource == want && c.Status == reconcile.Failed && strings.Contains(c.Error, "lock timeout") {
			found = true
		}
	}
	if !found {
		t.Errorf("no failed %s naming the lock timeout in the report: %+v\n%s", want, r.Changes, stderr)
	}
}
