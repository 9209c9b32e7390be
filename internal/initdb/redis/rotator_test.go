package redis

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// TestRotator walks a rotation: Set adds a second password (both log in),
// the plan leaves it alone, Retire removes the old one (a new login with it
// fails with WRONGPASS) while a connection authenticated with it goes on
// running commands; Sessions lists that connection.
func TestRotator(t *testing.T) {
	ctx := context.Background()
	f := newUserFixture(t, "auth")
	u := f.addUser("rot", true, "~rot:*", "+@all", "-@dangerous")
	old := f.creds[u.Password.Secret]
	rot := NewRotator(f.cfg, u.Name, f.creds, nil)
	defer rot.Close()

	// Set on a user that does not exist yet creates it.
	if err := rot.Set(ctx, u.Name, old); err != nil {
		t.Fatalf("set on a new user: %v", err)
	}
	if err := rot.Prove(ctx, u.Name, old); err != nil {
		t.Fatalf("prove: %v", err)
	}
	// A client of the old password, with a name for Sessions.
	client := goredis.NewClient(&goredis.Options{Addr: f.srv.addr, Username: u.Name, Password: old.Reveal(),
		ClientName: "billing-worker", Protocol: 2, DisableIdentity: true, PoolSize: 1, MaxRetries: -1})
	defer client.Close()
	if err := client.Set(ctx, "rot:k", "v", KeyTTL).Err(); err != nil {
		t.Fatalf("a client of the old password: %v", err)
	}

	next := credential.New(testenv.Unique("pw"))
	for range 2 { // idempotent
		if err := rot.Set(ctx, u.Name, next); err != nil {
			t.Fatalf("set: %v", err)
		}
	}
	if got := f.getUser(t, u.Name); len(got.hashes) != 2 {
		t.Fatalf("after set: %d passwords, want 2", len(got.hashes))
	}
	for _, pw := range []credential.Credential{old, next} {
		if err := rot.Prove(ctx, u.Name, pw); err != nil {
			t.Errorf("prove during the overlap: %v", err)
		}
		if ok, err := rot.Active(ctx, u.Name, pw); !ok || err != nil {
			t.Errorf("active during the overlap: %v, %v", ok, err)
		}
	}
	sessions, err := rot.Sessions(ctx, u.Name)
	if err != nil || len(sessions) != 1 || !strings.HasSuffix(sessions[0], " (billing-worker)") {
		t.Errorf("sessions %q, %v: want the one client", sessions, err)
	}

	// The source promoted next: the plan wants it and leaves old alone.
	f.creds[u.Password.Secret] = next
	if c := f.plan(t, f.target(t))[f.res("user", u)]; c.Action != reconcile.Noop {
		t.Fatalf("plan during the overlap: %s %q, want noop", c.Action, c.Detail)
	}
	if err := rot.Retire(ctx, u.Name, next); err == nil || !strings.Contains(err.Error(), "current password") {
		t.Errorf("retire of the current password: %v, want a refusal", err)
	}
	for range 2 { // idempotent
		if err := rot.Retire(ctx, u.Name, old); err != nil {
			t.Fatalf("retire: %v", err)
		}
	}
	if err := rot.Prove(ctx, u.Name, old); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("a login with the retired password: %v, want WRONGPASS", err)
	}
	if strings.Contains(fmt.Sprint(rot.Prove(ctx, u.Name, old)), old.Reveal()) {
		t.Error("the failed login's error leaks the password")
	}
	if ok, err := rot.Active(ctx, u.Name, old); ok || err != nil {
		t.Errorf("active after retire: %v, %v", ok, err)
	}
	if err := rot.Prove(ctx, u.Name, next); err != nil {
		t.Errorf("the current password after retire: %v", err)
	}
	if got, err := client.Get(ctx, "rot:k").Result(); err != nil || got != "v" {
		t.Errorf("the connection of the retired password: %q, %v; want it to go on", got, err)
	}
	if c := f.plan(t, f.target(t))[f.res("user", u)]; c.Action != reconcile.Noop {
		t.Fatalf("plan after retire: %s %q, want noop", c.Action, c.Detail)
	}
	client.Close()
	if s, err := rot.Sessions(ctx, u.Name); err != nil || s != nil {
		t.Errorf("sessions after the client left: %q, %v; want nil", s, err)
	}
}

// TestRotatorUndeclaredUser: a user the config does not declare is refused.
func TestRotatorUndeclaredUser(t *testing.T) {
	f := newUserFixture(t, "health")
	f.addUser("rot", true, appRules...)
	rot := NewRotator(f.cfg, "nobody", f.creds, nil)
	defer rot.Close()
	err := rot.Set(context.Background(), "nobody", credential.New("x"))
	if err == nil || !strings.Contains(err.Error(), "user nobody is not declared") {
		t.Fatalf("got %v", err)
	}
}

