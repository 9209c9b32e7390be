package redis

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

const (
	// KeyPrefix starts every key the round trip writes; nothing else is
	// ever written.
	KeyPrefix = "bootstrap:check:"
	// KeyTTL bounds how long a round-trip key can outlive a crashed run.
	KeyTTL = 30 * time.Second

	// cannotRead starts the Detail of a check the server will not let us
	// read (CONFIG renamed or denied by ACL; managed services disable it).
	cannotRead = "cannot read: "
)

// Plan returns the checks, in order: auth, ping, roundtrip, then role and
// each expected setting when the config sets them; then a change per
// declared ACL user and a login check per user. It reads the role and the
// settings so the plan shows what apply will find; it writes nothing but
// the scratch user that normalises ACL rules (acl.go), deleted at once.
func (t *Target) Plan(ctx context.Context) ([]reconcile.Change, error) {
	out, err := t.checks(ctx)
	if err != nil {
		return nil, err
	}
	users, err := t.planUsers(ctx)
	if err != nil {
		return nil, err
	}
	return append(append(out, users...), t.loginChecks()...), nil
}

// Verify returns the checks and the users' login checks: the users' state
// itself is the plan's, which verify requires to be all noop.
func (t *Target) Verify(ctx context.Context) ([]reconcile.Change, error) {
	out, err := t.checks(ctx)
	if err != nil {
		return nil, err
	}
	return append(out, t.loginChecks()...), nil
}

func (t *Target) checks(ctx context.Context) ([]reconcile.Change, error) {
	if t.client == nil {
		return nil, fmt.Errorf("%s: not connected", t.name)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: plan: %w", t.name, err)
	}
	auth := "AUTH as " + t.user()
	if t.pw.IsZero() {
		auth = "no password configured (server must allow unauthenticated clients)"
	}
	out := append(t.planPassword(),
		t.check("auth", auth, t.probeAuth),
		t.check("ping", "PING", t.probePing),
		t.check("roundtrip", fmt.Sprintf("SET/GET/DEL of %s* with a %s TTL in db %d", KeyPrefix, KeyTTL, t.cfg.DB), t.probeRoundtrip),
	)
	if want := t.cfg.Expect.Role; want != "" {
		got, why, err := t.readRole(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: read role: %w", t.name, err)
		}
		detail := cannotRead + why
		if why == "" {
			detail = describe(normaliseRole(want), got)
		}
		out = append(out, t.check("role", detail, t.probeRole))
	}
	for _, s := range t.settings() {
		got, why, err := t.readConfig(ctx, s.name)
		if err != nil {
			return nil, fmt.Errorf("%s: read %s: %w", t.name, s.name, err)
		}
		detail := cannotRead + why
		if why == "" {
			detail = describe(s.want, got)
		}
		out = append(out, t.check("config/"+s.name, detail, func(ctx context.Context) error {
			return t.probeSetting(ctx, s)
		}))
	}
	return out, nil
}

func describe(want, got string) string {
	if strings.EqualFold(want, got) {
		return got
	}
	return fmt.Sprintf("expected %s, have %s", want, got)
}

func (t *Target) check(name, detail string, probe func(context.Context) error) reconcile.Change {
	return reconcile.Change{
		Resource: reconcile.Resource(t.name, "check", name),
		Action:   reconcile.Check,
		Detail:   detail,
		Apply: func(ctx context.Context) error {
			if t.client == nil {
				return fmt.Errorf("%s: not connected", t.name)
			}
			return t.scrub(probe(ctx))
		},
	}
}

// probeAuth authenticates a fresh connection, so the check proves the
// credential works now rather than trusting the pooled connection.
func (t *Target) probeAuth(ctx context.Context) error {
	c := goredis.NewClient(t.opts)
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		return t.connectError(ctx, err)
	}
	return nil
}

func (t *Target) probePing(ctx context.Context) error {
	got, err := t.client.Ping(ctx).Result()
	if err != nil {
		return fmt.Errorf("PING: %w", err)
	}
	if got != "PONG" {
		return fmt.Errorf("PING answered %q, expected PONG", got)
	}
	return nil
}

// probeRoundtrip writes a random key with a TTL, reads it back and deletes
// it. Random names let concurrent runs probe the same server safely.
func (t *Target) probeRoundtrip(ctx context.Context) error {
	key, val := KeyPrefix+randomHex(8), randomHex(16)
	if err := t.client.Set(ctx, key, val, KeyTTL).Err(); err != nil {
		if goredis.IsReadOnlyError(err) && isReplica(t.cfg.Expect.Role) {
			// A replica is expected here and cannot take writes: the
			// role check covers it, the round trip has nothing to prove.
			t.log.Info("round trip skipped: read-only replica", "resource", reconcile.Resource(t.name, "check", "roundtrip"))
			return nil
		}
		return fmt.Errorf("SET %s: %w", key, err)
	}
	got, err := t.client.Get(ctx, key).Result()
	if err != nil {
		t.cleanup(ctx, key)
		return fmt.Errorf("GET %s: %w", key, err)
	}
	if got != val {
		t.cleanup(ctx, key)
		return fmt.Errorf("GET %s returned a different value than was SET", key)
	}
	if err := t.client.Del(ctx, key).Err(); err != nil {
		return fmt.Errorf("DEL %s: %w", key, err)
	}
	return nil
}

