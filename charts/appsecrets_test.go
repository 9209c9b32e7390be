package charts

import (
	"slices"
	"strings"
	"testing"
)

// Least privilege for the application charts: the Secrets the connection
// ConfigMap names hold application credentials only. What counts as an
// admin credential is read from the rendered objects, never from our values:
// what the data services' pods read as their administrator's or root
// password or their Erlang cookie (through the Secrets bootstrap delivers),
// and what the rendered bootstrap.yaml logs in with as admin.

// podCredential classifies an environment variable by which a pinned Bitnami
// image takes a credential from a Secret: admin (an administrator's, root or
// superuser password, a replication password, the Erlang cookie) or not, and
// whether the variable is known at all. env is the container's other
// variables with literal values.
//
// REDIS_PASSWORD is the password of Redis's default user, its only one: these
// Redis servers have no ACL users and bootstrap creates none, so it is what
// every Redis client logs in with, the applications' included (README.md,
// "Application credentials").
func podCredential(name string, env map[string]string) (admin, known bool) {
	switch name {
	case "POSTGRES_PASSWORD":
		// The superuser's when no other user is named (POSTGRES_USER), else that user's.
		u, ok := env["POSTGRES_USER"]
		return !ok || u == "postgres", true
	case "POSTGRES_POSTGRES_PASSWORD", "POSTGRES_REPLICATION_PASSWORD",
		"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD",
		"RABBITMQ_PASSWORD", "RABBITMQ_ERL_COOKIE":
		return true, true
	case "DATA_SOURCE_PASS":
		// The PostgreSQL exporter's login.
		u, ok := env["DATA_SOURCE_USER"]
		return !ok || u == "postgres", true
	case "REDIS_PASSWORD":
		return false, true
	}
	return false, false
}

// TestAppSecretsHoldNoAdminCredential: every Secret the connection ConfigMap
// names is delivered by bootstrap, is read by no data service's pod, and
// holds no admin credential; every delivered Secret that holds one is read by
// a data service's pod (admin credentials live only where the data services
// and bootstrap read them).
func TestAppSecretsHoldNoAdminCredential(t *testing.T) {
	for _, p := range profiles {
		t.Run(p.name, func(t *testing.T) {
			objs := renderSet(t, namespace, p.args)
			cfg := loadConfig(t, bootstrapConfig(t, objs))
			delivered := deliveredSecrets(cfg)

			// admin: source secret -> where it is used as an admin credential.
			admin := map[string]string{}
			for _, pg := range cfg.Postgres {
				admin[pg.Admin.Password.Secret] = pg.Target() + " admin.password"
			}
			for _, m := range cfg.MinIO {
				admin[m.AccessKey.Secret] = m.Target() + " accessKey"
				admin[m.SecretKey.Secret] = m.Target() + " secretKey"
			}
			for _, r := range cfg.RabbitMQ {
				admin[r.Password.Secret] = r.Target() + " password (user " + r.User + ")"
			}
			podRead := map[string][]string{} // Secret name -> the pods reading it
			adminVars := map[string]bool{}   // the variables read as admin credentials
			var n int
			for _, w := range workloads(bitnamiCharts(t, objs)) {
				for _, c := range allContainers(w.pod) {
					env := map[string]string{}
					for _, e := range list(c["env"]) {
						if v, ok := dig(e, "value").(string); ok {
							env[str(dig(e, "name"))] = v
						}
					}
					for _, e := range list(c["env"]) {
						r := dig(e, "valueFrom", "secretKeyRef")
						if r == nil {
							continue
						}
						name, key, variable := str(dig(r, "name")), str(dig(r, "key")), str(dig(e, "name"))
						if !slices.Contains(podRead[name], w.String()) {
							podRead[name] = append(podRead[name], w.String())
						}
						isAdmin, known := podCredential(variable, env)
						if !known {
							t.Errorf("%s container %s reads Secret %s key %s as %s, which this test cannot classify: add it to podCredential", w, c["name"], name, key, variable)
							continue
						}
						n++
						if src := delivered[name][key]; isAdmin && src != "" {
							adminVars[variable] = true
							if _, ok := admin[src]; !ok {
								admin[src] = w.String() + " " + variable
							}
						}
					}
				}
				// A whole Secret (envFrom, a volume): every key counts as admin.
				for _, r := range secretRefs(w.pod) {
					if r.key != "" && strings.Contains(r.where, " env ") {
						continue
					}
					if !slices.Contains(podRead[r.name], w.String()) {
						podRead[r.name] = append(podRead[r.name], w.String())
					}
					for key, src := range delivered[r.name] {
						if r.key == "" || r.key == key {
							admin[src] = w.String() + " " + r.where
						}
					}
				}
			}
			if n == 0 || len(admin) == 0 {
				t.Fatal("no data service reads a credential: the subcharts did not render")
			}
			for _, want := range []string{"RABBITMQ_ERL_COOKIE", "MINIO_ROOT_PASSWORD", "POSTGRES_PASSWORD"} {
				if !adminVars[want] {
					t.Errorf("no data service pod reads %s from a delivered Secret", want)
				}
			}

			ci := asMap(find(t, objs, "ConfigMap", "infrastructure-connection-info")["data"])
			var named int
			for _, k := range keysOf(ci) {
				if !strings.HasSuffix(k, "_SECRET") {
					continue
				}
				named++
				name := str(ci[k])
				data, ok := delivered[name]
				if !ok {
					t.Errorf("connection info %s names Secret %s, which bootstrap does not deliver", k, name)
					continue
				}
				if pods := podRead[name]; len(pods) > 0 {
					t.Errorf("connection info %s names Secret %s, which data service pods read: %s", k, name, strings.Join(pods, ", "))
				}
				for _, key := range keysOf(data) {
					if where, ok := admin[data[key]]; ok {
						t.Errorf("connection info %s names Secret %s, whose key %s holds %s: an admin credential (%s)", k, name, key, data[key], where)
					}
				}
			}
			if named == 0 {
				t.Error("the connection ConfigMap names no Secret: applications get no credentials")
			}

			for _, ks := range cfg.Secrets.KubernetesSecrets {
				for _, key := range keysOf(ks.Data) {
					if where, ok := admin[ks.Data[key]]; ok && len(podRead[ks.Name]) == 0 {
						t.Errorf("Secret %s key %s holds an admin credential (%s), yet no data service pod reads the Secret", ks.Name, key, where)
					}
				}
			}
		})
	}
}
