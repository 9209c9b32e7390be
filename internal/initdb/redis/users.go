package redis

import (
	"context"
	"fmt"
	"strings"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// ACL users (redis[].users): each is a change redis/INSTANCE/user/NAME
// that creates it or brings its rules and password back to the config,
// and a check redis/INSTANCE/login/NAME that logs in as it.
//
// Redis keeps ACL users in memory only, unless the server loads an aclfile
// (Bitnami's chart configures none): after a restart they are gone, and
// `serve` creates them again at its next interval (as apply does). A
// rotating user's previous password, kept for the grace, is not recreated:
// a client still using it after a restart must take the delivered one.
// ACL users are not replicated either: they are made on the address the
// config names.

// userResource is redis/INSTANCE/user/NAME.
func (t *Target) userResource(name string) string { return reconcile.Resource(t.name, "user", name) }

// userPassword is the user's current password: for a rotating user the
// current login's password, which rotate.Resolve put under the secret's
// name.
func (t *Target) userPassword(u config.RedisUser) (credential.Credential, error) {
	pw, err := t.creds.Get(u.Password.Secret)
	if err != nil {
		return credential.Credential{}, fmt.Errorf("%s: user %s: password: %w", t.name, u.Name, err)
	}
	return pw, nil
}

// planUsers returns one change per declared user, in config order.
func (t *Target) planUsers(ctx context.Context) ([]reconcile.Change, error) {
	var out []reconcile.Change
	for _, u := range t.cfg.Users {
		c, err := t.planUser(ctx, u)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (t *Target) planUser(ctx context.Context, u config.RedisUser) (reconcile.Change, error) {
	pw, err := t.userPassword(u)
	if err != nil {
		return reconcile.Change{}, err
	}
	fail := func(err error) (reconcile.Change, error) {
		if unavailable(err) {
			err = fmt.Errorf("%w (ACL users need Redis 6 or later and an admin allowed ACL GETUSER, SETUSER and DELUSER)", err)
		}
		return reconcile.Change{}, fmt.Errorf("%s: user %s: %w", t.name, u.Name, redact(err, pw))
	}
	want, err := t.normalise(ctx, u.Rules)
	if err != nil {
		return fail(err)
	}
	have, err := getUser(ctx, t.client, u.Name)
	if err != nil {
		return fail(err)
	}
	res := t.userResource(u.Name)
	c := reconcile.Change{Resource: res, Group: res}
	switch diffs := userDiff(have, want, passwordHash(pw), u); {
	case !have.exists:
		c.Action = reconcile.Create
		c.Detail = fmt.Sprintf("ACL SETUSER %s on, rules %v, the password of secret %q", u.Name, u.Rules, u.Password.Secret)
	case len(diffs) == 0:
		c.Action = reconcile.Noop
		return c, nil
	default:
		c.Action = reconcile.Update
		c.Detail = strings.Join(diffs, "; ")
	}
	c.Apply = func(ctx context.Context) error {
		if err := t.ensureUser(ctx, u, pw, u.Rotation != nil); err != nil {
			return fmt.Errorf("%s %s: %w", c.Action, res, err)
		}
		return nil
	}
	return c, nil
}

// userDiff lists what differs between a user and the config: the rules
// (as normalised by the server), on, and the passwords. A user that does
// not rotate has exactly its secret's password; a rotating one has at
// least the current one, and the others are the rotation's to remove.
func userDiff(have aclUser, want map[string]string, hash string, u config.RedisUser) []string {
	if !have.exists {
		return nil
	}
	var out []string
	if d := ruleDiff(have.rules, want); len(d) > 0 {
		out = append(out, "rules: "+strings.Join(d, ", "))
	}
	if !have.on {
		out = append(out, "off -> on")
	}
	secret := u.Password.Secret
	switch {
	case have.nopass:
		out = append(out, fmt.Sprintf("nopass -> the password of secret %q", secret))
	case !have.hasHash(hash):
		out = append(out, fmt.Sprintf("password -> the value of secret %q", secret))
	case u.Rotation == nil && len(have.hashes) > 1:
		out = append(out, fmt.Sprintf("%d passwords -> 1 (secret %q)", len(have.hashes), secret))
	}
	return out
}

// ensureUser makes u exist, on, with the declared rules and pw among its
// passwords. additive (a rotating user) keeps its other passwords: when
// only the password is missing it is added alone, with nothing reset, so
// a password another run has just added is never lost; when the rules
// differ, the user is reset with its other passwords' hashes put back in
// the same command. Otherwise pw becomes its only password. One ACL
// SETUSER each time, so no client ever sees the user half set.
func (t *Target) ensureUser(ctx context.Context, u config.RedisUser, pw credential.Credential, additive bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h := passwordHash(pw)
	var keep []string
	if additive {
		have, err := getUser(ctx, t.client, u.Name)
		if err != nil {
			return redact(err, pw)
		}
		if have.exists {
			want, err := t.normalise(ctx, u.Rules)
			if err != nil {
				return redact(err, pw)
			}
			if len(ruleDiff(have.rules, want)) == 0 {
				// Adding a password also clears nopass.
				return t.setUser(ctx, u.Name, pw, "on", "#"+h)
			}
			keep = have.hashes
		}
	}
	args := []string{"reset", "on"}
	for _, k := range keep {
		if k != h {
			args = append(args, "#"+k)
		}
	}
	args = append(args, "#"+h)
	return t.setUser(ctx, u.Name, pw, append(args, u.Rules...)...)
}

// loginChecks log in as each declared user with its current password.
func (t *Target) loginChecks() []reconcile.Change {
	var out []reconcile.Change
	for _, u := range t.cfg.Users {
		out = append(out, reconcile.Change{
			Resource: reconcile.Resource(t.name, "login", u.Name),
			Action:   reconcile.Check,
			Detail:   fmt.Sprintf("AUTH as %s with the password of secret %q on a new connection", u.Name, u.Password.Secret),
			Apply: func(ctx context.Context) error {
				if t.client == nil {
					return fmt.Errorf("%s: not connected", t.name)
				}
				pw, err := t.userPassword(u)
				if err != nil {
					return err
				}
				if err := t.login(ctx, u.Name, pw); err != nil {
					return fmt.Errorf("%s (secret %q): %w", t.name, u.Password.Secret, err)
				}
				return nil
			},
		})
	}
	return out
}
