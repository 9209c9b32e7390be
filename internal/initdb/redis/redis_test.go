package redis

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/reconcile/reconciletest"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

const secretName = "redis-test"

func boolp(b bool) *bool { return &b }

// server is what a test needs to build targets and look at the server.
type server struct {
	name, addr, password string
}

func realServer(t *testing.T, instance string) server {
	t.Helper()
	s := testenv.Redis(t, instance)
	return server{name: instance, addr: s.Addr, password: s.Password}
}

func (s server) config(db int) config.Redis {
	return config.Redis{Name: s.name, Address: s.addr, Password: &config.SecretRef{Secret: secretName}, DB: db}
}

func (s server) creds() credential.Resolved {
	return credential.Resolved{secretName: credential.New(s.password)}
}

// admin is a plain client for looking at the server behind the target's back.
func (s server) admin(t testing.TB, db int) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: s.addr, Password: s.password, DB: db, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// testDB spreads tests over the 16 default databases so a leftover key of
// one test is not mistaken for another's.
func testDB() int {
	n, _ := strconv.ParseUint(testenv.Unique("")[:2], 16, 8)
	return int(n % 16)
}

func connect(t *testing.T, tgt *Target) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tgt.Connect(ctx); err != nil {
		t.Fatalf("connect: %v", err)
	}
}

func find(t *testing.T, cs []reconcile.Change, resource string) reconcile.Change {
	t.Helper()
	for _, c := range cs {
		if c.Resource == resource {
			return c
		}
	}
	var names []string
	for _, c := range cs {
		names = append(names, c.Resource)
	}
	t.Fatalf("no change %s in %v", resource, names)
	return reconcile.Change{}
}

func TestConformance(t *testing.T) {
	for _, inst := range []string{"health", "auth"} {
		t.Run(inst, func(t *testing.T) {
			srv := realServer(t, inst)
			reconciletest.Run(t, func(t *testing.T) reconciletest.Env {
				db := testDB()
				admin := srv.admin(t, db)
				cfg := srv.config(db)
				// Expect what the test servers run, so every check passes.
				cfg.Expect = config.RedisExpect{Role: "master", MaxmemoryPolicy: "noeviction", Appendonly: boolp(false)}
				return reconciletest.Env{
					CheckOnly: true,
					NewTarget: func() reconcile.Target { return New(cfg, srv.creds(), nil) },
					Snapshot: func(ctx context.Context) (string, error) {
						return snapshot(ctx, admin)
					},
				}
			})
		})
	}
}

// snapshot renders what the checks could conceivably change: the round-trip
// keys and the expected settings.
func snapshot(ctx context.Context, c *goredis.Client) (string, error) {
	keys, err := c.Keys(ctx, KeyPrefix+"*").Result()
	if err != nil {
		return "", err
	}
	sort.Strings(keys)
	cfg, err := c.ConfigGet(ctx, "*").Result()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("keys=%v maxmemory-policy=%s appendonly=%s", keys, cfg["maxmemory-policy"], cfg["appendonly"]), nil
}

func TestChecksPassAndLeaveNoKey(t *testing.T) {
	srv := realServer(t, "auth")
	db := testDB()
	cfg := srv.config(db)
	cfg.Expect = config.RedisExpect{Role: "master", MaxmemoryPolicy: "NoEviction", Appendonly: boolp(false)}
	tgt := New(cfg, srv.creds(), nil)
	defer tgt.Close()
	connect(t, tgt)
	ctx := context.Background()
	cs, err := tgt.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"auth", "ping", "roundtrip", "role", "config/maxmemory-policy", "config/appendonly"}
	if len(cs) != len(want) {
		t.Fatalf("got %d checks, want %d", len(cs), len(want))
	}
	for i, c := range cs {
		if c.Resource != "redis/auth/check/"+want[i] || c.Action != reconcile.Check {
			t.Errorf("change %d: %s %s, want check redis/auth/check/%s", i, c.Action, c.Resource, want[i])
		}
		if err := c.Apply(ctx); err != nil {
			t.Errorf("%s: %v", c.Resource, err)
		}
	}
	if d := find(t, cs, "redis/auth/check/config/maxmemory-policy").Detail; d != "noeviction" {
		t.Errorf("maxmemory-policy detail %q", d)
	}
	keys, err := srv.admin(t, db).Keys(ctx, KeyPrefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Errorf("round trip left keys behind: %v", keys)
	}
}

