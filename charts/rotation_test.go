package charts

import (
	"maps"
	"os"
	"path/filepath"
	"testing"
)

// TestRotatingAppRole: with rotation on the application role, the
// application Secret carries the login that holds the password now
// (NAME/username) beside the password, and the config validates with it.
func TestRotatingAppRole(t *testing.T) {
	values := filepath.Join(t.TempDir(), "rotation.yaml")
	if err := os.WriteFile(values, []byte(`
bootstrap:
  postgres:
    postgresql-health:
      roles:
        - {name: healthapi, password: {secret: pg-health-healthapi}, connectionLimit: 50, rotation: {every: 720h, grace: 15m}}
        - {name: healthreader, login: false}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	objs := render(t, namespace, "-f", values)
	raw := bootstrapConfig(t, objs)
	validate(t, "bootstrap.yaml", raw)
	cfg := loadConfig(t, raw)
	want := map[string]string{"password": "pg-health-healthapi", "username": "pg-health-healthapi/username"}
	for _, ks := range cfg.Secrets.KubernetesSecrets {
		if ks.Name == "postgresql-health-app" {
			if !maps.Equal(ks.Data, want) {
				t.Fatalf("postgresql-health-app holds %v, want %v", ks.Data, want)
			}
			if r := cfg.Rotating(func(string) bool { return true }); len(r) != 1 || r[0].Name != "healthapi" || r[0].Rotation.Every.Raw != "720h" {
				t.Fatalf("rotating credentials %+v, want healthapi every 720h", r)
			}
			return
		}
	}
	t.Fatalf("no Secret postgresql-health-app in %+v", cfg.Secrets.KubernetesSecrets)
}

// TestRotatingAppRoleHasNoFixedUser: the connection info names no user for
// a rotating role (its group role cannot log in); the Secret's username
// does. A role without rotation keeps POSTGRESQL_HEALTH_USER.
func TestRotatingAppRoleHasNoFixedUser(t *testing.T) {
	ci := asMap(find(t, render(t, namespace, "--set", "bootstrap.postgres.postgresql-health.roles[0].rotation.every=720h",
		"--set", "bootstrap.postgres.postgresql-health.roles[0].name=healthapi",
		"--set", "bootstrap.postgres.postgresql-health.roles[0].password.secret=pg-health-healthapi"), "ConfigMap", "infrastructure-connection-info")["data"])
	if u, ok := ci["POSTGRESQL_HEALTH_USER"]; ok {
		t.Errorf("POSTGRESQL_HEALTH_USER = %v for a rotating role, want none", u)
	}
	if u := str(ci["POSTGRESQL_AUTH_USER"]); u != "authapi" {
		t.Errorf("POSTGRESQL_AUTH_USER = %q, want authapi (not rotating)", u)
	}
}
