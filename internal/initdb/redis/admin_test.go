package redis

import (
	"context"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// TestPasswordRotation: the source holds a new password, the server still
// takes the previous one. The plan's first change says so; applying it sets
// the new one (CONFIG SET requirepass), proves it, and every later check
// passes with it; the previous one no longer works. Without a previous
// value the run fails as a wrong password.
func TestPasswordRotation(t *testing.T) {
	srv := privateServer(t)
	ctx := context.Background()
	fresh := testenv.Unique("pw")
	cfg := srv.config(0)
	creds := credential.Resolved{secretName: credential.New(fresh)}
	if err := New(cfg, creds, nil).Connect(ctx); err == nil || !reconcile.IsPermanent(err) {
		t.Fatalf("without a previous value: %v, want a permanent authentication failure", err)
	}
	creds[credential.PreviousKey(secretName)] = credential.New(srv.password)
	tgt := New(cfg, creds, nil)
	defer tgt.Close()
	connect(t, tgt)
	cs, err := tgt.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cs[0].Resource != "redis/private/password/default" || cs[0].Action != reconcile.Update || !strings.Contains(cs[0].Detail, "previous value") {
		t.Fatalf("first change %+v: want the rotation", cs[0])
	}
	for _, c := range cs {
		if err := c.Apply(ctx); err != nil {
			t.Errorf("%s: %v", c.Resource, err)
		}
	}
	ping := func(pw string) error {
		c := goredis.NewClient(&goredis.Options{Addr: srv.addr, Password: pw, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
		defer c.Close()
		return c.Ping(ctx).Err()
	}
	if err := ping(fresh); err != nil {
		t.Errorf("the new password does not log in: %v", err)
	}
	if ping(srv.password) == nil {
		t.Error("the previous password still logs in")
	}
	again := New(cfg, creds, nil)
	defer again.Close()
	connect(t, again)
	cs, err = again.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cs[0].Action != reconcile.Check {
		t.Errorf("after the rotation the plan still starts with %s %s", cs[0].Action, cs[0].Resource)
	}
}