// cleanup deletes a round-trip key after a failed probe, even when ctx is
// done; the TTL removes it anyway if this fails too.
func (t *Target) cleanup(ctx context.Context, key string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = t.client.Del(cctx, key).Err()
}

func (t *Target) probeRole(ctx context.Context) error {
	want := normaliseRole(t.cfg.Expect.Role)
	got, why, err := t.readRole(ctx)
	if err != nil {
		return fmt.Errorf("read role: %w", err)
	}
	if why != "" {
		return t.unreadable(reconcile.Resource(t.name, "check", "role"), "role "+want, why, "INFO or ROLE (ACL +info or +role)")
	}
	if got != want {
		return fmt.Errorf("role is %s, expected %s", got, want)
	}
	return nil
}

func (t *Target) probeSetting(ctx context.Context, s setting) error {
	got, why, err := t.readConfig(ctx, s.name)
	if err != nil {
		return fmt.Errorf("read %s: %w", s.name, err)
	}
	if why != "" {
		return t.unreadable(reconcile.Resource(t.name, "check", "config", s.name), s.name+" "+s.want, why, "CONFIG GET (ACL +config|get, and CONFIG not renamed)")
	}
	if !strings.EqualFold(got, s.want) {
		return fmt.Errorf("%s is %s, expected %s (bootstrap does not change Redis settings: set it in the server's configuration)", s.name, got, s.want)
	}
	return nil
}

// unreadable is the outcome of an expectation the server will not let us
// check: a failure naming what is missing — verify must not say ok without
// having verified — unless the config allows skipping it.
func (t *Target) unreadable(resource, expected, why, grant string) error {
	if t.cfg.Expect.SkipUnreadable {
		t.log.Warn("expectation not checked (expect.skipUnreadable)", "resource", resource, "expected", expected, "reason", why)
		return nil
	}
	return fmt.Errorf("cannot check %s: %s; allow %s, or set expect.skipUnreadable: true", expected, why, grant)
}

type setting struct{ name, want string }

// settings lists the expected settings in a fixed order.
func (t *Target) settings() []setting {
	var out []setting
	if p := t.cfg.Expect.MaxmemoryPolicy; p != "" {
		out = append(out, setting{"maxmemory-policy", strings.ToLower(p)})
	}
	if a := t.cfg.Expect.Appendonly; a != nil {
		out = append(out, setting{"appendonly", yesNo(*a)})
	}
	return out
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// readConfig returns a setting's value; why says what stopped us when the
// server will not say (CONFIG renamed, disabled or denied by ACL, or the
// setting unknown).
func (t *Target) readConfig(ctx context.Context, name string) (value, why string, err error) {
	m, err := t.client.ConfigGet(ctx, name).Result()
	if err != nil {
		if unavailable(err) {
			return "", fmt.Sprintf("CONFIG GET is not available to user %s (%v)", t.user(), err), nil
		}
		return "", "", err
	}
	v, ok := m[name]
	if !ok {
		return "", fmt.Sprintf("CONFIG GET %s returned nothing (unknown setting, or hidden)", name), nil
	}
	return strings.ToLower(v), "", nil
}

// readRole returns master or replica from INFO replication, falling back to
// ROLE when INFO is hidden; why says what stopped us when neither is
// available.
func (t *Target) readRole(ctx context.Context) (role, why string, err error) {
	info, err := t.client.Info(ctx, "replication").Result()
	if err == nil {
		if r := parseRole(info); r != "" {
			return r, "", nil
		}
	} else if !unavailable(err) {
		return "", "", err
	}
	res, err := t.client.Do(ctx, "ROLE").Slice()
	if err != nil {
		if unavailable(err) {
			return "", fmt.Sprintf("neither INFO replication nor ROLE is available to user %s (%v)", t.user(), err), nil
		}
		return "", "", err
	}
	if len(res) > 0 {
		if s, isStr := res[0].(string); isStr {
			return normaliseRole(s), "", nil
		}
	}
	return "", "ROLE answered without a role", nil
}

// parseRole finds role:... in INFO output, normalised.
func parseRole(info string) string {
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, found := strings.CutPrefix(strings.TrimSpace(sc.Text()), "role:"); found {
			return normaliseRole(v)
		}
	}
	return ""
}

// normaliseRole maps Redis's historical "slave" to "replica".
func normaliseRole(r string) string {
	r = strings.ToLower(strings.TrimSpace(r))
	if r == "slave" {
		return "replica"
	}
	return r
}

func isReplica(r string) bool { return normaliseRole(r) == "replica" }

// unavailable reports whether err means the server will not run the
// command for us: renamed or disabled (unknown command), denied by ACL
// (NOPERM), or refused by a managed service.
func unavailable(err error) bool {
	var rerr goredis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	if goredis.IsPermissionError(err) {
		return true
	}
	msg := strings.ToLower(rerr.Error())
	return strings.Contains(msg, "unknown command") ||
		strings.HasPrefix(msg, "noperm") ||
		strings.Contains(msg, "command disabled") ||
		strings.Contains(msg, "not allowed")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
