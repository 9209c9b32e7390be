// Package e2e installs the health-platform chart for real on the test
// environment's one-node Kubernetes (scripts/testenv.d/node.sh): the hooks
// run as pods from the image cmd/image builds here, under the chart's own
// ServiceAccounts, RBAC and securityContext, against the test environment's
// PostgreSQL, Redis, MinIO and RabbitMQ. The Bitnami images cannot be had
// here, so the infrastructure subchart is disabled and each bootstrap entry
// names its server as `external`; the pods run on the node's network, where
// those servers listen on loopback (no Service, ClusterIP or kube-proxy is
// needed to reach them, and nothing on the machine is rewritten for it).
//
// `make e2e` runs it; `make test` does too under BOOTSTRAP_TEST_REQUIRE=1.
package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v3"

	"github.com/health-data-ai/bootstrap/internal/secrets/sink/sinktest"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

const release = "hp"

// The hooks' and the daemon's ServiceAccounts, as the chart names them.
var (
	hookSA  = release + "-bootstrap"
	serveSA = release + "-bootstrap-serve"
)

// platform is what this run declares: unique names on the shared servers.
type platform struct {
	id                        string
	role, db, schema          string
	bucket, bucket2           string
	vhost, user               string
	exchange, queue           string
	redisName, pgName, s3Name string
}

func newPlatform() platform {
	id := strings.TrimPrefix(testenv.Unique("e"), "e")
	return platform{
		id:   id,
		role: "e2e_" + id + "_api", db: "e2e_" + id + "_db", schema: "ingest",
		bucket: "e2e-" + id + "-raw", bucket2: "e2e-" + id + "-extra",
		vhost: "e2e-" + id, user: "e2e-" + id + "-etl",
		exchange: "events", queue: "ingest",
		pgName: "e2epg", redisName: "e2eredis", s3Name: "e2es3",
	}
}

