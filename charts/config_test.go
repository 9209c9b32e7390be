package charts

import (
	"bytes"
	"fmt"
	"maps"
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
			// wantSecret checks one delivered Secret: its name and the source
			// secret behind each key, and no other key.
			wantSecret := func(name string, data map[string]string) {
				t.Helper()
				got, ok := secrets[name]
				if !ok {
					t.Errorf("no Kubernetes Secret %s in the bootstrap config (have %v)", name, secrets)
					return
				}
				if !maps.Equal(got, data) {
					t.Errorf("Secret %s holds %v, want %v", name, got, data)
				}
				delete(secrets, name)
			}
			// The application charts' ConfigMap names each service's
			// application Secret (<ALIAS>_SECRET).
			ci := asMap(find(t, objs, "ConfigMap", "infrastructure-connection-info")["data"])
			appSecret := func(alias string) string {
				t.Helper()
				k := strings.ToUpper(strings.ReplaceAll(alias, "-", "_")) + "_SECRET"
				if str(ci[k]) != alias+"-app" {
					t.Errorf("connection info %s = %q, want the application Secret %s-app", k, ci[k], alias)
				}
				return str(ci[k])
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
				// The server's Secret holds the superuser's password only; the
				// application role's is in the application Secret.
				keys := dig(a, "auth", "secretKeys")
				wantSecret(str(dig(a, "auth", "existingSecret")), map[string]string{str(dig(keys, "adminPasswordKey")): p.Admin.Password.Secret})
				var userSecret, user string
				for _, r := range p.Roles {
					if r.Password != nil && r.CanLogin() {
						userSecret, user = r.Password.Secret, r.Name
						break
					}
				}
				wantSecret(appSecret(alias), map[string]string{"password": userSecret})
				if k := strings.ToUpper(strings.ReplaceAll(alias, "-", "_")) + "_USER"; str(ci[k]) != user {
					t.Errorf("connection info %s = %q, want the application role %s", k, ci[k], user)
				}
			}

			for _, r := range cfg.Redis {
				alias := "redis-" + r.Name
				a := v[alias]
				want := fmt.Sprintf("infrastructure-%s-master.%s.svc.cluster.local:%v", alias, namespace, dig(a, "master", "service", "ports", "redis"))
				if r.Address != want {
					t.Errorf("redis/%s at %s, want %s", r.Name, r.Address, want)
				}
				wantSecret(str(dig(a, "auth", "existingSecret")), map[string]string{str(dig(a, "auth", "existingSecretPasswordKey")): r.Password.Secret})
				// Redis has one password here (no ACL users): the applications' too.
				wantSecret(appSecret(alias), map[string]string{"redis-password": r.Password.Secret})
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
				// bootstrap creates no MinIO user: the applications get no
				// MinIO Secret, least of all the root one.
				if s, ok := ci["MINIO_SECRET"]; ok {
					t.Errorf("connection info MINIO_SECRET = %v: bootstrap creates no MinIO user to hand out", s)
				}
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
				// The application users' passwords, <user>-password.
				users := map[string]string{}
				for _, u := range r.Users {
					users[u.Name+"-password"] = u.Password.Secret
				}
				wantSecret(appSecret("rabbitmq"), users)
			}
			if len(secrets) > 0 {
				t.Errorf("Kubernetes Secrets no data service reads: %v", secrets)
			}

			// The application charts' ConfigMap: same hosts, no credentials.
			data := ci
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
		// Application Secrets: never an admin credential, never a data
		// service's Secret, never another entry's.
		{"bootstrap.rabbitmq.rabbitmq.appSecret.data.cookie=rabbitmq-erlang-cookie",
			"bootstrap.rabbitmq.rabbitmq.appSecret: key cookie would hold rabbitmq-erlang-cookie, an admin credential (bootstrap.rabbitmq.rabbitmq.erlangCookie)"},
		{"bootstrap.minio.minio.appSecret.data.access-key=minio-root-user", "an admin credential (bootstrap.minio.minio.rootUser)"},
		{"bootstrap.redis.redis-auth.appSecret.data.pg=pg-health-admin", "an admin credential (bootstrap.postgres.postgresql-health.adminPassword)"},
		{"bootstrap.postgres.postgresql-health.appSecret.name=postgresql-health-secret",
			"bootstrap.postgres.postgresql-health.appSecret.name: postgresql-health-secret is a Secret the data services read"},
		{"bootstrap.redis.redis-auth.appSecret.name=rabbitmq-app", "bootstrap.rabbitmq.rabbitmq.appSecret.name: rabbitmq-app is bootstrap.redis.redis-auth's application Secret already"},
		{"bootstrap.postgres.postgresql-health.appSecret.data.password=pg-health-admin", "appSecret.data.password: the chart derives this key"},
		{"bootstrap.rabbitmq.rabbitmq.secretExtraKeys.etl-password=rabbitmq-etl", "secretExtraKeys: moved to appSecret.data"},
		{"bootstrap.minio.minio.appSecret.user=x", "appSecret"},
		// NetworkPolicies: the rabbitmq chart's own one would admit everyone.
		{"networkPolicy.enabled=true", "infrastructure.rabbitmq.networkPolicy.enabled"},
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
	// NetworkPolicies: peers for a service this release does not run, and an
	// empty peer (which would admit every pod of the namespace).
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--set", "networkPolicy.enabled=true", "--set", "infrastructure.rabbitmq.networkPolicy.enabled=false",
			"--set", "infrastructure.redis-auth.enabled=false", "--set", "bootstrap.redis.redis-auth=null",
			"--set-json", `networkPolicy.fromByService={"redis-auth":[{"podSelector":{"matchLabels":{"app":"auth"}}}]}`},
			"networkPolicy.fromByService.redis-auth: infrastructure.redis-auth is not a data service of this release"},
		{[]string{"--set-json", `networkPolicy.from=[{}]`}, "from"},
		{[]string{"--set-json", `networkPolicy.fromByService={"redis":[{"podSelector":{}}]}`}, "fromByService"},
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

	// An external entry gets an application Secret when it names one.
	objs = render(t, namespace, "-f", values, "--set", "bootstrap.postgres.postgresql-health.appSecret.name=health-pg-app",
		"--set", "bootstrap.rabbitmq.rabbitmq.appSecret.name=events-app")
	raw = bootstrapConfig(t, objs)
	validate(t, "bootstrap.yaml", raw)
	got := map[string]map[string]string{}
	for _, ks := range loadConfig(t, raw).Secrets.KubernetesSecrets {
		got[ks.Name] = ks.Data
	}
	want := map[string]map[string]string{
		"health-app":    {"pg-password": "pg-health-healthapi"},
		"health-pg-app": {"password": "pg-health-healthapi"},
		"events-app":    {"etl-password": "rabbitmq-etl"},
	}
	if !maps.EqualFunc(got, want, maps.Equal) {
		t.Errorf("Secrets %v, want %v", got, want)
	}
	ci = asMap(find(t, objs, "ConfigMap", "infrastructure-connection-info")["data"])
	if str(ci["POSTGRESQL_HEALTH_SECRET"]) != "health-pg-app" || str(ci["RABBITMQ_SECRET"]) != "events-app" || ci["REDIS_HEALTH_SECRET"] != nil {
		t.Errorf("connection info: %v", ci)
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
