package redis

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/reconcile/reconciletest"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// userFixture is a Redis instance config with ACL users of unique names,
// deleted when the test ends, and the passwords of their secrets.
type userFixture struct {
	srv   server
	cfg   config.Redis
	creds credential.Resolved
	admin *goredis.Client
	// before: scratch users already on the server (a run killed between
	// making and deleting one leaves it); not this test's doing.
	before map[string]bool
}

var appRules = []string{"~app:*", "+@all", "-@dangerous", "&app:*"}

func newUserFixture(t *testing.T, instance string) *userFixture {
	t.Helper()
	srv := realServer(t, instance)
	f := &userFixture{srv: srv, cfg: srv.config(0), creds: srv.creds(), admin: srv.admin(t, 0)}
	f.before = f.probes(t)
	t.Cleanup(func() {
		for _, u := range f.cfg.Users {
			f.admin.Do(context.Background(), "ACL", "DELUSER", u.Name)
		}
	})
	return f
}

// addUser declares a user with a unique name and a fresh password.
func (f *userFixture) addUser(prefix string, rotating bool, rules ...string) config.RedisUser {
	u := config.RedisUser{Name: testenv.Unique(prefix), Password: config.SecretRef{Secret: testenv.Unique("redis-user-")}, Rules: rules}
	if rotating {
		u.Rotation = &config.Rotation{}
	}
	f.cfg.Users = append(f.cfg.Users, u)
	f.creds[u.Password.Secret] = credential.New(testenv.Unique("pw"))
	return u
}

func (f *userFixture) password(u config.RedisUser) string { return f.creds[u.Password.Secret].Reveal() }

func (f *userFixture) target(t *testing.T) *Target {
	t.Helper()
	tgt := New(f.cfg, f.creds, nil)
	t.Cleanup(func() { tgt.Close() })
	connect(t, tgt)
	return tgt
}

// plan returns the plan's user changes by resource.
func (f *userFixture) plan(t *testing.T, tgt *Target) map[string]reconcile.Change {
	t.Helper()
	cs, err := tgt.Plan(context.Background())
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	out := map[string]reconcile.Change{}
	for _, c := range cs {
		out[c.Resource] = c
	}
	return out
}

// apply plans on a fresh target and applies every change, checks included.
func (f *userFixture) apply(t *testing.T) map[string]reconcile.Change {
	t.Helper()
	tgt := f.target(t)
	cs := f.plan(t, tgt)
	for _, r := range sortedKeys(cs) {
		if c := cs[r]; c.Apply != nil {
			if err := c.Apply(context.Background()); err != nil {
				t.Fatalf("apply %s %s: %v", c.Action, r, err)
			}
		}
	}
	return cs
}

func sortedKeys(m map[string]reconcile.Change) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	// Users before their login checks: "login" < "user" would run the
	// checks first.
	sort.Slice(ks, func(i, j int) bool {
		li, lj := strings.Contains(ks[i], "/login/"), strings.Contains(ks[j], "/login/")
		if li != lj {
			return lj
		}
		return ks[i] < ks[j]
	})
	return ks
}

func (f *userFixture) res(kind string, u config.RedisUser) string {
	return "redis/" + f.srv.name + "/" + kind + "/" + u.Name
}

