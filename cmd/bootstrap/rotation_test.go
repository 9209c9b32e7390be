package main

import (
	"context"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	sscrypto "github.com/bitnami-labs/sealed-secrets/pkg/crypto"
	"github.com/jackc/pgx/v5"

	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// TestAdminRotationDeliversAfterTheServer: the file source holds a new
// admin password and NAME.previous the one the server takes. apply sets the
// new one on the server first and only then writes the Secret carrying
// it; when the server takes neither, the Secret is withheld (skipped, exit
// 1) rather than handing the data service a password it does not know.
func TestAdminRotationDeliversAfterTheServer(t *testing.T) {
	pg := testenv.Postgres(t, "health")
	ctx := context.Background()
	dir := t.TempDir()
	admin := testenv.Unique("rotsuper")
	old, fresh := testenv.Unique("Old"), testenv.Unique("New")
	suite.secret(old)
	suite.secret(fresh)
	c := pg.Admin(t, "postgres")
	// Its own statement first: a server logs a whole query string before
	// any SET in it runs.
	if _, err := c.Exec(ctx, "SET log_statement = 'none'"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "CREATE ROLE "+pgx.Identifier{admin}.Sanitize()+" SUPERUSER LOGIN PASSWORD '"+old+"'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c := pg.Admin(t, "postgres")
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP ROLE IF EXISTS "+pgx.Identifier{admin}.Sanitize())
	})
	src := filepath.Join(dir, "src")
	write := func(name, v string) {
		if err := os.MkdirAll(src, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("pg-admin", fresh)
	_, cert, err := sscrypto.GeneratePrivateKeyAndCert(2048, time.Hour, "rotation-test")
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	sealed := filepath.Join(dir, "sealed")
	cfg := fmt.Sprintf(`version: 1
defaults: {waitTimeout: 5s}
secrets:
  source: {type: file, file: {dir: %s}}
  output: {type: sealed, target: dir, dir: %s, namespace: health-data, sealing: {cert: %s}}
  kubernetesSecrets:
    - {name: pg-admin-secret, data: {postgres-password: pg-admin}}
postgres:
  - {name: health, host: %s, port: %d, sslmode: disable, admin: {user: %s, password: {secret: pg-admin}}}
`, src, sealed, certFile, pg.Host, pg.Port, admin)

	// The server takes neither value: the Secret is withheld.
	write("pg-admin.previous", "not-"+old)
	code, r, stderr := runConfig(t, 60*time.Second, cfg, "apply")
	if code != exitFailed || find(r, "secret/health-data/pg-admin-secret") == nil || find(r, "secret/health-data/pg-admin-secret").Status != reconcile.Skipped {
		t.Fatalf("server takes neither value: exit %d, secret result %+v; want 1 and the Secret withheld\n%s", code, find(r, "secret/health-data/pg-admin-secret"), stderr)
	}
	if _, err := os.Stat(filepath.Join(sealed, "pg-admin-secret.yaml")); err == nil {
		t.Fatal("the Secret was written although the server does not take its password")
	}

	// The server takes the previous value: rotated, then delivered.
	write("pg-admin.previous", old)
	code, r, stderr = runConfig(t, 60*time.Second, cfg, "apply")
	if code != exitOK {
		t.Fatalf("rotation: exit %d\n%s", code, stderr)
	}
	rot, sec := -1, -1
	for i, ch := range r.Changes {
		switch ch.Resource {
		case "postgres/health/admin/" + admin:
			rot = i
		case "secret/health-data/pg-admin-secret":
			sec = i
		}
	}
	if rot < 0 || sec < 0 || rot > sec {
		t.Fatalf("rotation at %d, Secret at %d: want the rotation first\n%+v", rot, sec, r.Changes)
	}
	if _, err := pg.Connect(t, admin, fresh, "postgres"); err != nil {
		t.Errorf("the new password does not log in: %v", err)
	}
}
