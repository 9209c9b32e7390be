package charts

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/health-data-ai/bootstrap/internal/config"
)

func TestBootstrapConfig(t *testing.T) {
	for _, vs := range valueSets[:2] {
		t.Run(vs.name, func(t *testing.T) {
			production := vs.name == "production"
			objs := renderSet(t, namespace, vs.args)
			raw := bootstrapConfig(t, objs)
			validate(t, "bootstrap.yaml", raw)
			cfg := loadConfig(t, raw)
			v := infraValues(t, production)
			host := func(alias string) string {
				return fmt.Sprintf("infrastructure-%s.%s.svc.cluster.local", alias, namespace)
			}

			secrets := map[string]map[string]string{}
			for _, ks := range cfg.Secrets.KubernetesSecrets {
				secrets[ks.Name] = ks.Data
			}
			// wantSecret checks one Secret the chart reads: its name and the
			// source secret behind each key.
			wantSecret := func(name string, data map[string]string) {
				t.Helper()
				got, ok := secrets[name]
				if !ok {
					t.Errorf("no Kubernetes Secret %s in the bootstrap config (have %v)", name, secrets)
					return
				}
				for k, src := range data {
					if got[k] != src {
						t.Errorf("Secret %s key %s <- %q, want %q", name, k, got[k], src)
					}
				}
				delete(secrets, name)
			}
			if cfg.Secrets.Output.Namespace != namespace {
				t.Errorf("output.namespace = %q, want the release namespace", cfg.Secrets.Output.Namespace)
			}

			pgByName := map[string]config.Postgres{}
			for _, p := range cfg.Postgres {
				pgByName[p.Name] = p
			}
			for alias, inst := range map[string]string{"postgresql-health": "health", "postgresql-auth": "auth"} {
				p, ok := pgByName[inst]
				a := v[alias]
				if !ok {
					t.Errorf("no postgres/%s", inst)
					continue
				}
				if p.Host != host(alias) || str(p.Port) != str(dig(a, "primary", "service", "ports", "postgresql")) {
					t.Errorf("postgres/%s at %s:%d, want the Service %s:%v", inst, p.Host, p.Port, host(alias), dig(a, "primary", "service", "ports", "postgresql"))
				}
				if p.Admin.User != "postgres" {
					t.Errorf("postgres/%s admin %q: the Bitnami chart's superuser is postgres", inst, p.Admin.User)
				}
				tls := str(dig(a, "tls", "enabled")) == "true"
				if secure := p.SSLMode == "require" || p.SSLMode == "verify-full"; tls != secure {
					t.Errorf("postgres/%s sslmode %s with tls.enabled=%v", inst, p.SSLMode, tls)
				}
				keys := dig(a, "auth", "secretKeys")
				data := map[string]string{str(dig(keys, "adminPasswordKey")): p.Admin.Password.Secret}
				// The application role's password is in the same Secret.
				var userSecret string
				for _, r := range p.Roles {
					if r.Password != nil && r.CanLogin() {
						userSecret = r.Password.Secret
						break
					}
				}
				data[str(dig(keys, "userPasswordKey"))] = userSecret
				wantSecret(str(dig(a, "auth", "existingSecret")), data)
			}

			for _, r := range cfg.Redis {
				alias := "redis-" + r.Name
				a := v[alias]
				want := fmt.Sprintf("infrastructure-%s-master.%s.svc.cluster.local:%v", alias, namespace, dig(a, "master", "service", "ports", "redis"))
				if r.Address != want {
					t.Errorf("redis/%s at %s, want %s", r.Name, r.Address, want)
				}
				wantSecret(str(dig(a, "auth", "existingSecret")), map[string]string{str(dig(a, "auth", "existingSecretPasswordKey")): r.Password.Secret})
				// What bootstrap expects is what the chart configures.
				conf := map[string]string{}
				for _, line := range strings.Split(str(a.(map[string]any)["commonConfiguration"]), "\n") {
					if f := strings.Fields(line); len(f) == 2 {
						conf[f[0]] = f[1]
					}
				}
				if r.Expect.MaxmemoryPolicy != conf["maxmemory-policy"] {
					t.Errorf("redis/%s expects maxmemory-policy %q, the chart sets %q", r.Name, r.Expect.MaxmemoryPolicy, conf["maxmemory-policy"])
				}
				if r.Expect.Appendonly == nil || *r.Expect.Appendonly != (conf["appendonly"] == "yes") {
					t.Errorf("redis/%s expects appendonly %v, the chart sets %q", r.Name, r.Expect.Appendonly, conf["appendonly"])
				}
			}
			if len(cfg.Redis) != 2 || len(cfg.Postgres) != 2 || len(cfg.MinIO) != 1 || len(cfg.RabbitMQ) != 1 {
				t.Errorf("targets: %v, want two postgres, two redis, one minio, one rabbitmq", cfg.Targets())
			}

			fixed := v["fixedSecretKeys"]
			if len(cfg.MinIO) == 1 {
				m, a := cfg.MinIO[0], v["minio"]
				if want := fmt.Sprintf("%s:%v", host("minio"), dig(a, "service", "ports", "api")); m.Endpoint != want {
					t.Errorf("minio endpoint %s, want %s", m.Endpoint, want)
				}
				wantSecret(str(dig(a, "auth", "existingSecret")), map[string]string{
					str(dig(fixed, "minio", "rootUser")):     m.AccessKey.Secret,
					str(dig(fixed, "minio", "rootPassword")): m.SecretKey.Secret,
				})
			}
			if len(cfg.RabbitMQ) == 1 {
				r, a := cfg.RabbitMQ[0], v["rabbitmq"]
				if r.Host != host("rabbitmq") || str(r.Port) != str(dig(a, "service", "ports", "amqp")) ||
					str(r.ManagementPort) != str(dig(a, "service", "ports", "manager")) || r.User != str(dig(a, "auth", "username")) {
					t.Errorf("rabbitmq %s@%s:%d/%d, want %v@%s with the Service's ports", r.User, r.Host, r.Port, r.ManagementPort, dig(a, "auth", "username"), host("rabbitmq"))
				}
				wantSecret(str(dig(a, "auth", "existingPasswordSecret")), map[string]string{
					str(dig(fixed, "rabbitmq", "password")):     r.Password.Secret,
					str(dig(fixed, "rabbitmq", "erlangCookie")): "rabbitmq-erlang-cookie",
				})
			}
			if len(secrets) > 0 {
				t.Errorf("Kubernetes Secrets no data service reads: %v", secrets)
			}

			// The application charts' ConfigMap: same hosts, no credentials.
			ci := find(t, objs, "ConfigMap", "infrastructure-connection-info")
			data := asMap(ci["data"])
			if str(data["POSTGRESQL_HEALTH_HOST"]) != host("postgresql-health") || str(data["RABBITMQ_HOST"]) != host("rabbitmq") {
				t.Errorf("connection info hosts differ from the bootstrap config: %v", data)
			}
			refs := cfg.SecretRefs(func(string) bool { return true }, true)
			for k, val := range data {
				if regexp.MustCompile(`PASSWORD|TOKEN|KEY$`).MatchString(k) {
					t.Errorf("connection info key %s looks like a credential", k)
				}
				for _, item := range strings.Split(str(val), ",") {
					if _, ok := refs[item]; ok {
						t.Errorf("connection info %s=%v names source secret %s", k, val, item)
					}
				}
			}
		})
	}
}

