package redis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/health-data-ai/bootstrap/internal/credential"
)

// What ACL GETUSER says about a user, and how bootstrap writes one.
//
// Passwords go to the server as "#<sha256 hex>" (ACL SETUSER takes a
// password's hash in place of the password; Redis 6.0 and later), so the
// plaintext never crosses the wire in a command a MONITOR, a slow log, a
// proxy or a command hook could record: it is sent only in AUTH, to prove
// a login. go-redis itself never logs a command's arguments, and its
// process-wide logger is silenced anyway (redis.go).

// probePrefix starts the name of the scratch users plan normalises rules
// with; such a user is off and has no password, so nobody can log in as
// one, and it lives for three round trips.
const probePrefix = "bootstrap-probe-"

// aclUser is what ACL GETUSER says about one user.
type aclUser struct {
	exists bool
	on     bool
	nopass bool
	// hashes are the SHA-256 hex digests of the user's passwords.
	hashes []string
	// rules renders every field but the passwords, and the flags but on,
	// off and nopass, as the server normalised them: two users have the
	// same permissions when their rules are equal.
	rules map[string]string
}

func (u aclUser) hasHash(h string) bool {
	for _, x := range u.hashes {
		if x == h {
			return true
		}
	}
	return false
}

// passwordHash is the hex SHA-256 of a password: how ACL GETUSER shows it
// and how ACL SETUSER takes it after '#' (lower-case hex).
func passwordHash(pw credential.Credential) string {
	sum := sha256.Sum256([]byte(pw.Reveal()))
	return hex.EncodeToString(sum[:])
}

// getUser reads a user with ACL GETUSER; a missing user is not an error.
func getUser(ctx context.Context, c *goredis.Client, name string) (aclUser, error) {
	res, err := c.Do(ctx, "ACL", "GETUSER", name).Slice()
	if errors.Is(err, goredis.Nil) {
		return aclUser{}, nil
	}
	if err != nil {
		return aclUser{}, fmt.Errorf("ACL GETUSER %s: %w", name, err)
	}
	return parseUser(res)
}

// parseUser reads ACL GETUSER's reply: field names and values, in turn.
// Redis 6 answers keys and channels as lists of patterns, Redis 7 as one
// string of rules ("~a:* %R~b:*"), and adds selectors; the rules are
// rendered as they come, since they are only ever compared with another
// user's from the same server.
func parseUser(res []any) (aclUser, error) {
	if len(res)%2 != 0 {
		return aclUser{}, fmt.Errorf("ACL GETUSER: odd reply of %d elements", len(res))
	}
	u := aclUser{exists: true, rules: map[string]string{}}
	for i := 0; i < len(res); i += 2 {
		field, ok := res[i].(string)
		if !ok {
			return aclUser{}, fmt.Errorf("ACL GETUSER: field %d is a %T, not a name", i/2, res[i])
		}
		switch field {
		case "passwords":
			u.hashes = strs(res[i+1])
		case "flags":
			var other []string
			for _, f := range strs(res[i+1]) {
				switch f {
				case "on":
					u.on = true
				case "off":
				case "nopass":
					u.nopass = true
				default:
					other = append(other, f)
				}
			}
			sort.Strings(other)
			u.rules[field] = strings.Join(other, " ")
		default:
			u.rules[field] = render(res[i+1])
		}
	}
	return u, nil
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		out = append(out, render(x))
	}
	return out
}

// render prints a reply value deterministically.
func render(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case nil:
		return ""
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = render(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	default:
		return fmt.Sprint(x)
	}
}

// ruleDiff lists, field by field, how have's rules differ from want's:
// "commands -@all -> +@all -@dangerous".
func ruleDiff(have, want map[string]string) []string {
	fields := map[string]bool{}
	for f := range have {
		fields[f] = true
	}
	for f := range want {
		fields[f] = true
	}
	names := make([]string, 0, len(fields))
	for f := range fields {
		names = append(names, f)
	}
	sort.Strings(names)
	var out []string
	for _, f := range names {
		if have[f] != want[f] {
			out = append(out, fmt.Sprintf("%s %s -> %s", f, quoteEmpty(have[f]), quoteEmpty(want[f])))
		}
	}
	return out
}