func TestOnlyExpectedSettingsAreChecked(t *testing.T) {
	srv := realServer(t, "health")
	tgt := New(srv.config(0), srv.creds(), nil)
	defer tgt.Close()
	connect(t, tgt)
	cs, err := tgt.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cs {
		got = append(got, c.Resource)
	}
	want := "redis/health/check/auth redis/health/check/ping redis/health/check/roundtrip"
	if strings.Join(got, " ") != want {
		t.Errorf("checks %v, want %s", got, want)
	}
}

func TestWrongPasswordIsPermanent(t *testing.T) {
	srv := realServer(t, "auth")
	wrong := "wrong-" + testenv.Unique("pw")
	tgt := New(srv.config(0), credential.Resolved{secretName: credential.New(wrong)}, nil)
	defer tgt.Close()
	err := tgt.Connect(context.Background())
	if err == nil {
		t.Fatal("connect with a wrong password succeeded")
	}
	if !reconcile.IsPermanent(err) {
		t.Errorf("not permanent: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"redis/auth", srv.addr, "authentication failed", secretName} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not name %q", msg, want)
		}
	}
	if strings.Contains(msg, wrong) || strings.Contains(msg, srv.password) {
		t.Errorf("error leaks a password: %q", msg)
	}
}

func TestNoPasswordIsPermanent(t *testing.T) {
	srv := realServer(t, "auth")
	cfg := srv.config(0)
	cfg.Password = nil
	tgt := New(cfg, nil, nil)
	defer tgt.Close()
	err := tgt.Connect(context.Background())
	if err == nil || !reconcile.IsPermanent(err) {
		t.Fatalf("want a permanent error, got %v", err)
	}
	if !strings.Contains(err.Error(), "the server wants a password") {
		t.Errorf("error does not say the password is missing: %v", err)
	}
}

func TestMissingSecretIsPermanent(t *testing.T) {
	srv := realServer(t, "auth")
	tgt := New(srv.config(0), credential.Resolved{}, nil)
	defer tgt.Close()
	err := tgt.Connect(context.Background())
	if err == nil || !reconcile.IsPermanent(err) || !strings.Contains(err.Error(), secretName) {
		t.Fatalf("want a permanent error naming the secret, got %v", err)
	}
}

func TestRefusedIsRetryable(t *testing.T) {
	addr := freeAddr(t)
	cfg := config.Redis{Name: "gone", Address: addr}
	tgt := New(cfg, nil, nil)
	defer tgt.Close()
	err := tgt.Connect(context.Background())
	if err == nil {
		t.Fatal("connect to a closed port succeeded")
	}
	if reconcile.IsPermanent(err) {
		t.Errorf("refused connection is permanent: %v", err)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error does not name %s: %v", addr, err)
	}
	if w := tgt.WaitingFor(); w != "Redis at "+addr {
		t.Errorf("WaitingFor %q", w)
	}
}

