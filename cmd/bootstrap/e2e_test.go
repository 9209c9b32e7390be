package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// world is one end-to-end test's servers, unique names and credentials.
type world struct {
	t        *testing.T
	dir      string
	prefix   string // BOOTSTRAP_SECRET_ prefix of this test
	pg       map[string]testenv.PG
	redis    map[string]testenv.RedisServer
	id       string
	secrets  map[string]string // every credential value used, for leak scans
	mu       sync.Mutex        // guards outputs: concurrent runs record at once
	outputs  bytes.Buffer      // every stdout and stderr of every run
	pgHealth string            // address the health instance is reached at
}

func newWorld(t *testing.T) *world {
	w := &world{t: t, dir: t.TempDir(), id: testenv.Unique("e2e"), secrets: map[string]string{},
		pg:    map[string]testenv.PG{"health": testenv.Postgres(t, "health"), "auth": testenv.Postgres(t, "auth")},
		redis: map[string]testenv.RedisServer{"health": testenv.Redis(t, "health"), "auth": testenv.Redis(t, "auth")},
	}
	w.prefix = "BOOTSTRAP_SECRET_" + strings.ToUpper(w.id) + "_"
	w.pgHealth = net.JoinHostPort(w.pg["health"].Host, fmt.Sprint(w.pg["health"].Port))
	w.setSecret("pg-admin", w.pg["health"].Password)
	w.setSecret("redis", w.redis["health"].Password)
	for _, r := range []string{"app", "api"} {
		w.setSecret("role-"+r, testenv.Unique("pw-"))
	}
	t.Cleanup(w.cleanup)
	return w
}

func (w *world) setSecret(name, value string) {
	w.t.Setenv(w.prefix+strings.ToUpper(strings.ReplaceAll(name, "-", "_")), value)
	w.secrets[name+"@"+value] = value
	suite.secret(value)
}

func (w *world) config(waitTimeout string) string {
	a := w.pg["auth"]
	cfg := fmt.Sprintf(`version: 1
defaults: {waitTimeout: %[1]s, concurrency: 4}
secrets:
  source: {type: env, env: {prefix: %[2]s}}
postgres:
  - name: health
    host: %[3]s
    port: %[4]s
    sslmode: disable
    admin: {password: {secret: pg-admin}}
    roles:
      - {name: %[5]s_app, password: {secret: role-app}, connectionLimit: 10}
      - {name: %[5]s_api, password: {secret: role-api}}
      - {name: %[5]s_ro, login: false}
    databases:
      - name: %[5]s_db
        owner: %[5]s_app
        extensions: [pgcrypto]
        schemas: [{name: ingest}]
        revokePublicConnect: true
    grants:
      - {role: %[5]s_ro, database: %[5]s_db, on: database, privileges: [CONNECT]}
      - {role: %[5]s_ro, database: %[5]s_db, schema: ingest, on: tables, privileges: [SELECT]}
  - name: auth
    host: %[6]s
    port: %[7]d
    sslmode: disable
    admin: {password: {secret: pg-admin}}
    roles:
      - {name: %[5]s_api, password: {secret: role-api}}
    databases:
      - {name: %[5]s_authdb, owner: %[5]s_api}
redis:
  - {name: health, address: "%[8]s", password: {secret: redis}, expect: {role: master}}
  - {name: auth, address: "%[9]s", password: {secret: redis}}
`, waitTimeout, w.prefix, strings.Split(w.pgHealth, ":")[0], strings.Split(w.pgHealth, ":")[1],
		w.id, a.Host, a.Port, w.redis["health"].Addr, w.redis["auth"].Addr)
	f := w.dir + "/bootstrap.yaml"
	if err := os.WriteFile(f, []byte(cfg), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return f
}

// run runs the CLI and returns its exit code and JSON report.
func (w *world) run(args ...string) (int, reconcile.Report) {
	w.t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append(args, "-o", "json"), &stdout, &stderr)
	w.record(stdout.Bytes(), stderr.Bytes())
	var rep reconcile.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		w.t.Fatalf("%v: report is not JSON: %v\nstdout: %s\nstderr: %s", args, err, stdout.String(), stderr.String())
	}
	if code != 0 && testing.Verbose() {
		w.t.Logf("%v exited %d; stderr:\n%s", args, code, stderr.String())
	}
	return code, rep
}