// values are the chart values of the run: the chart's defaults with the
// infrastructure off, every bootstrap entry external, the file source on a
// host folder (the pods run as 65532 and keep generated credentials there
// between hook runs), Sealed Secrets through the controller's certificate.
func (p platform) values(t *testing.T, img, srcDir, certURL string, extra map[string]any) []byte {
	t.Helper()
	pg := testenv.Postgres(t, "health")
	rd := testenv.Redis(t, "health")
	mq := testenv.RabbitMQ(t)
	s3 := testenv.MinIO(t)
	s3Host, s3PortS, _ := net.SplitHostPort(s3.Endpoint)
	s3Port, err := strconv.Atoi(s3PortS)
	if err != nil {
		t.Fatalf("MinIO endpoint %q: %v", s3.Endpoint, err)
	}
	rdHost, _, _ := net.SplitHostPort(rd.Addr)
	repo, tag, _ := strings.Cut(img, ":")
	// In-cluster clients find the API server through the kubernetes
	// Service's ClusterIP, which needs kube-proxy; on the node's network
	// the API server itself answers on loopback.
	api, _ := url.Parse(testenv.Kube(t).Server)
	buckets := []any{map[string]any{"name": p.bucket, "versioning": true}}
	if extra["bucket2"] == true {
		buckets = append(buckets, map[string]any{"name": p.bucket2})
	}
	v := map[string]any{
		"infrastructure": map[string]any{"enabled": false},
		"bootstrap": map[string]any{
			"image":       map[string]any{"repository": repo, "tag": tag, "pullPolicy": "Never"},
			"hostNetwork": true,
			"extraEnv": []any{
				map[string]any{"name": "KUBERNETES_SERVICE_HOST", "value": api.Hostname()},
				map[string]any{"name": "KUBERNETES_SERVICE_PORT", "value": api.Port()},
			},
			"backoffLimit":      0,
			"secretsPhase":      map[string]any{"activeDeadlineSeconds": 300},
			"servicesPhase":     map[string]any{"activeDeadlineSeconds": 300},
			"test":              map[string]any{"activeDeadlineSeconds": 120},
			"extraVolumes":      []any{map[string]any{"name": "source", "hostPath": map[string]any{"path": srcDir, "type": "Directory"}}},
			"extraVolumeMounts": []any{map[string]any{"name": "source", "mountPath": "/var/run/bootstrap-source"}},
			"defaults":          map[string]any{"waitTimeout": "1m", "concurrency": 6},
			"secrets": map[string]any{
				"source": map[string]any{"type": "file", "file": map[string]any{"dir": "/var/run/bootstrap-source"}, "ocivault": nil},
				"output": map[string]any{"type": "sealed", "target": "cluster",
					"sealing": map[string]any{"cert": certURL}},
				"extraKubernetesSecrets": []any{map[string]any{"name": "e2e-app", "data": map[string]any{
					"pg-password": "pg-app", "rabbitmq-password": "rabbitmq-app"}}},
			},
			"postgres": map[string]any{
				"postgresql-health": nil, "postgresql-auth": nil,
				"e2e-pg": map[string]any{
					"name": p.pgName, "external": map[string]any{"host": pg.Host, "port": pg.Port},
					"adminPassword": "pg-admin", "sslmode": "disable",
					"roles": []any{map[string]any{"name": p.role, "password": map[string]any{"secret": "pg-app"}, "login": true}},
					"databases": []any{map[string]any{"name": p.db, "owner": p.role,
						"schemas": []any{map[string]any{"name": p.schema, "owner": p.role}}}},
				},
			},
			"redis": map[string]any{
				"redis-health": nil, "redis-auth": nil,
				"e2e-redis": map[string]any{"name": p.redisName, "external": map[string]any{"host": rdHost, "port": rd.Port}, "password": "redis-admin"},
			},
			"minio": map[string]any{
				"minio": nil,
				"e2e-minio": map[string]any{"name": p.s3Name, "external": map[string]any{"host": s3Host, "port": s3Port},
					"rootUser": "minio-user", "rootPassword": "minio-password", "region": "us-east-1", "buckets": buckets},
			},
			"rabbitmq": map[string]any{
				"rabbitmq": nil,
				"e2e-rabbitmq": map[string]any{
					"name":     "e2emq",
					"external": map[string]any{"host": mq.Host, "port": mq.Port, "managementPort": mq.ManagementPort, "user": mq.User},
					"password": "rabbitmq-admin",
					"vhosts":   []any{map[string]any{"name": p.vhost}},
					"users": []any{map[string]any{"name": p.user, "password": map[string]any{"secret": "rabbitmq-app"},
						"permissions": []any{map[string]any{"vhost": p.vhost, "configure": ".*", "write": ".*", "read": ".*"}}}},
					"exchanges": []any{map[string]any{"vhost": p.vhost, "name": p.exchange, "type": "topic", "durable": true}},
					"queues":    []any{map[string]any{"vhost": p.vhost, "name": p.queue, "durable": true}},
					"bindings": []any{map[string]any{"vhost": p.vhost, "source": p.exchange, "destination": p.queue,
						"destinationType": "queue", "routingKey": "#"}},
				},
			},
		},
	}
	if port, ok := extra["serve"].(int); ok {
		asMap(v["bootstrap"])["serve"] = map[string]any{"enabled": true, "interval": "3s", "port": port,
			"serviceMonitor": map[string]any{"enabled": false}}
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sourceDir is the file source: the servers' admin credentials, in a folder
// the pods (65532) own, outside /var and /run (which the node's mount
// namespace replaces).
func sourceDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "e2e-source-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pg := testenv.Postgres(t, "health")
	rd := testenv.Redis(t, "health")
	mq := testenv.RabbitMQ(t)
	s3 := testenv.MinIO(t)
	for name, val := range map[string]string{
		"pg-admin": pg.Password, "redis-admin": rd.Password, "rabbitmq-admin": mq.Password,
		"minio-user": s3.AccessKey, "minio-password": s3.SecretKey,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(val), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(dir, name), 65532, 65532); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65532, 65532); err != nil {
		t.Fatal(err)
	}
	return dir
}

// credentials are every value in the source folder now: the admin
// passwords and what the hooks generated.
func sourceCredentials(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err == nil && len(bytes.TrimSpace(b)) >= 8 {
			out[e.Name()] = string(bytes.TrimSpace(b))
		}
	}
	return out
}

