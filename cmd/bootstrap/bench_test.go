package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

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
	c := pg.Admin(b, "postgres")
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

// BenchmarkPlatform runs the binary on a six-service config like
// examples/local.yaml (unique names): a cold apply, then a no-op re-run
// (target ≤ 0.1× cold), and reports the binary's size and the time from
// process start to a first answered connection (plan of one Redis target).
func BenchmarkPlatform(b *testing.B) {
	pgH, pgA := testenv.Postgres(b, "health"), testenv.Postgres(b, "auth")
	rh, ra := testenv.Redis(b, "health"), testenv.Redis(b, "auth")
	rmq, mio := testenv.RabbitMQ(b), testenv.MinIO(b)
	bin := filepath.Join(b.TempDir(), "bootstrap")
	if out, err := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	st, err := os.Stat(bin)
	if err != nil {
		b.Fatal(err)
	}
	env := append(os.Environ(),
		"BENCH_PG="+pgH.Password, "BENCH_REDIS="+rh.Password, "BENCH_RMQ="+rmq.Password,
		"BENCH_MINIO_USER="+mio.AccessKey, "BENCH_MINIO_SECRET="+mio.SecretKey, "BENCH_ROLE=role-pw-1234567890")
	var cold, noop, start time.Duration
	var rss int64
	for i := 0; i < b.N; i++ {
		id := testenv.Unique("pf")
		cfg := fmt.Sprintf(`version: 1
secrets: {source: {type: env, env: {prefix: BENCH_}}}
postgres:
  - name: health
    host: %[2]s
    port: %[3]d
    sslmode: disable
    admin: {password: {secret: pg}}
    roles: [{name: %[1]s_api, password: {secret: role}}, {name: %[1]s_ro, login: false}]
    databases: [{name: %[1]s_db, owner: %[1]s_api, extensions: [pgcrypto], schemas: [{name: ingest}]}]
    grants: [{role: %[1]s_ro, database: %[1]s_db, schema: ingest, on: tables, privileges: [SELECT]}]
  - name: auth
    host: %[4]s
    port: %[5]d
    sslmode: disable
    admin: {password: {secret: pg}}
    roles: [{name: %[1]s_auth, password: {secret: role}}]
    databases: [{name: %[1]s_authdb, owner: %[1]s_auth}]
redis:
  - {name: health, address: "%[6]s", password: {secret: redis}}
  - {name: auth, address: "%[7]s", password: {secret: redis}}
minio:
  - name: datalake
    endpoint: "%[8]s"
    accessKey: {secret: minio-user}
    secretKey: {secret: minio-secret}
    buckets:
      - {name: %[1]s-raw, versioning: true, lifecycle: [{id: tmp, prefix: tmp/, expireDays: 7}], tags: {app: health}}
      - {name: %[1]s-pub, policy: download}
rabbitmq:
  - name: events
    host: %[9]s
    port: %[10]d
    managementPort: %[11]d
    user: %[12]s
    password: {secret: rmq}
    vhosts: [{name: %[1]s}]
    users: [{name: %[1]s-etl, password: {secret: role}, permissions: [{vhost: %[1]s, configure: ".*", write: ".*", read: ".*"}]}]
    exchanges: [{vhost: %[1]s, name: events, type: topic}]
    queues: [{vhost: %[1]s, name: ingest, type: quorum}]
    bindings: [{vhost: %[1]s, source: events, destination: ingest, routingKey: "ingest.#"}]
`, id, pgH.Host, pgH.Port, pgA.Host, pgA.Port, rh.Addr, ra.Addr, mio.Endpoint, rmq.Host, rmq.Port, rmq.ManagementPort, rmq.User)
		f := filepath.Join(b.TempDir(), "platform.yaml")
		if err := os.WriteFile(f, []byte(cfg), 0o600); err != nil {
			b.Fatal(err)
		}
		d, r := runBinary(b, bin, env, "apply", "-f", f, "--log-level", "warn")
		cold += d
		rss = max(rss, r)
		d, r = runBinary(b, bin, env, "apply", "-f", f, "--log-level", "warn")
		noop += d
		rss = max(rss, r)
		d, _ = runBinary(b, bin, env, "plan", "-f", f, "--only", "redis/health", "--log-level", "warn")
		start += d
		cleanupPlatform(b, id, pgH, pgA, rmq, mio)
	}
	b.ReportMetric(float64(cold.Milliseconds())/float64(b.N), "cold-ms")
	b.ReportMetric(float64(noop.Milliseconds())/float64(b.N), "noop-ms")
	b.ReportMetric(noop.Seconds()/cold.Seconds(), "x-cold")
	b.ReportMetric(float64(rss)/1024, "peak-rss-MiB")
	b.ReportMetric(float64(st.Size())/(1<<20), "binary-MiB")
	b.ReportMetric(float64(start.Microseconds())/1000/float64(b.N), "start-to-connect-ms")
}

// cleanupPlatform removes what BenchmarkPlatform created.
func cleanupPlatform(b *testing.B, id string, pgH, pgA testenv.PG, rmq testenv.RabbitServer, mio testenv.MinIOServer) {
	b.Helper()
	for _, pg := range []testenv.PG{pgH, pgA} {
		ctx := context.Background()
		c := pg.Admin(b, "postgres")
		for _, db := range []string{id + "_db", id + "_authdb"} {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
		}
		for _, r := range []string{id + "_api", id + "_ro", id + "_auth"} {
			_, _ = c.Exec(ctx, "DROP OWNED BY "+r)
			_, _ = c.Exec(ctx, "DROP ROLE IF EXISTS "+r)
		}
	}
	req := func(method, url string) {
		r, _ := http.NewRequest(method, url, nil)
		r.SetBasicAuth(rmq.User, rmq.Password)
		if resp, err := http.DefaultClient.Do(r); err == nil {
			resp.Body.Close()
		}
	}
	mgmt := fmt.Sprintf("http://%s:%d/api", rmq.Host, rmq.ManagementPort)
	req(http.MethodDelete, mgmt+"/vhosts/"+id)
	req(http.MethodDelete, mgmt+"/users/"+id+"-etl")
	mc, err := minio.New(mio.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(mio.AccessKey, mio.SecretKey, "")})
	if err != nil {
		b.Fatal(err)
	}
	for _, bk := range []string{id + "-raw", id + "-pub"} {
		for o := range mc.ListObjects(context.Background(), bk, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
			_ = mc.RemoveObject(context.Background(), bk, o.Key, minio.RemoveObjectOptions{VersionID: o.VersionID})
		}
		_ = mc.RemoveBucket(context.Background(), bk)
	}
}