// TestChartRejects: overrides that would break the contract fail the render
// with a message naming the value.
func TestChartRejects(t *testing.T) {
	for _, c := range []struct {
		set, want string
	}{
		{"bootstrap.image.pullPolicy=Sometimes", "pullPolicy"},
		{"bootstrap.postgres.postgresql-health.host=elsewhere", "host"},
		{"bootstrap.secrets.output.namespace=other", "namespace"},
		{"infrastructure.minio.fullnameOverride=my-minio", "minio.fullnameOverride must be infrastructure-minio"},
		{"infrastructure.redis-auth.image.repository=bitnami/redis", "bitnamilegacy"},
		{"infrastructure.redis-auth.enabled=false", "infrastructure.redis-auth is not enabled"},
		{"bootstrap.postgres.postgresql-auth.secretUserRole=nobody", `no role "nobody"`},
	} {
		_, err := run(t, repo(t), nil, helmBin(t), "template", "hp", chartDir(t), "-n", namespace, "--set", c.set)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--set %s: %v, want an error mentioning %q", c.set, err, c.want)
		}
	}
	// The daemon's values.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--set", "bootstrap.serve.serviceMonitor.enabled=yes"}, "serve/serviceMonitor/enabled"},
		{[]string{"--set", "bootstrap.serve.terminationGracePeriodSeconds=5"}, "serve/terminationGracePeriodSeconds"},
		{[]string{"--set", "bootstrap.serve.interval=5"}, "serve/interval"},
		{[]string{"--set", "bootstrap.serve.enabled=true", "--set", "infrastructure.minio.metrics.serviceMonitor.namespace=elsewhere"},
			"bootstrap.serve.serviceMonitor.namespace: the data services' ServiceMonitors are in"},
	} {
		args := append([]string{"template", "hp", chartDir(t), "-n", namespace}, c.args...)
		_, err := run(t, repo(t), nil, helmBin(t), args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error mentioning %q", c.args, err, c.want)
		}
	}
	// With the daemon on, a release name whose cut names collide with the hooks'.
	long := strings.Repeat("r", 50)
	if _, err := run(t, repo(t), nil, helmBin(t), "template", long, chartDir(t), "-n", namespace, "--set", "bootstrap.serve.enabled=true"); err == nil ||
		!strings.Contains(err.Error(), "too long") {
		t.Errorf("release name of 50 characters with the daemon: %v, want an error saying it is too long", err)
	}
	objs0 := renderAs(t, long[:49], namespace, "--set", "bootstrap.serve.enabled=true")
	seen := map[string]bool{}
	for _, o := range objs0 {
		key := o.kind() + "/" + str(dig(o, "metadata", "namespace")) + "/" + o.name()
		if seen[key] {
			t.Errorf("release name of 49 characters: two objects %s", key)
		}
		seen[key] = true
	}

	// Dropping a service and its bootstrap entry together is fine.
	objs := render(t, namespace, "--set", "infrastructure.redis-auth.enabled=false", "--set", "bootstrap.redis.redis-auth=null")
	cfg := loadConfig(t, bootstrapConfig(t, objs))
	for _, ks := range cfg.Secrets.KubernetesSecrets {
		if ks.Name == "redis-auth-secret" {
			t.Error("redis-auth-secret still delivered after redis-auth was removed")
		}
	}
}