// TestTLSAgainstPlainServer: a plain-text Redis never answers a TLS
// ClientHello, so the handshake times out (retryable, as the server cannot
// be told from a slow one) with an error that points at the likely cause.
func TestTLSAgainstPlainServer(t *testing.T) {
	srv := realServer(t, "health")
	cfg := srv.config(0)
	cfg.TLS = config.TLS{Enabled: true}
	tgt := New(cfg, srv.creds(), nil)
	defer tgt.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := tgt.Connect(ctx)
	if err == nil {
		t.Fatal("TLS connect to a plain-text server succeeded")
	}
	if !strings.Contains(err.Error(), "does this server speak TLS?") {
		t.Errorf("error gives no TLS hint: %v", err)
	}
	if strings.Contains(err.Error(), srv.password) {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestExpectationMismatch(t *testing.T) {
	srv := realServer(t, "health")
	for _, tc := range []struct {
		name     string
		expect   config.RedisExpect
		resource string
		want     []string
	}{
		{"role", config.RedisExpect{Role: "slave"}, "role", []string{"role", "master", "replica"}},
		{"maxmemory-policy", config.RedisExpect{MaxmemoryPolicy: "allkeys-lru"}, "config/maxmemory-policy", []string{"maxmemory-policy", "allkeys-lru", "noeviction"}},
		{"appendonly", config.RedisExpect{Appendonly: boolp(true)}, "config/appendonly", []string{"appendonly", "yes", "no"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := srv.config(0)
			cfg.Expect = tc.expect
			tgt := New(cfg, srv.creds(), nil)
			defer tgt.Close()
			connect(t, tgt)
			cs, err := tgt.Plan(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			c := find(t, cs, "redis/health/check/"+tc.resource)
			if c.Drift != "" {
				t.Errorf("check carries drift %q; mismatches fail in apply", c.Drift)
			}
			if !strings.Contains(c.Detail, "expected") {
				t.Errorf("plan detail %q does not show the mismatch", c.Detail)
			}
			err = c.Apply(context.Background())
			if err == nil {
				t.Fatal("mismatched expectation passed")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

// logBuffer collects log lines from the target.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestConfigRenamed runs a Redis of its own with CONFIG and INFO renamed
// away, as hardened servers do: an expected setting it will not show is a
// failed check saying what is missing (verify must not say ok without having
// verified), unless expect.skipUnreadable makes it a warning.
func TestConfigRenamed(t *testing.T) {
	srv := privateServer(t, `rename-command CONFIG ""`, `rename-command INFO ""`)
	for _, skip := range []bool{false, true} {
		var logs logBuffer
		cfg := srv.config(0)
		cfg.Expect = config.RedisExpect{Role: "master", MaxmemoryPolicy: "allkeys-lru", Appendonly: boolp(true), SkipUnreadable: skip}
		tgt := New(cfg, srv.creds(), slog.New(slog.NewTextHandler(&logs, nil)))
		connect(t, tgt)
		cs, err := tgt.Plan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		failed := map[string]string{}
		for _, c := range cs {
			if err := c.Apply(context.Background()); err != nil {
				failed[c.Resource] = err.Error()
			}
		}
		tgt.Close()
		for _, r := range []string{"config/maxmemory-policy", "config/appendonly"} {
			res := "redis/private/check/" + r
			if d := find(t, cs, res).Detail; !strings.HasPrefix(d, cannotRead+"CONFIG GET is not available") {
				t.Errorf("%s detail %q: want it to say CONFIG GET is not available", r, d)
			}
			switch msg := failed[res]; {
			case skip && msg != "":
				t.Errorf("skipUnreadable: %s failed: %s", r, msg)
			case !skip && !strings.Contains(msg, "cannot check") || !skip && !strings.Contains(msg, "+config|get"):
				t.Errorf("%s: failure %q: want a failed check naming the missing permission", r, msg)
			}
		}
		if skip && !strings.Contains(logs.String(), "expectation not checked") {
			t.Errorf("skipUnreadable: no warning says the settings were not checked:\n%s", logs.String())
		}
		// INFO is gone too: the role comes from ROLE, and is checked.
		if d := find(t, cs, "redis/private/check/role").Detail; d != "master" || failed["redis/private/check/role"] != "" {
			t.Errorf("role detail %q, failure %q: want master read through ROLE", d, failed["redis/private/check/role"])
		}
		if strings.Contains(logs.String(), srv.password) {
			t.Error("log leaks the password")
		}
	}
}

// TestACLUser checks as a named ACL user that may not run CONFIG, INFO or
// ROLE and may only touch the round-trip keys: auth and the round trip pass;
// the role and the settings fail, naming what the user lacks.
func TestACLUser(t *testing.T) {
	srv := realServer(t, "auth")
	ctx := context.Background()
	admin := srv.admin(t, 0)
	user, pw := testenv.Unique("bootstrapcheck"), testenv.Unique("pw")
	if err := admin.Do(ctx, "ACL", "SETUSER", user, "on", ">"+pw, "~"+KeyPrefix+"*", "+@all", "-config", "-info", "-role").Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	t.Cleanup(func() { admin.Do(context.Background(), "ACL", "DELUSER", user) })

	cfg := srv.config(0)
	cfg.Username = user
	cfg.Expect = config.RedisExpect{Role: "master", MaxmemoryPolicy: "noeviction"}
	var logs logBuffer
	tgt := New(cfg, credential.Resolved{secretName: credential.New(pw)}, slog.New(slog.NewTextHandler(&logs, nil)))
	defer tgt.Close()
	connect(t, tgt)
	cs, err := tgt.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := find(t, cs, "redis/auth/check/auth").Detail; d != "AUTH as "+user {
		t.Errorf("auth detail %q", d)
	}
	for _, c := range cs {
		err := c.Apply(ctx)
		switch c.Resource {
		case "redis/auth/check/role", "redis/auth/check/config/maxmemory-policy":
			if err == nil || !strings.Contains(err.Error(), "available to user "+user) || !strings.Contains(err.Error(), "NOPERM") {
				t.Errorf("%s: got %v, want a failure naming user %s and the NOPERM answer", c.Resource, err, user)
			}
		default:
			if err != nil {
				t.Errorf("%s: %v", c.Resource, err)
			}
		}
	}
	if strings.Contains(logs.String(), pw) {
		t.Error("log leaks the password")
	}

	// The same user with a wrong password: permanent, named, not leaked.
	bad := New(cfg, credential.Resolved{secretName: credential.New(pw + "x")}, nil)
	defer bad.Close()
	err = bad.Connect(ctx)
	if err == nil || !reconcile.IsPermanent(err) || !strings.Contains(err.Error(), "as "+user) {
		t.Fatalf("want a permanent error naming user %s, got %v", user, err)
	}
	if strings.Contains(err.Error(), pw) {
		t.Errorf("error leaks the password: %v", err)
	}
}

// TestAuthCheckSeesRotation shows the auth check opens a fresh connection:
// once the password changes under a connected target, the pooled connection
// still answers PING but the auth check fails.
func TestAuthCheckSeesRotation(t *testing.T) {
	srv := realServer(t, "auth")
	ctx := context.Background()
	admin := srv.admin(t, 0)
	user, pw := testenv.Unique("bootstraprot"), testenv.Unique("pw")
	if err := admin.Do(ctx, "ACL", "SETUSER", user, "on", ">"+pw, "~"+KeyPrefix+"*", "+@all").Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	t.Cleanup(func() { admin.Do(context.Background(), "ACL", "DELUSER", user) })
	cfg := srv.config(0)
	cfg.Username = user
	tgt := New(cfg, credential.Resolved{secretName: credential.New(pw)}, nil)
	defer tgt.Close()
	connect(t, tgt)
	cs, err := tgt.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, "ACL", "SETUSER", user, "resetpass", ">"+pw+"new").Err(); err != nil {
		t.Fatal(err)
	}
	if err := find(t, cs, "redis/auth/check/ping").Apply(ctx); err != nil {
		t.Errorf("ping on the pooled connection: %v", err)
	}
	err = find(t, cs, "redis/auth/check/auth").Apply(ctx)
	if err == nil {
		t.Fatal("auth check passed after the password changed")
	}
	if strings.Contains(err.Error(), pw) {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestCancelledCheck(t *testing.T) {
	srv := realServer(t, "health")
	tgt := New(srv.config(0), srv.creds(), nil)
	defer tgt.Close()
	connect(t, tgt)
	cs, err := tgt.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := find(t, cs, "redis/health/check/roundtrip").Apply(ctx); err == nil {
		t.Error("round trip with a cancelled context succeeded")
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// privateServer starts a throwaway redis-server with extra config lines,
// configured through stdin so its password is not in a process listing.
func privateServer(t *testing.T, extra ...string) server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		testenv.Missing(t, "redis-server")
	}
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	pw := testenv.Unique("pw")
	conf := strings.Join(append([]string{
		"port " + port, "bind 127.0.0.1", "requirepass " + pw, "dir " + t.TempDir(),
		`save ""`, "appendonly no", "daemonize no", "logfile \"\"",
	}, extra...), "\n") + "\n"
	cmd := exec.Command(bin, "-")
	cmd.Stdin = strings.NewReader(conf)
	var out logBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	s := server{name: "private", addr: addr, password: pw}
	c := goredis.NewClient(&goredis.Options{Addr: addr, Password: pw, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("private redis-server on %s did not answer:\n%s", addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}