func TestHelmInstallOnNode(t *testing.T) {
	c := newCluster(t)
	img := bootstrapImage(t)
	certURL := sinktest.Controller(t, c.kubeconfig, c.ns)
	src := sourceDir(t)
	p := newPlatform()
	t.Cleanup(func() { p.cleanup(t) })
	chart, _ := filepath.Abs(filepath.Join("..", "charts", "health-platform"))
	writeValues := func(extra map[string]any) string {
		f := filepath.Join(t.TempDir(), "values.yaml")
		if err := os.WriteFile(f, p.values(t, img, src, certURL, extra), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	base := writeValues(nil)
	// Pod logs, gathered after every step: the kubelet removes a deleted
	// pod's logs, and hooks replace their pods.
	logs := map[string][]byte{}
	gather := func() {
		for k, v := range podLogs(t, c.ns) {
			logs[k] = v
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			for k, v := range logs {
				t.Logf("--- %s\n%s", k, lastLines(string(v), 15))
			}
		}
	})
	// A Secret made by hand before bootstrap managed it: the secrets Job
	// takes it over (patch: the managed annotation) so the controller may
	// replace its data with the sealed one.
	c.mustKubectl("create", "secret", "generic", "e2e-app", "--from-literal=pg-password=stale")

	// Each step needs the one before it: the first failure ends the run
	// (after the log scan, which always runs).
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}
	defer scanLogs(t, gather, logs, src)

	step("install", func(t *testing.T) {
		defer gather()
		out, err := c.helmCmd("install", release, chart, "-f", base, "--wait", "--wait-for-jobs", "--timeout", "6m")
		if err != nil {
			t.Fatalf("helm install: %v", err)
		}
		t.Log(lastLines(out, 3))
		// The secrets Job ran as a pod under the chart's ServiceAccount.
		for _, job := range []string{release + "-bootstrap-secrets", release + "-bootstrap-services"} {
			pods := c.items("pods", "job-name="+job)
			if len(pods) == 0 {
				t.Fatalf("no pod of job %s", job)
			}
			if sa := str(dig(pods[0], "spec", "serviceAccountName")); sa != hookSA {
				t.Errorf("job %s ran as %q, want %s", job, sa, hookSA)
			}
			if ph := str(dig(pods[0], "status", "phase")); ph != "Succeeded" {
				t.Errorf("job %s pod %s", job, ph)
			}
		}
		// SealedSecrets written, and unsealed by the controller.
		ss := c.get("sealedsecret", "e2e-app")
		if str(dig(ss, "kind")) != "SealedSecret" {
			t.Fatalf("no SealedSecret e2e-app: %v", ss)
		}
		creds := sourceCredentials(t, src)
		waitFor(t, time.Minute, "the controller unseals e2e-app", func() bool {
			s, err := c.kubectl("get", "secret", "e2e-app", "-o", "jsonpath={.data.pg-password}")
			return err == nil && s == base64.StdEncoding.EncodeToString([]byte(creds["pg-app"]))
		})
		// What the post-install Job made, on the servers.
		p.checkPostgres(t, creds["pg-app"])
		p.checkBucket(t, p.bucket)
		p.checkQueue(t)
	})

	step("test", func(t *testing.T) {
		defer gather()
		out, err := c.helmCmd("test", release, "--logs", "--timeout", "3m")
		if err != nil {
			t.Fatalf("helm test: %v", err)
		}
		if !strings.Contains(out, "Verify ok") {
			t.Errorf("helm test --logs: no \"Verify ok\":\n%s", out)
		}
		p.dropDatabase(t)
		out, err = c.helmCmd("test", release, "--logs", "--timeout", "3m")
		if err == nil || !strings.Contains(out+err.Error(), "database/"+p.db) {
			t.Errorf("helm test after dropping %s: %v, want a failure naming it:\n%s", p.db, err, out)
		}
	})

	step("rerun job", func(t *testing.T) {
		defer gather()
		// As NOTES.txt says: kubectl create job --from=cronjob/<release>-bootstrap.
		notes, err := c.helmCmd("get", "notes", release)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(notes, "--from=cronjob/"+release+"-bootstrap ") {
			t.Fatalf("NOTES.txt does not give the re-run command:\n%s", notes)
		}
		job := release + "-bootstrap-manual-" + p.id
		c.mustKubectl("create", "job", "--from=cronjob/"+release+"-bootstrap", job)
		c.waitJob(job, 3*time.Minute)
		logs := c.jobLogs(job)
		if !strings.Contains(logs, "postgres/"+p.pgName+"/database/"+p.db) {
			t.Errorf("the re-run did not recreate %s:\n%s", p.db, logs)
		}
		p.checkPostgres(t, sourceCredentials(t, src)["pg-app"])
	})

	step("upgrade", func(t *testing.T) {
		defer gather()
		if _, err := c.helmCmd("upgrade", release, chart, "-f", base, "--wait", "--wait-for-jobs", "--timeout", "6m"); err != nil {
			t.Fatalf("helm upgrade (same values): %v", err)
		}
		for _, job := range []string{release + "-bootstrap-secrets", release + "-bootstrap-services"} {
			if logs := c.jobLogs(job); !strings.Contains(logs, "Apply complete: 0 created, 0 updated, 0 deleted") {
				t.Errorf("upgrade with the same values: job %s changed something:\n%s", job, logs)
			}
		}
		more := writeValues(map[string]any{"bucket2": true})
		if _, err := c.helmCmd("upgrade", release, chart, "-f", more, "--wait", "--wait-for-jobs", "--timeout", "6m"); err != nil {
			t.Fatalf("helm upgrade (one more bucket): %v", err)
		}
		logs := c.jobLogs(release + "-bootstrap-services")
		if !strings.Contains(logs, "Apply complete: 1 created, 0 updated, 0 deleted") || !strings.Contains(logs, "minio/"+p.s3Name+"/bucket/"+p.bucket2) {
			t.Errorf("upgrade with one more bucket: want exactly that change:\n%s", logs)
		}
		p.checkBucket(t, p.bucket2)
		base = more
	})

	step("serve", func(t *testing.T) {
		defer gather()
		port := freePort(t)
		vals := writeValues(map[string]any{"bucket2": true, "serve": port})
		if _, err := c.helmCmd("upgrade", release, chart, "-f", vals, "--wait", "--wait-for-jobs", "--timeout", "6m"); err != nil {
			t.Fatalf("helm upgrade (serve on): %v", err)
		}
		dep := release + "-bootstrap-serve"
		if _, err := c.kubectl("rollout", "status", "deployment/"+dep, "--timeout=3m"); err != nil {
			t.Fatal(err)
		}
		p.dropDatabase(t)
		dropped := time.Now()
		waitFor(t, 30*time.Second, "serve recreates "+p.db, func() bool { return p.hasDatabase(t) })
		t.Logf("serve healed the dropped database in %s (interval 3s)", time.Since(dropped).Round(100*time.Millisecond))
		// /metrics at the address the Service's EndpointSlice gives.
		slices := c.items("endpointslices", "kubernetes.io/service-name="+dep)
		var url string
		for _, s := range slices {
			for _, ep := range list(s["endpoints"]) {
				for _, a := range list(dig(ep, "addresses")) {
					for _, pt := range list(s["ports"]) {
						url = fmt.Sprintf("http://%s/metrics", net.JoinHostPort(str(a), str(dig(pt, "port"))))
					}
				}
			}
		}
		if url == "" {
			t.Fatalf("no endpoint for Service %s", dep)
		}
		body := httpGet(t, url)
		if !strings.Contains(body, "bootstrap_reconciles_total") {
			t.Errorf("%s: no bootstrap_reconciles_total", url)
		}
		base = vals

		// A password rotated in the source reaches the role and, sealed,
		// the Secret within a few intervals.
		rotated := testenv.Unique("rotated") + "Xy9"
		f := filepath.Join(src, "pg-app")
		if err := os.WriteFile(f, []byte(rotated), 0o600); err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, "the rotated password reaches Secret e2e-app", func() bool {
			s, err := c.kubectl("get", "secret", "e2e-app", "-o", "jsonpath={.data.pg-password}")
			return err == nil && s == base64.StdEncoding.EncodeToString([]byte(rotated))
		})
		p.checkPostgres(t, rotated)
	})

	step("rbac used as granted", func(t *testing.T) {
		defer gather()
		checkAudit(t, c, []string{hookSA, serveSA})
	})

	step("uninstall", func(t *testing.T) {
		defer gather()
		if _, err := c.helmCmd("uninstall", release, "--wait", "--timeout", "3m"); err != nil {
			t.Fatalf("helm uninstall: %v", err)
		}
		p.checkUninstalled(t, c)
	})

}

