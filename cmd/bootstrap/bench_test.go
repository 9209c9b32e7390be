package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// BenchmarkPostgres100 measures the bootstrap binary, as a user runs it, on
// 100 login roles with passwords + 100 databases they own, against its
// baseline measured in the same run: `psql -f` of the equivalent DDL
// (passwords as plaintext, hashed by the server — the same SCRAM cost).
// It reports ours/psql (target ≤ 1.3), the no-op re-run over the cold run
// (target ≤ 0.1) and the binary's peak RSS (target < 64 MiB).
func BenchmarkPostgres100(b *testing.B) {
	pg := testenv.Postgres(b, "health")
	if _, err := exec.LookPath("psql"); err != nil {
		testenv.Missing(b, "psql")
	}
	bin := filepath.Join(b.TempDir(), "bootstrap")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	const n = 100
	var cold, noop, base time.Duration
	var rss int64
	for i := 0; i < b.N; i++ {
		// Baseline first, then ours, each on names of its own.
		basePrefix := testenv.Unique("bp")
		script := &strings.Builder{}
		for j := 0; j < n; j++ {
			fmt.Fprintf(script, "CREATE ROLE %s_r%d LOGIN PASSWORD '%s';\n", basePrefix, j, "pw-"+basePrefix)
		}
		for j := 0; j < n; j++ {
			fmt.Fprintf(script, "CREATE DATABASE %s_d%d OWNER %s_r%d;\n", basePrefix, j, basePrefix, j)
		}
		sqlFile := filepath.Join(b.TempDir(), "baseline.sql")
		if err := os.WriteFile(sqlFile, []byte(script.String()), 0o600); err != nil {
			b.Fatal(err)
		}
		psql := exec.Command("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", pg.Host, "-p", fmt.Sprint(pg.Port), "-U", pg.User, "-d", "postgres", "-f", sqlFile)
		psql.Env = append(os.Environ(), "PGPASSWORD="+pg.Password)
		t0 := time.Now()
		if out, err := psql.CombinedOutput(); err != nil {
			b.Fatalf("psql: %v\n%s", err, out)
		}
		base += time.Since(t0)
		dropPrefix(b, pg, basePrefix)

		prefix := testenv.Unique("bo")
		cfg := &strings.Builder{}
		fmt.Fprintf(cfg, "version: 1\nsecrets: {source: {type: env, env: {prefix: BENCH_}}}\npostgres:\n  - name: health\n    host: %s\n    port: %d\n    sslmode: disable\n    admin: {password: {secret: admin}}\n    roles:\n", pg.Host, pg.Port)
		for j := 0; j < n; j++ {
			fmt.Fprintf(cfg, "      - {name: %s_r%d, password: {secret: role}}\n", prefix, j)
		}
		cfg.WriteString("    databases:\n")
		for j := 0; j < n; j++ {
			fmt.Fprintf(cfg, "      - {name: %s_d%d, owner: %s_r%d}\n", prefix, j, prefix, j)
		}
		cfgFile := filepath.Join(b.TempDir(), "bench.yaml")
		if err := os.WriteFile(cfgFile, []byte(cfg.String()), 0o600); err != nil {
			b.Fatal(err)
		}
		env := append(os.Environ(), "BENCH_ADMIN="+pg.Password, "BENCH_ROLE=pw-"+prefix)
		d, r := runBinary(b, bin, env, "apply", "-f", cfgFile, "--log-level", "warn")
		cold += d
		rss = max(rss, r)
		d, r = runBinary(b, bin, env, "apply", "-f", cfgFile, "--log-level", "warn")
		noop += d
		rss = max(rss, r)
		dropPrefix(b, pg, prefix)
	}
	b.ReportMetric(float64(cold.Milliseconds())/float64(b.N), "cold-ms")
	b.ReportMetric(float64(base.Milliseconds())/float64(b.N), "psql-ms")
	b.ReportMetric(cold.Seconds()/base.Seconds(), "x-psql")
	b.ReportMetric(noop.Seconds()/cold.Seconds(), "x-cold")
	b.ReportMetric(float64(rss)/1024, "peak-rss-MiB")
	b.Logf("100 roles + 100 databases: bootstrap apply %v vs psql -f %v = %.2fx (target <= 1.3); no-op re-run %.3fx cold (target <= 0.1); peak RSS %.1f MiB (target < 64)",
		cold/time.Duration(b.N), base/time.Duration(b.N), cold.Seconds()/base.Seconds(), noop.Seconds()/cold.Seconds(), float64(rss)/1024)
}

// runBinary runs the binary and returns its wall time and peak RSS in KiB.
func runBinary(b *testing.B, bin string, env []string, args ...string) (time.Duration, int64) {
	b.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	t0 := time.Now()
	out, err := cmd.Output()
	d := time.Since(t0)
	if err != nil {
		b.Fatalf("%v: %v\n%s\n%s", args, err, out, stderr.String())
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss
	}
	return d, rss
}

func dropPrefix(b *testing.B, pg testenv.PG, prefix string) {
	b.Helper()
	ctx := context.Background()
	cc, _ := pgx.ParseConfig("")
	cc.Host, cc.Port, cc.User, cc.Password, cc.Database = pg.Host, uint16(pg.Port), pg.User, pg.Password, "postgres"
	c, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
	rows, _ := c.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE $1`, prefix+"%")
	dbs, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, d := range dbs {
		if _, err := c.Exec(ctx, "DROP DATABASE "+pgx.Identifier{d}.Sanitize()); err != nil {
			b.Fatal(err)
		}
	}
	rows, _ = c.Query(ctx, `SELECT rolname FROM pg_roles WHERE rolname LIKE $1`, prefix+"%")
	roles, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, r := range roles {
		if _, err := c.Exec(ctx, "DROP ROLE "+pgx.Identifier{r}.Sanitize()); err != nil {
			b.Fatal(err)
		}
	}
}
