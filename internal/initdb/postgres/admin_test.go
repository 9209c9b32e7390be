package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// TestAdminRotation: the source holds a new admin password, the server
// still takes the previous one (as a Bitnami PostgreSQL does after its
// first init). plan says so and changes nothing; apply logs in with the
// previous value, sets the new one, proves it, and the next plan is empty.
// Without a previous value the run fails as a wrong password.
func TestAdminRotation(t *testing.T) {
	f := newFixture(t, "health")
	ctx := context.Background()
	admin := f.role("rotadmin")
	old, fresh := randomPassword(), randomPassword()
	verifier, err := newSCRAMVerifier(old)
	if err != nil {
		t.Fatal(err)
	}
	c := adminConn(t, f.pg, "postgres")
	if err := execSecret(ctx, c, "CREATE ROLE "+ident(admin)+" SUPERUSER LOGIN PASSWORD "+literal(verifier)); err != nil {
		t.Fatal(err)
	}
	cfg := f.config()
	cfg.Admin.User = admin
	cfg.Admin.Password.Secret = "rot-admin"
	creds := credential.Resolved{"rot-admin": credential.New(fresh)}

	// No previous value: a wrong password, permanent.
	if _, err := tryApply(ctx, cfg, creds); err == nil || !reconcile.IsPermanent(err) || sqlState(err) != "28P01" {
		t.Fatalf("without a previous value: %v, want a permanent 28P01", err)
	}

	creds[credential.PreviousKey("rot-admin")] = credential.New(old)
	res := "postgres/health/admin/" + admin
	ch, ok := find(planOf(t, cfg, creds), res)
	if !ok || ch.Action != reconcile.Update || !strings.Contains(ch.Detail, "previous value") {
		t.Fatalf("plan: %+v, want an update of %s", ch, res)
	}
	loginWith := func(pw string) error {
		conn, err := New(cfg, creds, nil).dial(ctx, "postgres", admin, credential.New(pw))
		if err == nil {
			conn.Close(ctx)
		}
		return err
	}
	if loginWith(old) != nil {
		t.Fatal("plan changed the server: the previous password no longer works")
	}
	cs := applyAll(t, cfg, creds)
	if cs[0].Resource != res {
		t.Errorf("the rotation is not the first change: %s", cs[0].Resource)
	}
	if err := loginWith(fresh); err != nil {
		t.Fatalf("after apply the new password does not log in: %v", err)
	}
	if sqlState(loginWith(old)) != "28P01" {
		t.Error("after apply the previous password still logs in")
	}
	if w := writes(planOf(t, cfg, creds)); len(w) != 0 {
		t.Errorf("plan after the rotation: %v", w)
	}
}