// scanLogs looks for every credential the run used (the source folder's
// values, plain and base64) in every pod log gathered.
func scanLogs(t *testing.T, gather func(), logs map[string][]byte, src string) {
	gather()
	if len(logs) == 0 {
		t.Error("no pod logs collected")
		return
	}
	creds := sourceCredentials(t, src)
	for file, body := range logs {
		for name, v := range creds {
			for _, form := range []string{v, base64.StdEncoding.EncodeToString([]byte(v)), base64.RawURLEncoding.EncodeToString([]byte(v))} {
				if bytes.Contains(body, []byte(form)) {
					t.Errorf("pod log %s holds credential %s", file, name)
				}
			}
		}
	}
	t.Logf("%d container logs scanned for %d credentials", len(logs), len(creds))
}

// checkUninstalled: nothing of the release is left (hook RBAC and ConfigMaps
// included), while the credentials (SealedSecrets and their Secrets) and
// the data stay.
func (p platform) checkUninstalled(t *testing.T, c *cluster) {
	t.Helper()
	kinds := "configmaps,secrets,serviceaccounts,roles,rolebindings,jobs,cronjobs,pods,deployments,services,sealedsecrets"
	// Deletion is asynchronous (a Job's Pods go after it): give it a minute.
	deadline := time.Now().Add(time.Minute)
	for len(c.items(kinds, "app.kubernetes.io/instance="+release)) > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Second)
	}
	for _, o := range c.items(kinds, "app.kubernetes.io/instance="+release) {
		t.Errorf("left behind: %s %s", o["kind"], dig(o, "metadata", "name"))
	}
	for _, kind := range []string{"sealedsecret", "secret"} {
		if _, err := c.kubectl("get", kind, "e2e-app"); err != nil {
			t.Errorf("uninstall deleted %s e2e-app: %v", kind, err)
		}
	}
	if !p.hasDatabase(t) {
		t.Errorf("uninstall dropped database %s", p.db)
	}
	p.checkBucket(t, p.bucket)
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", d, what)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// pgAdmin connects to the test PostgreSQL as its superuser.
func pgAdmin(t *testing.T, db string) *pgx.Conn {
	t.Helper()
	return testenv.Postgres(t, "health").Admin(t, db)
}