func (w *world) admin(inst string) *pgx.Conn {
	w.t.Helper()
	return w.pg[inst].Admin(w.t, "postgres")
}

func (w *world) cleanup() {
	ctx := context.Background()
	for _, inst := range []string{"health", "auth"} {
		c := w.admin(inst)
		rows, _ := c.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE $1`, w.id+"%")
		dbs, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, d := range dbs {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{d}.Sanitize()+" WITH (FORCE)")
		}
		rows, _ = c.Query(ctx, `SELECT rolname FROM pg_roles WHERE rolname LIKE $1`, w.id+"%")
		roles, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, r := range roles {
			_, _ = c.Exec(ctx, "DROP OWNED BY "+pgx.Identifier{r}.Sanitize())
			_, _ = c.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{r}.Sanitize())
		}
		c.Close(ctx)
	}
}

// record keeps outputs for this test's scan and the suite's.
func (w *world) record(outs ...[]byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, o := range outs {
		w.outputs.Write(o)
		suite.output(o)
	}
}

// leakScan fails when any credential value appears in any output of ours.
func (w *world) leakScan(extra ...string) {
	w.t.Helper()
	hay := w.outputs.String() + strings.Join(extra, "\n")
	for _, v := range w.secrets {
		if strings.Contains(hay, v) {
			w.t.Errorf("a credential value appears in the output or logs")
		}
	}
}

func summaryWrites(r reconcile.Report) int {
	return r.Summary.Create + r.Summary.Update + r.Summary.Delete
}

func find(r reconcile.Report, resource string) *reconcile.Result {
	for i := range r.Changes {
		if r.Changes[i].Resource == resource {
			return &r.Changes[i]
		}
	}
	return nil
}

// serverLogSince returns what a PostgreSQL server logged after offset.
func serverLogSince(t *testing.T, file string, offset int64) string {
	t.Helper()
	if file == "" {
		testenv.Missing(t, "PostgreSQL server log")
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

func logSize(file string) int64 {
	st, err := os.Stat(file)
	if err != nil {
		return 0
	}
	return st.Size()
}

func TestEndToEnd(t *testing.T) {
	w := newWorld(t)
	cfg := w.config("30s")
	logH, logA := w.pg["health"].LogFile, w.pg["auth"].LogFile
	offH, offA := logSize(logH), logSize(logA)

	code, rep := w.run("apply", "-f", cfg)
	if code != 0 || rep.Summary.Create == 0 {
		t.Fatalf("first apply: exit %d, %+v", code, rep.Summary)
	}

	code, rep = w.run("apply", "-f", cfg)
	if code != 0 || summaryWrites(rep) != 0 {
		t.Fatalf("second apply: exit %d, %+v", code, rep.Summary)
	}
	for _, c := range rep.Changes {
		if c.Action != reconcile.Noop && c.Action != reconcile.Check {
			t.Errorf("second apply: %s %s", c.Action, c.Resource)
		}
	}
	if code, rep = w.run("plan", "-f", cfg); code != 0 || summaryWrites(rep) != 0 {
		t.Fatalf("plan after apply: exit %d, %+v", code, rep.Summary)
	}
	if code, rep = w.run("verify", "-f", cfg); code != 0 {
		t.Fatalf("verify: exit %d, failed %v", code, rep.Failed())
	}
	for _, role := range []string{"app", "api"} {
		r := find(rep, "postgres/health/login/"+w.id+"_"+role)
		if r == nil || r.Status != reconcile.OK {
			t.Errorf("verify did not log in as %s_%s: %+v", w.id, role, r)
		}
	}

	t.Run("dropped database is drift, apply restores it", func(t *testing.T) {
		c := w.admin("health")
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP DATABASE "+w.id+"_db WITH (FORCE)"); err != nil {
			t.Fatal(err)
		}
		code, rep := w.run("verify", "-f", cfg)
		db := "postgres/health/database/" + w.id + "_db"
		if code != 1 || find(rep, db) == nil || find(rep, db).Status != reconcile.Failed {
			t.Fatalf("verify after drop: exit %d, failed %v", code, rep.Failed())
		}
		code, rep = w.run("apply", "-f", cfg)
		if code != 0 || find(rep, db).Action != reconcile.Create || find(rep, db).Status != reconcile.Applied {
			t.Fatalf("apply after drop: exit %d, %+v", code, find(rep, db))
		}
		if code, rep := w.run("verify", "-f", cfg); code != 0 {
			t.Fatalf("verify after restore: exit %d, failed %v", code, rep.Failed())
		}
	})

	t.Run("one password changed updates exactly that role", func(t *testing.T) {
		w.setSecret("role-app", testenv.Unique("pw-"))
		code, rep := w.run("apply", "-f", cfg)
		if code != 0 {
			t.Fatalf("apply: exit %d, failed %v", code, rep.Failed())
		}
		var updated []string
		for _, c := range rep.Changes {
			if c.Action == reconcile.Update || c.Action == reconcile.Create {
				updated = append(updated, c.Resource)
			}
		}
		if want := "postgres/health/role/" + w.id + "_app"; len(updated) != 1 || updated[0] != want {
			t.Fatalf("changed %v, want only %s", updated, want)
		}
		if code, rep := w.run("verify", "-f", cfg); code != 0 {
			t.Fatalf("verify with the new password: exit %d, failed %v", code, rep.Failed())
		}
	})

	t.Run("two applies at the same moment both succeed", func(t *testing.T) {
		w.setSecret("role-api", testenv.Unique("pw-"))
		c := w.admin("health")
		_, _ = c.Exec(context.Background(), "DROP DATABASE "+w.id+"_db WITH (FORCE)")
		c.Close(context.Background())
		codes, stderrs := w.applyConcurrently(cfg, 2)
		if codes[0] != 0 || codes[1] != 0 {
			t.Fatalf("concurrent applies exited %v:\n%s\n%s", codes, stderrs[0], stderrs[1])
		}
		if code, rep := w.run("verify", "-f", cfg); code != 0 {
			t.Fatalf("verify after concurrent applies: exit %d, failed %v", code, rep.Failed())
		}
	})

	t.Run("no credential in any output or server log", func(t *testing.T) {
		w.leakScan(serverLogSince(t, logH, offH), serverLogSince(t, logA, offA))
		if !strings.Contains(serverLogSince(t, logH, offH), w.id) {
			t.Fatal("server log has no statement of this test: is log_statement=all on?")
		}
	})
}

// TestWaitsForLateServer starts apply while the health PostgreSQL cannot be
// reached and lets it through two seconds later: apply must wait and succeed.
func TestWaitsForLateServer(t *testing.T) {
	w := newWorld(t)
	real := w.pgHealth
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.pgHealth = ln.Addr().String()
	ln.Close() // nothing listens here until the forwarder starts
	cfg := w.config("60s")

	go func() {
		time.Sleep(2 * time.Second)
		fwd, err := net.Listen("tcp", w.pgHealth)
		if err != nil {
			t.Errorf("forwarder: %v", err)
			return
		}
		t.Cleanup(func() { fwd.Close() })
		for {
			c, err := fwd.Accept()
			if err != nil {
				return
			}
			go forward(c, real)
		}
	}()
	start := time.Now()
	code, rep := w.run("apply", "-f", cfg, "--only", "postgres/health")
	if code != 0 {
		t.Fatalf("apply: exit %d, failed %v", code, rep.Failed())
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Fatalf("apply finished in %v, before the server was reachable", d)
	}
	if !strings.Contains(w.outputs.String(), "waiting for service") {
		t.Error("no log line says what it waits for")
	}
}

func forward(c net.Conn, to string) {
	defer c.Close()
	u, err := net.Dial("tcp", to)
	if err != nil {
		return
	}
	defer u.Close()
	go func() { _, _ = io.Copy(u, c) }()
	_, _ = io.Copy(c, u)
}

// TestWrongAdminPassword fails fast (no waiting), names the instance and
// never echoes the password.
func TestWrongAdminPassword(t *testing.T) {
	w := newWorld(t)
	w.setSecret("pg-admin", "definitely-wrong-"+w.id)
	cfg := w.config("60s")
	start := time.Now()
	code, rep := w.run("plan", "-f", cfg, "--only", "postgres/health")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v: a wrong password must not be waited on", d)
	}
	r := find(rep, "postgres/health")
	if r == nil || !strings.Contains(r.Error, "postgres") {
		t.Fatalf("no error naming the instance: %+v", rep.Changes)
	}
	w.leakScan()
}