func TestChartMigrationsMatchExamples(t *testing.T) {
	a, err := os.ReadFile(filepath.Join(chartDir(t), "migrations", "healthdb", "00001_observations.sql"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(repo(t), "examples", "migrations", "healthdb", "00001_observations.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("charts/health-platform/migrations/healthdb differs from examples/migrations/healthdb")
	}
}

// TestExternalServices: with the data services outside the release
// (infrastructure off), each bootstrap entry names its server; the config is
// valid, points there, and derives no Secret for a chart that is not
// installed. An entry cannot be both a service of the release and external.
func TestExternalServices(t *testing.T) {
	values := filepath.Join(t.TempDir(), "external.yaml")
	if err := os.WriteFile(values, []byte(`
infrastructure: {enabled: false}
bootstrap:
  hostNetwork: true
  secrets:
    extraKubernetesSecrets:
      - {name: health-app, data: {pg-password: pg-health-healthapi}}
  postgres:
    postgresql-health:
      external: {host: pg.example.internal, port: 5433, adminUser: admin}
    postgresql-auth: null
  redis:
    redis-health: {name: health, password: redis-health, external: {host: 10.0.0.7, port: 6380}}
    redis-auth: null
  minio:
    minio: {name: datalake, rootUser: u, rootPassword: p, external: {host: s3.internal, port: 443}}
  rabbitmq:
    rabbitmq: {name: events, password: rabbitmq-password, external: {host: mq.internal, port: 5671, managementPort: 15671, user: admin}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	objs := render(t, namespace, "-f", values)
	raw := bootstrapConfig(t, objs)
	validate(t, "bootstrap.yaml", raw)
	cfg := loadConfig(t, raw)
	if len(cfg.Postgres) != 1 || cfg.Postgres[0].Host != "pg.example.internal" || cfg.Postgres[0].Port != 5433 || cfg.Postgres[0].Admin.User != "admin" {
		t.Errorf("postgres: %+v", cfg.Postgres)
	}
	if len(cfg.Redis) != 1 || cfg.Redis[0].Address != "10.0.0.7:6380" {
		t.Errorf("redis: %+v", cfg.Redis)
	}
	if len(cfg.MinIO) != 1 || cfg.MinIO[0].Endpoint != "s3.internal:443" {
		t.Errorf("minio: %+v", cfg.MinIO)
	}
	if len(cfg.RabbitMQ) != 1 || cfg.RabbitMQ[0].Host != "mq.internal" || cfg.RabbitMQ[0].ManagementPort != 15671 || cfg.RabbitMQ[0].User != "admin" {
		t.Errorf("rabbitmq: %+v", cfg.RabbitMQ)
	}
	if ks := cfg.Secrets.KubernetesSecrets; len(ks) != 1 || ks[0].Name != "health-app" {
		t.Errorf("Secrets %v: want only the declared one, none derived for charts that are not installed", ks)
	}
	ci := asMap(find(t, objs, "ConfigMap", "infrastructure-connection-info")["data"])
	if str(ci["POSTGRESQL_HEALTH_HOST"]) != "pg.example.internal" || str(ci["REDIS_HEALTH_PORT"]) != "6380" {
		t.Errorf("connection info: %v", ci)
	}
	for _, w := range workloads(objs) {
		if str(w.pod["hostNetwork"]) != "true" {
			t.Errorf("%s: not on the node's network", w)
		}
	}

	body, _ := os.ReadFile(values)
	noMgmt := filepath.Join(t.TempDir(), "no-management-port.yaml")
	if err := os.WriteFile(noMgmt, bytes.Replace(body, []byte("managementPort: 15671, "), nil, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--set", "bootstrap.redis.redis-health.external.host=r", "--set", "bootstrap.redis.redis-health.external.port=1"},
			"bootstrap.redis.redis-health.external: infrastructure.redis-health is a service of this release"},
		{[]string{"-f", noMgmt}, "bootstrap.rabbitmq.rabbitmq.external.managementPort is required"},
	} {
		args := append([]string{"template", "hp", chartDir(t), "-n", namespace}, c.args...)
		if _, err := run(t, repo(t), nil, helmBin(t), args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error mentioning %q", c.args, err, c.want)
		}
	}
}