func (p platform) hasDatabase(t *testing.T) bool {
	t.Helper()
	conn := pgAdmin(t, "postgres")
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname = $1", p.db).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func (p platform) dropDatabase(t *testing.T) {
	t.Helper()
	conn := pgAdmin(t, "postgres")
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "DROP DATABASE "+pgx.Identifier{p.db}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}
}

// checkPostgres: the role logs in with the delivered password and owns the
// database and its schema.
func (p platform) checkPostgres(t *testing.T, password string) {
	t.Helper()
	pg := testenv.Postgres(t, "health")
	conn, err := pg.Connect(t, p.role, password, p.db)
	if err != nil {
		t.Errorf("%s cannot log in to %s: %v", p.role, p.db, err)
		return
	}
	defer conn.Close(context.Background())
	var owner string
	if err := conn.QueryRow(context.Background(), "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1", p.schema).Scan(&owner); err != nil || owner != p.role {
		t.Errorf("schema %s owner %q (%v), want %s", p.schema, owner, err, p.role)
	}
}

// cleanup removes what the run made on the shared servers.
func (p platform) cleanup(t *testing.T) {
	ctx := context.Background()
	if conn, err := testenv.Postgres(t, "health").Connect(t, "postgres", testenv.Postgres(t, "health").Password, "postgres"); err == nil {
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{p.db}.Sanitize()+" WITH (FORCE)")
		_, _ = conn.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{p.role}.Sanitize())
		conn.Close(ctx)
	}
	p.cleanupBroker(t)
	p.cleanupBuckets(t)
}