// TestRotatorRetireMissingUser: nothing to retire is no error.
func TestRotatorRetireMissingUser(t *testing.T) {
	f := newUserFixture(t, "health")
	u := f.addUser("rot", true, appRules...)
	rot := NewRotator(f.cfg, u.Name, f.creds, nil)
	defer rot.Close()
	if err := rot.Retire(context.Background(), u.Name, credential.New(testenv.Unique("old"))); err != nil {
		t.Fatal(err)
	}
	if ok, err := rot.Active(context.Background(), u.Name, f.creds[u.Password.Secret]); ok || err != nil {
		t.Errorf("active on a missing user: %v, %v", ok, err)
	}
}

// commandLog records the arguments of every command a client sends, as a
// command logger or tracing hook would see them.
type commandLog struct {
	mu   sync.Mutex
	cmds []string
}

func (l *commandLog) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (l *commandLog) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		l.mu.Lock()
		l.cmds = append(l.cmds, fmt.Sprint(cmd.Args()...))
		l.mu.Unlock()
		return next(ctx, cmd)
	}
}
func (l *commandLog) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}

func (l *commandLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.cmds, "\n")
}

// TestNoPasswordInLogs applies users (a create, then a password update)
// and a rotation with every log at debug level and every command the
// admin connection sends recorded: neither holds a user's password, nor
// its base64; the commands carry only its SHA-256.
func TestNoPasswordInLogs(t *testing.T) {
	ctx := context.Background()
	f := newUserFixture(t, "auth")
	plain := f.addUser("app", false, appRules...)
	u := f.addUser("rot", true, "~rot:*", "+@all")
	var logs logBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var cmds commandLog
	run := func() {
		tgt := New(f.cfg, f.creds, log)
		if err := tgt.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		tgt.client.AddHook(&cmds)
		for _, r := range reconcile.Run(ctx, []reconcile.Target{tgt}, reconcile.Options{Mode: reconcile.ModeApply, Logger: log}) {
			if r.Status == reconcile.Failed {
				t.Errorf("%s: %s", r.Resource, r.Error)
			}
		}
	}
	pws := []credential.Credential{f.creds[plain.Password.Secret], f.creds[u.Password.Secret]}
	run()
	f.creds[plain.Password.Secret] = credential.New(testenv.Unique("pw"))
	pws = append(pws, f.creds[plain.Password.Secret])
	run()

	rot := NewRotator(f.cfg, u.Name, f.creds, log)
	defer rot.Close()
	next := credential.New(testenv.Unique("pw"))
	pws = append(pws, next)
	if _, err := rot.Active(ctx, u.Name, next); err != nil { // connects
		t.Fatal(err)
	}
	rot.t.client.AddHook(&cmds)
	if err := rot.Set(ctx, u.Name, next); err != nil {
		t.Fatal(err)
	}
	old := f.creds[u.Password.Secret]
	f.creds[u.Password.Secret] = next
	if err := rot.Prove(ctx, u.Name, next); err != nil {
		t.Fatal(err)
	}
	if err := rot.Retire(ctx, u.Name, old); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "create") || !strings.Contains(logs.String(), "password removed") {
		t.Fatalf("the logs do not show the changes:\n%s", logs.String())
	}
	if !strings.Contains(cmds.String(), "#"+passwordHash(pws[2])) || !strings.Contains(cmds.String(), "#"+passwordHash(next)) {
		t.Fatalf("the recorded commands do not set the hash:\n%s", cmds.String())
	}
	for i, pw := range pws {
		for what, v := range map[string]string{"password": pw.Reveal(), "base64": base64.StdEncoding.EncodeToString([]byte(pw.Reveal()))} {
			if strings.Contains(logs.String(), v) {
				t.Errorf("the log holds password %d's %s", i, what)
			}
			if strings.Contains(cmds.String(), v) {
				t.Errorf("a command holds password %d's %s", i, what)
			}
		}
		if strings.Contains(logs.String(), passwordHash(pw)) {
			t.Errorf("the log holds password %d's hash", i)
		}
	}
}

// TestRotatorTLS: the rotator and the users' login checks use the
// instance's TLS settings, like the target.
func TestRotatorTLS(t *testing.T) {
	ctx := context.Background()
	f := newUserFixture(t, "health")
	files := testenv.TLS(t)
	f.cfg.Address = testenv.RedisTLS(t, "health")
	f.cfg.TLS = config.TLS{Enabled: true, CAFile: files.CA}
	u := f.addUser("tls", true, appRules...)
	cs := f.apply(t)
	if c := cs[f.res("user", u)]; c.Action != reconcile.Create {
		t.Fatalf("over TLS: %s %s", c.Action, c.Resource)
	}
	rot := NewRotator(f.cfg, u.Name, f.creds, nil)
	defer rot.Close()
	next := credential.New(testenv.Unique("pw"))
	if err := rot.Set(ctx, u.Name, next); err != nil {
		t.Fatal(err)
	}
	if err := rot.Prove(ctx, u.Name, next); err != nil {
		t.Fatal(err)
	}
	// A CA that did not sign the server's certificate: nothing is sent.
	f.cfg.TLS.CAFile = files.OtherCA
	bad := NewRotator(f.cfg, u.Name, f.creds, nil)
	defer bad.Close()
	if err := bad.Set(ctx, u.Name, next); err == nil || !strings.Contains(err.Error(), "not trusted") {
		t.Errorf("an untrusted server: %v", err)
	}
}
