package amqp

import (
	"context"
	"strings"
	"testing"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// TestAdminRotation: the source holds a new admin password, the broker
// still takes the previous one (as Bitnami's does after its first boot).
// The plan's first change says so; apply puts the new hash on the user,
// keeps its tags, and proves it; the previous password no longer works.
// Without a previous value Connect fails as a wrong password.
func TestAdminRotation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	user := f.user(t, "rotadmin")
	old, fresh := testenv.Unique("old"), testenv.Unique("new")
	h, err := hashPassword(old)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.admin.do(ctx, "PUT", path("users", user), userBody{PasswordHash: h, HashingAlgorithm: hashAlgorithm, Tags: "administrator"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.admin.do(ctx, "PUT", path("permissions", "/", user), map[string]string{"configure": ".*", "write": ".*", "read": ".*"}, nil); err != nil {
		t.Fatal(err)
	}
	cfg := f.config()
	cfg.User = user
	cfg.Password = config.SecretRef{Secret: "rot-admin"}
	f.creds["rot-admin"] = credential.New(fresh)
	if err := f.target(cfg).Connect(ctx); err == nil || !reconcile.IsPermanent(err) {
		t.Fatalf("without a previous value: %v, want a permanent refusal", err)
	}

	f.creds[credential.PreviousKey("rot-admin")] = credential.New(old)
	tgt := f.target(cfg)
	defer tgt.Close()
	if err := tgt.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	cs, err := tgt.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cs[0].Resource != "rabbitmq/events/admin/"+user || cs[0].Action != reconcile.Update || !strings.Contains(cs[0].Detail, "previous value") {
		t.Fatalf("first change %+v: want the rotation", cs[0])
	}
	if err := cs[0].Apply(ctx); err != nil {
		t.Fatal(err)
	}
	login := func(pw string) error {
		m := newMgmt(f.srv.Host, f.srv.ManagementPort, nil, user, credential.New(pw), cfg.Timeouts)
		return m.do(ctx, "GET", path("overview"), nil, nil)
	}
	if err := login(fresh); err != nil {
		t.Errorf("the new password does not log in: %v", err)
	}
	if err := login(old); !isStatus(err, 401) {
		t.Errorf("the previous password: %v, want 401", err)
	}
	var u defUser
	if err := f.admin.do(ctx, "GET", path("users", user), nil, &u); err != nil || !strings.Contains(string(u.Tags), "administrator") {
		t.Errorf("tags after the rotation: %s (%v), want administrator kept", u.Tags, err)
	}
	again := f.target(cfg)
	defer again.Close()
	if err := again.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if cs, err := again.Plan(ctx); err != nil || len(cs) > 0 && cs[0].Resource == "rabbitmq/events/admin/"+user {
		t.Errorf("after the rotation: %v, first change %v", err, cs)
	}
}
