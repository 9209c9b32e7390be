package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/health-data-ai/bootstrap/internal/benchtest"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// BenchmarkPostgres runs the binary on N login roles with passwords and N
// databases they own, N = 10, 100 and 1,000, against its baseline in the
// same iteration: `psql -f` of the DDL a person would write for the same
// state (plaintext passwords, which the server hashes with the same 4096
// SCRAM rounds bootstrap spends client-side; statement logging off, as
// bootstrap turns it off around passwords). The two alternate which goes
// first, each on names of its own, dropped untimed afterwards.
//
// Reported per size: the cold apply, the no-op re-run and psql
// (x-psql = cold/psql, x-cold = no-op/cold), the cold apply per database
// (with its owner role) and the binary's peak RSS. The sizes 100 and
// 1,000 run again with every database declared strategy: file_copy (the
// baseline keeps the server's default, as a person's DDL would).
func BenchmarkPostgres(b *testing.B) {
	pg := testenv.Postgres(b, "health")
	psql, err := exec.LookPath("psql")
	if err != nil {
		testenv.Missing(b, "psql")
	}
	bin := benchtest.Build(b, ".")
	for _, size := range []struct {
		n        int
		strategy string
	}{{10, ""}, {100, ""}, {1000, ""}, {100, "file_copy"}, {1000, "file_copy"}} {
		n, name := size.n, "dbs="+strconv.Itoa(size.n)
		if size.strategy != "" {
			name += ",strategy=" + size.strategy
		}
		b.Run(name, func(b *testing.B) {
			var apply benchtest.Applies
			var base benchtest.Series
			ours := func() {
				prefix := testenv.Unique("bo")
				defer dropPrefix(b, pg, prefix)
				env := append(os.Environ(), "BENCH_ADMIN="+pg.Password, "BENCH_ROLE=pw-"+prefix)
				apply.Measure(b, bin, env, postgresConfig(pg, prefix, n, size.strategy))
			}
			theirs := func() {
				prefix := testenv.Unique("bp")
				defer dropPrefix(b, pg, prefix)
				base.AddMs(runPsql(b, pg, psql, psqlScript(b, prefix, n)))
			}
			i := 0
			for b.Loop() {
				if i%2 == 0 {
					ours()
					theirs()
				} else {
					theirs()
					ours()
				}
				i++
			}
			apply.Report(b, n)
			base.Report(b, "psql-ms")
			benchtest.Ratio(b, "x-psql", apply.Cold, base)
		})
	}
}

func postgresConfig(pg testenv.PG, prefix string, n int, strategy string) string {
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "version: 1\nsecrets: {source: {type: env, env: {prefix: BENCH_}}}\npostgres:\n  - name: health\n    host: %s\n    port: %d\n    sslmode: disable\n    admin: {password: {secret: admin}}\n    roles:\n", pg.Host, pg.Port)
	for j := range n {
		fmt.Fprintf(&cfg, "      - {name: %s_r%d, password: {secret: role}}\n", prefix, j)
	}
	cfg.WriteString("    databases:\n")
	for j := range n {
		fmt.Fprintf(&cfg, "      - {name: %s_d%d, owner: %s_r%d, strategy: %q}\n", prefix, j, prefix, j, strategy)
	}
	return cfg.String()
}

// psqlScript writes the baseline's DDL for n roles and databases.
func psqlScript(b *testing.B, prefix string, n int) string {
	var sql strings.Builder
	sql.WriteString("SET log_statement = 'none';\nSET password_encryption = 'scram-sha-256';\n")
	for j := range n {
		fmt.Fprintf(&sql, "CREATE ROLE %s_r%d LOGIN PASSWORD 'pw-%s';\n", prefix, j, prefix)
	}
	for j := range n {
		fmt.Fprintf(&sql, "CREATE DATABASE %s_d%d OWNER %s_r%d;\n", prefix, j, prefix, j)
	}
	f := filepath.Join(b.TempDir(), "baseline.sql")
	if err := os.WriteFile(f, []byte(sql.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	return f
}

// runPsql times `psql -f script`; the password reaches psql through its
// environment, never argv.
func runPsql(b *testing.B, pg testenv.PG, psql, script string) (d time.Duration) {
	b.Helper()
	cmd := exec.Command(psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", pg.Host, "-p", strconv.Itoa(pg.Port), "-U", pg.User, "-d", "postgres", "-f", script)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+pg.Password, "PGSSLMODE=disable")
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	d = time.Since(t0)
	if err != nil {
		b.Fatalf("psql: %v\n%s", err, out)
	}
	return d
}

// dropPrefix drops every database, then every role, whose name starts with
// prefix, over four sessions at once.
func dropPrefix(b *testing.B, pg testenv.PG, prefix string) {
	b.Helper()
	ctx := context.Background()
	c := pg.Admin(b, "postgres")
	defer c.Close(ctx)
	rows, _ := c.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE $1`, prefix+"%")
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		b.Fatal(err)
	}
	const sessions = 4
	var wg sync.WaitGroup
	errs := make([]error, sessions)
	for w := range sessions {
		wc := c
		if w > 0 {
			wc = pg.Admin(b, "postgres")
			defer wc.Close(ctx)
		}
		wg.Go(func() {
			for i := w; i < len(dbs); i += sessions {
				if _, err := wc.Exec(ctx, "DROP DATABASE "+pgx.Identifier{dbs[i]}.Sanitize()+" WITH (FORCE)"); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	rows, _ = c.Query(ctx, `SELECT rolname FROM pg_roles WHERE rolname LIKE $1`, prefix+"%")
	roles, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < len(roles); i += 100 {
		var q []string
		for _, r := range roles[i:min(i+100, len(roles))] {
			q = append(q, pgx.Identifier{r}.Sanitize())
		}
		if _, err := c.Exec(ctx, "DROP ROLE "+strings.Join(q, ", ")); err != nil {
			b.Fatal(err)
		}
	}
}
