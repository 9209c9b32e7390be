package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/health-data-ai/bootstrap/internal/benchtest"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// The benchmarks of this package run the binary as a user does, built as
// `make build` builds it, and measure its wall time and peak RSS (GNU
// time's maxrss of the binary, benchtest.Run). Each repeats once per
// b.Loop iteration (scripts/bench.sh passes -benchtime 5x or more) and
// reports min/median/max (internal/benchtest); ratios are of medians,
// against baselines measured in the same iterations.

// BenchmarkPlatform runs the binary on a six-service config like
// examples/local.yaml (unique names): a cold apply, then a no-op re-run
// (x-cold = no-op/cold). Beside them it measures what every run pays
// whatever the config: `bootstrap version` (process start and exit, and
// the RSS of the binary's start alone) and a plan of one Redis target
// (start to a first answered connection), and reports the binary's size.
//
// floor-ms is what any no-op run of this config pays whatever its code:
// process start and exit (version-ms) plus logins-ms, the time for one
// fresh client per service, all six at once, to log in and get one answer
// (pgx with SCRAM-SHA-256, go-redis AUTH and PING, the management API's
// whoami, MinIO's ListBuckets). x-floor = no-op/floor.
func BenchmarkPlatform(b *testing.B) {
	pgH, pgA := testenv.Postgres(b, "health"), testenv.Postgres(b, "auth")
	rh, ra := testenv.Redis(b, "health"), testenv.Redis(b, "auth")
	rmq, mio := testenv.RabbitMQ(b), testenv.MinIO(b)
	bin := benchtest.Build(b, ".")
	st, err := os.Stat(bin)
	if err != nil {
		b.Fatal(err)
	}
	env := append(os.Environ(),
		"BENCH_PG="+pgH.Password, "BENCH_REDIS="+rh.Password, "BENCH_RMQ="+rmq.Password,
		"BENCH_MINIO_USER="+mio.AccessKey, "BENCH_MINIO_SECRET="+mio.SecretKey, "BENCH_ROLE=role-pw-1234567890")
	var apply benchtest.Applies
	var start, version, versionRSS, logins benchtest.Series
	for b.Loop() {
		id := testenv.Unique("pf")
		f := apply.Measure(b, bin, env, platformConfig(id, pgH, pgA, rh, ra, rmq, mio))
		d, _ := benchtest.Run(b, bin, env, "plan", "-f", f, "--only", "redis/health", "--log-level", "warn")
		start.AddMs(d)
		d, r := benchtest.Run(b, bin, env, "version")
		version.AddMs(d)
		versionRSS.Add(r)
		logins.AddMs(loginAll(b, pgH, pgA, rh, ra, rmq, mio))
		cleanupPlatform(b, id, pgH, pgA, rmq, mio)
	}
	apply.Report(b, 0)
	floor := make(benchtest.Series, len(version))
	for i := range floor {
		floor[i] = version[i] + logins[i]
	}
	logins.Report(b, "logins-ms")
	floor.Report(b, "floor-ms")
	benchtest.Ratio(b, "x-floor", apply.Noop, floor)
	version.Report(b, "version-ms")
	versionRSS.Report(b, "version-rss-MiB")
	start.Report(b, "start-to-connect-ms")
	b.ReportMetric(float64(st.Size())/(1<<20), "binary-MiB")
}

func platformConfig(id string, pgH, pgA testenv.PG, rh, ra testenv.RedisServer, rmq testenv.RabbitServer, mio testenv.MinIOServer) string {
	return fmt.Sprintf(`version: 1
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
}

// cleanupPlatform removes what BenchmarkPlatform created.
func cleanupPlatform(b *testing.B, id string, pgH, pgA testenv.PG, rmq testenv.RabbitServer, mio testenv.MinIOServer) {
	b.Helper()
	for _, pg := range []testenv.PG{pgH, pgA} {
		ctx := context.Background()
		c := pg.Admin(b, "postgres")
		defer c.Close(ctx)
		for _, db := range []string{id + "_db", id + "_authdb"} {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
		}
		for _, r := range []string{id + "_api", id + "_ro", id + "_auth"} {
			_, _ = c.Exec(ctx, "DROP OWNED BY "+r)
			_, _ = c.Exec(ctx, "DROP ROLE IF EXISTS "+r)
		}
	}
	rabbitDelete(rmq, "/vhosts/"+id)
	rabbitDelete(rmq, "/users/"+id+"-etl")
	removeBuckets(b, mio, id+"-raw", id+"-pub")
}

// rabbitDelete sends DELETE /api<path> to the management API.
func rabbitDelete(rmq testenv.RabbitServer, path string) {
	r, _ := http.NewRequest(http.MethodDelete, fmt.Sprintf("http://%s:%d/api%s", rmq.Host, rmq.ManagementPort, path), nil)
	r.SetBasicAuth(rmq.User, rmq.Password)
	if resp, err := http.DefaultClient.Do(r); err == nil {
		resp.Body.Close()
	}
}

// removeBuckets removes the (empty) buckets, eight at a time.
func removeBuckets(b *testing.B, mio testenv.MinIOServer, names ...string) {
	b.Helper()
	if err := benchtest.NewS3Client(mio.Endpoint, mio.AccessKey, mio.SecretKey).RemoveBuckets(names); err != nil {
		b.Fatalf("remove buckets: %v", err)
	}
}

// loginAll logs in to the six services at once, one fresh client each, and
// returns the time until the last has answered.
func loginAll(b *testing.B, pgH, pgA testenv.PG, rh, ra testenv.RedisServer, rmq testenv.RabbitServer, mio testenv.MinIOServer) time.Duration {
	b.Helper()
	ctx := context.Background()
	pg := func(p testenv.PG) func() error {
		return func() error {
			c, err := p.Connect(b, p.User, p.Password, "postgres")
			if err != nil {
				return err
			}
			return c.Ping(ctx)
		}
	}
	redis := func(r testenv.RedisServer) func() error {
		return func() error {
			c := goredis.NewClient(&goredis.Options{Addr: r.Addr, Password: r.Password, DisableIdentity: true})
			defer c.Close()
			return c.Ping(ctx).Err()
		}
	}
	rabbit := func() error {
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s:%d/api/whoami", rmq.Host, rmq.ManagementPort), nil)
		if err != nil {
			return err
		}
		req.SetBasicAuth(rmq.User, rmq.Password)
		resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("whoami: %s", resp.Status)
		}
		return nil
	}
	minio := func() error {
		return benchtest.NewS3Client(mio.Endpoint, mio.AccessKey, mio.SecretKey).Do(http.MethodGet, "/")
	}
	var g errgroup.Group
	t0 := time.Now()
	for _, f := range []func() error{pg(pgH), pg(pgA), redis(rh), redis(ra), rabbit, minio} {
		g.Go(f)
	}
	if err := g.Wait(); err != nil {
		b.Fatalf("login floor: %v", err)
	}
	return time.Since(t0)
}
