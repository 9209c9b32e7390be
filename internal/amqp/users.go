package amqp

// Users. A user declared with rotation: is two broker users, NAME_a and
// NAME_b, that take turns holding its credential (DESIGN.md "Rotation").
// The plan keeps both with the declared tags and permissions; only the one
// that holds the current password gets it from the plan. The other's
// password belongs to the rotation (set on it before promotion, removed
// after the grace), so the plan never touches it: a plan that put the
// current password on both, or removed the standby's, would undo a
// rotation in flight.

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// userBody is PUT /api/users/NAME: the whole user. A body without a
// password hash clears the password, so every PUT carries one.
type userBody struct {
	PasswordHash     string `json:"password_hash"`
	HashingAlgorithm string `json:"hashing_algorithm"`
	Tags             string `json:"tags"`
}

// login is one broker user that stands for a declared user.
type login struct {
	name string
	// keep leaves the stored password as it is; otherwise the user must
	// have password.
	keep     bool
	password credential.Credential
}

// rotating is u as config lists it among the rotating credentials: the
// naming of its identities is config's.
func rotating(u config.RMQUser) config.Rotating {
	return config.Rotating{Kind: "rabbitmq", Name: u.Name, Secret: u.Password.Secret}
}

// identities are the two users a rotating user takes turns with.
func identities(u config.RMQUser) [2]string { return rotating(u).Identities() }

// holder returns the user that holds u's current password, and that
// password. For a rotating user the source says who holds it (the
// NAME/username key); a value without one (stored before rotation was
// configured) is the declared name's own.
func holder(creds credential.Resolved, u config.RMQUser) (string, credential.Credential, error) {
	pass, err := creds.Get(u.Password.Secret)
	if err != nil {
		return "", pass, err
	}
	if u.Rotation == nil {
		return u.Name, pass, nil
	}
	name := u.Name
	if c, ok := creds[credential.UsernameKey(u.Password.Secret)]; ok && !c.IsZero() {
		name = c.Reveal()
	}
	if ids := identities(u); name != u.Name && name != ids[0] && name != ids[1] {
		return "", pass, fmt.Errorf("secret %q is held by user %q, which is neither %s nor %s nor %s", u.Password.Secret, name, u.Name, ids[0], ids[1])
	}
	return name, pass, nil
}

// logins lists the broker users that stand for u: u itself, or for a
// rotating user its two identities, preceded by the declared name while
// that still holds the credential or still exists (a first rotation moves
// it to NAME_a and retires NAME later; bootstrap never deletes a user).
func (t *Target) logins(s *state, u config.RMQUser) ([]login, error) {
	cur, pass, err := holder(t.creds, u)
	if err != nil {
		return nil, fmt.Errorf("%s: user %s: %w", t.name, u.Name, err)
	}
	if u.Rotation == nil {
		return []login{{name: u.Name, password: pass}}, nil
	}
	var out []login
	if _, exists := s.users[u.Name]; cur == u.Name || exists {
		out = append(out, login{name: u.Name, keep: cur != u.Name, password: pass})
	}
	for _, id := range identities(u) {
		out = append(out, login{name: id, keep: cur != id, password: pass})
	}
	return out, nil
}

// planLogin is the change for one user: the password (unless kept) and
// the tags. A stored hash that verifies is kept as it is: the password
// counts as changed only when it does not verify, so runs do not rotate
// salts.
func (t *Target) planLogin(s *state, u config.RMQUser, l login) reconcile.Change {
	resource := reconcile.Resource(t.name, "user", l.name)
	want := cleanTags(u.Tags)
	cur, exists := s.users[l.name]
	var diffs []string
	passwordOK := l.keep || exists && verifyPassword(cur.PasswordHash, cur.HashingAlgorithm, l.password.Reveal())
	if exists && !passwordOK {
		diffs = append(diffs, "password changed")
	}
	if exists {
		if have := tagList(cur.Tags); !slices.Equal(have, want) {
			diffs = append(diffs, fmt.Sprintf("tags %s -> %s", showTags(have), showTags(want)))
		}
	}
	detail := "tags " + showTags(want)
	if l.keep {
		detail += fmt.Sprintf(", no password (the rotation of secret %q sets one)", u.Password.Secret)
	}
	return upsert(resource, exists, detail, diffs, func(ctx context.Context) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if l.keep {
			return t.putUserKeepingPassword(ctx, l.name, want)
		}
		if passwordOK {
			return t.putUser(ctx, l.name, userBody{PasswordHash: cur.PasswordHash, HashingAlgorithm: algorithmOf(cur), Tags: strings.Join(want, ",")})
		}
		h, err := hashPassword(l.password.Reveal())
		if err != nil {
			return fmt.Errorf("hash password of user %s: %w", l.name, err)
		}
		return t.putUser(ctx, l.name, userBody{PasswordHash: h, HashingAlgorithm: hashAlgorithm, Tags: strings.Join(want, ",")})
	})
}

// putUserKeepingPassword sets a user's tags and leaves its password as it
// is, creating the user without one when it is missing. PUT /api/users
// sets the whole user and clears the password of a body without one, so
// the stored hash is read back at apply time rather than taken from the
// plan: the rotation may have set a password on the user since.
func (t *Target) putUserKeepingPassword(ctx context.Context, name string, tags []string) error {
	var cur defUser
	if err := t.api.do(ctx, "GET", path("users", name), nil, &cur); err != nil && !isStatus(err, 404) {
		return fmt.Errorf("read user %s: %w", name, err)
	}
	return t.putUser(ctx, name, userBody{PasswordHash: cur.PasswordHash, HashingAlgorithm: algorithmOf(cur), Tags: strings.Join(tags, ",")})
}

// algorithmOf is the hashing algorithm to send back with a user's stored
// hash: the one the server shows, or bootstrap's for a user it does not
// show one for (a hash that verifies then is SHA-256, see verifyPassword).
func algorithmOf(u defUser) string {
	if u.HashingAlgorithm == "" {
		return hashAlgorithm
	}
	return u.HashingAlgorithm
}

func (t *Target) putUser(ctx context.Context, name string, body userBody) error {
	if err := t.api.do(ctx, "PUT", path("users", name), body, nil); err != nil {
		return fmt.Errorf("put user %s: %w", name, err)
	}
	return nil
}