// auth logs in as user with pw on a new connection; a PING the user's
// rules refuse (NOPERM) comes after a successful AUTH.
func (f *userFixture) auth(user, pw string) error {
	c := goredis.NewClient(&goredis.Options{Addr: f.srv.addr, Username: user, Password: pw, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); !goredis.IsPermissionError(err) {
		return err
	}
	return nil
}

func (f *userFixture) getUser(t *testing.T, name string) aclUser {
	t.Helper()
	u, err := getUser(context.Background(), f.admin, name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// probes lists the scratch users on the server now.
func (f *userFixture) probes(t *testing.T) map[string]bool {
	t.Helper()
	users, err := f.admin.ACLUsers(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, u := range users {
		if strings.HasPrefix(u, probePrefix) {
			out[u] = true
		}
	}
	return out
}

// probeUsers lists the scratch users this test left. Other tests (other
// packages, at the same time) make and delete their own on the same
// server within milliseconds, so one counts only if it is still there a
// while later, and those there before the test do not count.
func (f *userFixture) probeUsers(t *testing.T) []string {
	t.Helper()
	seen := f.probes(t)
	for u := range f.before {
		delete(seen, u)
	}
	for i := 0; i < 20 && len(seen) > 0; i++ {
		time.Sleep(100 * time.Millisecond)
		now := f.probes(t)
		for u := range seen {
			if !now[u] {
				delete(seen, u)
			}
		}
	}
	var out []string
	for u := range seen {
		out = append(out, u)
	}
	return out
}

func TestUsersConformance(t *testing.T) {
	for _, inst := range []string{"health", "auth"} {
		t.Run(inst, func(t *testing.T) {
			reconciletest.Run(t, func(t *testing.T) reconciletest.Env {
				f := newUserFixture(t, inst)
				f.addUser("app", false, appRules...)
				f.addUser("rot", true, "~rot:*", "+get", "+set")
				return reconciletest.Env{
					NewTarget: func() reconcile.Target { return New(f.cfg, f.creds, nil) },
					Snapshot: func(ctx context.Context) (string, error) {
						var b strings.Builder
						for _, u := range f.cfg.Users {
							res, err := f.admin.Do(ctx, "ACL", "GETUSER", u.Name).Result()
							if err != nil && err != goredis.Nil {
								return "", err
							}
							fmt.Fprintf(&b, "%s=%v\n", u.Name, res)
						}
						return b.String(), nil
					},
				}
			})
		})
	}
}

// TestUsersCreateUpdateNoop: a new user is created and logs in; a second
// plan is noop; a rule changed in the config and a new password in the
// source are updates that say what differs, and converge.
func TestUsersCreateUpdateNoop(t *testing.T) {
	f := newUserFixture(t, "auth")
	u := f.addUser("app", false, appRules...)
	first := f.plan(t, f.target(t))
	c := first[f.res("user", u)]
	if c.Action != reconcile.Create || !strings.Contains(c.Detail, u.Password.Secret) {
		t.Fatalf("first plan: %s %q, want create naming the secret", c.Action, c.Detail)
	}
	if first[f.res("login", u)].Action != reconcile.Check {
		t.Errorf("no login check in the plan")
	}
	if p := f.probeUsers(t); len(p) > 0 {
		t.Errorf("plan left scratch users: %v", p)
	}
	f.apply(t)
	if err := f.auth(u.Name, f.password(u)); err != nil {
		t.Fatalf("the created user does not log in: %v", err)
	}
	if c := f.plan(t, f.target(t))[f.res("user", u)]; c.Action != reconcile.Noop {
		t.Fatalf("after apply: %s %q, want noop", c.Action, c.Detail)
	}

	// A rule removed from the config.
	f.cfg.Users[0].Rules = []string{"~app:*", "+@all", "&app:*"}
	c = f.plan(t, f.target(t))[f.res("user", u)]
	if c.Action != reconcile.Update || !strings.Contains(c.Detail, "commands +@all -@dangerous -> +@all") {
		t.Fatalf("rules changed: %s %q", c.Action, c.Detail)
	}
	f.apply(t)
	if c := f.plan(t, f.target(t))[f.res("user", u)]; c.Action != reconcile.Noop {
		t.Fatalf("after the rules update: %s %q", c.Action, c.Detail)
	}

	// A new password in the source: the only password of a user that
	// does not rotate.
	old := f.password(u)
	f.creds[u.Password.Secret] = credential.New(testenv.Unique("pw"))
	c = f.plan(t, f.target(t))[f.res("user", u)]
	if c.Action != reconcile.Update || !strings.Contains(c.Detail, "password -> the value of secret") {
		t.Fatalf("password changed: %s %q", c.Action, c.Detail)
	}
	f.apply(t)
	if err := f.auth(u.Name, f.password(u)); err != nil {
		t.Errorf("the new password does not log in: %v", err)
	}
	if err := f.auth(u.Name, old); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("the old password: %v, want WRONGPASS", err)
	}
	if c := f.plan(t, f.target(t))[f.res("user", u)]; c.Action != reconcile.Noop {
		t.Fatalf("after the password update: %s %q", c.Action, c.Detail)
	}
}

// TestUsersHandChangeRepaired: what someone changed by hand with ACL
// SETUSER (a rule removed, the user switched off, a password added, nopass)
// is drift the next apply repairs.
func TestUsersHandChangeRepaired(t *testing.T) {
	ctx := context.Background()
	f := newUserFixture(t, "health")
	u := f.addUser("app", false, appRules...)
	f.apply(t)
	for _, tc := range []struct {
		name   string
		change []any
		detail string
	}{
		{"rule removed", []any{"resetkeys"}, "rules: keys \"\" -> ~app:*"},
		{"category allowed", []any{"+@dangerous"}, "rules: commands +@all -> +@all -@dangerous"},
		{"switched off", []any{"off"}, "off -> on"},
		{"password added", []any{">" + testenv.Unique("extra")}, "2 passwords -> 1"},
		{"nopass", []any{"nopass"}, "nopass -> the password of secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := f.admin.Do(ctx, append([]any{"ACL", "SETUSER", u.Name}, tc.change...)...).Err(); err != nil {
				t.Fatal(err)
			}
			c := f.plan(t, f.target(t))[f.res("user", u)]
			if c.Action != reconcile.Update || !strings.Contains(c.Detail, tc.detail) {
				t.Fatalf("plan: %s %q, want update saying %q", c.Action, c.Detail, tc.detail)
			}
			f.apply(t)
			if c := f.plan(t, f.target(t))[f.res("user", u)]; c.Action != reconcile.Noop {
				t.Fatalf("after repair: %s %q", c.Action, c.Detail)
			}
			if got := f.getUser(t, u.Name); len(got.hashes) != 1 || got.nopass || !got.on {
				t.Errorf("after repair: %+v", got)
			}
		})
	}
}

// TestUsersRotatingPlanLeavesOtherPasswords: for a rotating user the plan
// wants the current password among the user's and leaves the others to
// the rotation; a rules repair keeps them too.
func TestUsersRotatingPlanLeavesOtherPasswords(t *testing.T) {
	ctx := context.Background()
	f := newUserFixture(t, "auth")
	u := f.addUser("rot", true, "~rot:*", "+@read", "+@write")
	f.apply(t)
	second := testenv.Unique("pw")
	if err := f.admin.Do(ctx, "ACL", "SETUSER", u.Name, ">"+second).Err(); err != nil {
		t.Fatal(err)
	}
	if c := f.plan(t, f.target(t))[f.res("user", u)]; c.Action != reconcile.Noop {
		t.Fatalf("a second password: %s %q, want noop", c.Action, c.Detail)
	}
	// A rule removed by hand: the repair resets the rules and keeps both.
	if err := f.admin.Do(ctx, "ACL", "SETUSER", u.Name, "-@write").Err(); err != nil {
		t.Fatal(err)
	}
	c := f.plan(t, f.target(t))[f.res("user", u)]
	if c.Action != reconcile.Update || !strings.HasPrefix(c.Detail, "rules: commands") {
		t.Fatalf("rule removed: %s %q", c.Action, c.Detail)
	}
	f.apply(t)
	for _, pw := range []string{f.password(u), second} {
		if err := f.auth(u.Name, pw); err != nil {
			t.Errorf("after the repair a password no longer logs in: %v", err)
		}
	}
	// The current password removed by hand comes back; the other stays.
	if err := f.admin.Do(ctx, "ACL", "SETUSER", u.Name, "<"+f.password(u)).Err(); err != nil {
		t.Fatal(err)
	}
	c = f.plan(t, f.target(t))[f.res("user", u)]
	if c.Action != reconcile.Update || c.Detail != fmt.Sprintf("password -> the value of secret %q", u.Password.Secret) {
		t.Fatalf("current password removed: %s %q", c.Action, c.Detail)
	}
	f.apply(t)
	if got := f.getUser(t, u.Name); len(got.hashes) != 2 {
		t.Errorf("want both passwords, have %d", len(got.hashes))
	}
}

// TestUsersBadRuleFailsPlan: a rule the server rejects fails the plan,
// naming the user and the server's reason, and leaves no scratch user.
func TestUsersBadRuleFailsPlan(t *testing.T) {
	f := newUserFixture(t, "health")
	u := f.addUser("bad", false, "~bad:*", "+nosuchcommand")
	_, err := f.target(t).Plan(context.Background())
	if err == nil {
		t.Fatal("plan with an unknown command succeeded")
	}
	for _, want := range []string{"redis/health: user " + u.Name, "+nosuchcommand", "Unknown command"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if p := f.probeUsers(t); len(p) > 0 {
		t.Errorf("scratch users left: %v", p)
	}
	if got := f.getUser(t, u.Name); got.exists {
		t.Error("plan created the user")
	}
}

// TestUsersMissingSecret: a user whose secret is not resolved fails the
// plan naming the user and the secret.
func TestUsersMissingSecret(t *testing.T) {
	f := newUserFixture(t, "health")
	u := f.addUser("nosecret", false, appRules...)
	delete(f.creds, u.Password.Secret)
	_, err := f.target(t).Plan(context.Background())
	if err == nil || !strings.Contains(err.Error(), "user "+u.Name) || !strings.Contains(err.Error(), u.Password.Secret) {
		t.Fatalf("got %v, want an error naming user and secret", err)
	}
}

// TestUsersLoginCheckFails: verify's login check fails when the password
// the server has is not the source's, naming the user and the secret.
func TestUsersLoginCheckFails(t *testing.T) {
	ctx := context.Background()
	f := newUserFixture(t, "auth")
	u := f.addUser("app", false, appRules...)
	f.apply(t)
	if err := f.admin.Do(ctx, "ACL", "SETUSER", u.Name, "resetpass", ">"+testenv.Unique("other")).Err(); err != nil {
		t.Fatal(err)
	}
	checks, err := f.target(t).Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := find(t, checks, f.res("login", u))
	err = c.Apply(ctx)
	if err == nil || !strings.Contains(err.Error(), "log in as "+u.Name) || !strings.Contains(err.Error(), u.Password.Secret) {
		t.Fatalf("login check: %v", err)
	}
	if strings.Contains(err.Error(), f.password(u)) {
		t.Errorf("error leaks the password: %v", err)
	}
}