func quoteEmpty(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

// normalise returns rules as the server stores them. Redis rewrites rules
// as it applies them (categories and commands merged, "allkeys" for "~*",
// Redis 6 and 7 differently), so the declared list cannot be compared
// with ACL GETUSER's answer as written: it is applied to a scratch user,
// read back and the user deleted. That is the one write plan makes, and
// it leaves nothing behind; it also has the server reject a bad rule at
// plan time. Results are cached per rule list for the target's life.
func (t *Target) normalise(ctx context.Context, rules []string) (map[string]string, error) {
	key := strings.Join(rules, "\x00")
	if r, ok := t.normalised[key]; ok {
		return r, nil
	}
	probe := probePrefix + randomHex(8)
	args := append([]any{"ACL", "SETUSER", probe, "reset"}, anys(rules)...)
	if err := t.client.Do(ctx, args...).Err(); err != nil {
		// A rule the server rejects may still have created the user.
		t.dropProbe(ctx, probe)
		return nil, fmt.Errorf("the server rejects the rules %v: %w", rules, err)
	}
	u, err := getUser(ctx, t.client, probe)
	t.dropProbe(ctx, probe)
	if err != nil {
		return nil, err
	}
	if t.normalised == nil {
		t.normalised = map[string]map[string]string{}
	}
	t.normalised[key] = u.rules
	return u.rules, nil
}

// dropProbe deletes a scratch user, even when ctx is done.
func (t *Target) dropProbe(ctx context.Context, probe string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := t.client.Do(cctx, "ACL", "DELUSER", probe).Err(); err != nil {
		t.log.Warn("could not delete the scratch ACL user (it is off and has no password)", "user", probe, "error", err.Error())
	}
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// setUser runs ACL SETUSER name args...; the error names the user and
// never holds pw or its hash, whatever the server echoes.
func (t *Target) setUser(ctx context.Context, name string, pw credential.Credential, args ...string) error {
	cmd := append([]any{"ACL", "SETUSER", name}, anys(args)...)
	if err := t.client.Do(ctx, cmd...).Err(); err != nil {
		return fmt.Errorf("ACL SETUSER %s: %w", name, redact(err, pw))
	}
	return nil
}

// redact guarantees that neither a password nor its hash leaves in an
// error: Redis echoes a rejected ACL SETUSER argument ("Error in ACL
// SETUSER modifier '#…'").
func redact(err error, pws ...credential.Credential) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, pw := range pws {
		if pw.IsZero() {
			continue
		}
		msg = strings.ReplaceAll(msg, pw.Reveal(), credential.Redacted)
		msg = strings.ReplaceAll(msg, passwordHash(pw), credential.Redacted)
	}
	if msg == err.Error() {
		return err
	}
	return scrubbed{msg: msg, err: err}
}

// login opens a new connection as user with pw (AUTH), PINGs and closes
// it: the proof that the credential works now, not that a pooled
// connection once authenticated.
func (t *Target) login(ctx context.Context, user string, pw credential.Credential) error {
	opts := *t.opts
	opts.PoolSize = 1
	opts.CredentialsProvider = func() (string, string) { return user, pw.Reveal() }
	c := goredis.NewClient(&opts)
	defer c.Close()
	err := c.Ping(ctx).Err()
	if goredis.IsPermissionError(err) {
		// go-redis authenticates a connection before its first command,
		// so a user whose rules leave PING out has logged in when PING
		// is refused with NOPERM.
		err = nil
	}
	if err != nil {
		return fmt.Errorf("log in as %s: %w", user, redact(t.scrub(err), pw))
	}
	return nil
}
