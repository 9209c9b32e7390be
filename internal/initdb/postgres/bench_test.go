package postgres

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/health-data-ai/bootstrap/internal/benchtest"
	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

const benchN = 100

// BenchmarkApply100 measures, in process (through the engine, with the
// default concurrency, without the binary's start), a cold apply of 100 login
// roles with passwords and 100 databases owned by them against `psql -f`
// of the DDL a person would write for the same state (plaintext passwords,
// which the server hashes with the same 4096 SCRAM rounds we spend
// client-side), and a no-op re-run. Each iteration alternates which side
// goes first, so load drift and the checkpoints left by the previous
// cleanup hit both alike. Reports x-psql = ours/psql and x-cold =
// no-op/cold, of medians. Everything it creates is dropped.
func BenchmarkApply100(b *testing.B) {
	pg := testenv.Postgres(b, "health")
	psql, err := exec.LookPath("psql")
	if err != nil {
		testenv.Missing(b, "psql")
	}
	ctx := context.Background()
	var ours, base, noop benchtest.Series
	i := 0
	for b.Loop() {
		var o, n, p time.Duration
		if i%2 == 0 {
			o, n = benchOurs(b, ctx, pg)
			p = benchPsql(b, ctx, pg, psql)
		} else {
			p = benchPsql(b, ctx, pg, psql)
			o, n = benchOurs(b, ctx, pg)
		}
		i++
		ours.AddMs(o)
		base.AddMs(p)
		noop.AddMs(n)
	}
	ours.Report(b, "cold-ms")
	base.Report(b, "psql-ms")
	noop.Report(b, "noop-ms")
	benchtest.Ratio(b, "x-psql", ours, base)
	benchtest.Ratio(b, "x-cold", noop, ours)
}

// benchOurs times a cold apply and a no-op re-run through the engine, as
// the binary runs them, then drops what the apply made.
func benchOurs(b *testing.B, ctx context.Context, pg testenv.PG) (cold, noop time.Duration) {
	cfg, creds, roles, dbs := benchConfig(pg)
	defer benchCleanup(b, pg, roles, dbs)
	apply := func() (time.Duration, reconcile.Summary) {
		start := time.Now()
		var rep reconcile.Report
		rep.Add(reconcile.Run(ctx, []reconcile.Target{New(cfg, creds, nil)}, reconcile.Options{Mode: reconcile.ModeApply, Concurrency: config.DefaultConcurrency})...)
		d := time.Since(start)
		if !rep.OK {
			b.Fatalf("apply failed: %v", rep.Failed())
		}
		return d, rep.Summary
	}
	cold, s := apply()
	if s.Create != 2*benchN {
		b.Fatalf("cold apply made %d creates, want %d", s.Create, 2*benchN)
	}
	noop, s = apply()
	if n := s.Create + s.Update + s.Delete; n != 0 {
		b.Fatalf("re-run made %d changes", n)
	}
	return cold, noop
}

// benchPsql times psql -f of the baseline DDL, then drops what it made.
func benchPsql(b *testing.B, ctx context.Context, pg testenv.PG, psql string) time.Duration {
	script, roles, dbs := psqlScript(b, pg)
	defer benchCleanup(b, pg, roles, dbs)
	start := time.Now()
	cmd := exec.CommandContext(ctx, psql, "-X", "-q", "-v", "ON_ERROR_STOP=1",
		"-h", pg.Host, "-p", strconv.Itoa(pg.Port), "-U", pg.User, "-d", "postgres", "-f", script)
	// The password reaches psql through its environment, never argv.
	cmd.Env = append(os.Environ(), "PGPASSWORD="+pg.Password, "PGSSLMODE=disable")
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("psql: %v: %s", err, out)
	}
	return d
}

func benchConfig(pg testenv.PG) (config.Postgres, credential.Resolved, []string, []string) {
	prefix := testenv.Unique("bn")
	creds := credential.Resolved{"pg-admin": credential.New(pg.Password)}
	cfg := config.Postgres{
		Name: "health", Host: pg.Host, Port: pg.Port, SSLMode: "disable",
		Admin: config.PGAdmin{User: pg.User, Password: config.SecretRef{Secret: "pg-admin"}, Database: "postgres"},
	}
	var roles, dbs []string
	for i := range benchN {
		r := fmt.Sprintf("%s_r%03d", prefix, i)
		d := fmt.Sprintf("%s_d%03d", prefix, i)
		creds["pw-"+r] = credential.New(randomPassword())
		cfg.Roles = append(cfg.Roles, config.PGRole{Name: r, Password: &config.SecretRef{Secret: "pw-" + r}})
		cfg.Databases = append(cfg.Databases, config.PGDatabase{Name: d, Owner: r})
		roles = append(roles, r)
		dbs = append(dbs, d)
	}
	return cfg, creds, roles, dbs
}

// psqlScript writes the baseline DDL. It turns statement logging off first
// so the benchmark's plaintext passwords stay out of the server log.
func psqlScript(b *testing.B, pg testenv.PG) (string, []string, []string) {
	prefix := testenv.Unique("bp")
	var sb strings.Builder
	sb.WriteString("SET log_statement = 'none';\nSET password_encryption = 'scram-sha-256';\n")
	var roles, dbs []string
	for i := range benchN {
		r := fmt.Sprintf("%s_r%03d", prefix, i)
		fmt.Fprintf(&sb, "CREATE ROLE %s LOGIN PASSWORD %s;\n", ident(r), literal(randomPassword()))
		roles = append(roles, r)
	}
	for i := range benchN {
		d := fmt.Sprintf("%s_d%03d", prefix, i)
		fmt.Fprintf(&sb, "CREATE DATABASE %s OWNER %s;\n", ident(d), ident(roles[i]))
		dbs = append(dbs, d)
	}
	path := filepath.Join(b.TempDir(), "baseline.sql")
	if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	return path, roles, dbs
}

// benchCleanup drops the databases, then the roles, over one session it
// closes (the test's own helpers keep theirs until the benchmark ends).
func benchCleanup(b testing.TB, pg testenv.PG, roles, dbs []string) {
	ctx := context.Background()
	c := adminConn(b, pg, "postgres")
	defer c.Close(ctx)
	for _, d := range dbs {
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(d)+" WITH (FORCE)"); err != nil {
			b.Errorf("cleanup: drop database %s: %v", d, err)
		}
	}
	for _, r := range roles {
		if _, err := c.Exec(ctx, "DROP ROLE IF EXISTS "+ident(r)); err != nil {
			b.Errorf("cleanup: drop role %s: %v", r, err)
		}
	}
}
