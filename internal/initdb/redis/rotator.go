package redis

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/rotate"
)

// Rotator is the Redis side of a rotating ACL user's credential
// (DESIGN.md "Rotation"). A Redis user keeps several passwords, so the two
// identities of a rotation are the one user with two passwords during the
// overlap: Set adds the new one beside the old, Retire removes the old.
// It connects as the instance's admin, like the target, on first use.
type Rotator struct {
	t    *Target
	user config.RedisUser
	// declared is false when the config does not declare the user: every
	// method then fails naming it.
	declared bool

	mu        sync.Mutex
	connected bool
}

var _ rotate.Server = (*Rotator)(nil)

// NewRotator returns the server side of the rotating user user of the
// instance cfg. creds is the run's resolved map: the user's secret holds
// its current password there (rotate.Resolve), which Retire refuses to
// remove. It opens no connection.
func NewRotator(cfg config.Redis, user string, creds credential.Resolved, log *slog.Logger) *Rotator {
	r := &Rotator{t: New(cfg, creds, log)}
	for _, u := range cfg.Users {
		if u.Name == user {
			r.user, r.declared = u, true
		}
	}
	if !r.declared {
		r.user.Name = user
	}
	return r
}

// connect opens the admin connection once; it fails with the user named.
func (r *Rotator) connect(ctx context.Context, username string) error {
	if !r.declared || username != r.user.Name {
		return fmt.Errorf("%s: user %s is not declared in redis %s users", r.t.name, username, r.t.cfg.Name)
	}
	if r.connected {
		return nil
	}
	if err := r.t.Connect(ctx); err != nil {
		return err
	}
	r.connected = true
	return nil
}

// Set makes username exist, on, with its declared rules, and adds
// password beside its other passwords (sent as its SHA-256 hash).
func (r *Rotator) Set(ctx context.Context, username string, password credential.Credential) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.connect(ctx, username); err != nil {
		return err
	}
	if err := r.t.ensureUser(ctx, r.user, password, true); err != nil {
		return fmt.Errorf("%s: user %s: add the new password: %w", r.t.name, username, err)
	}
	r.t.log.Info("rotation: password added to the user", "resource", r.t.userResource(username))
	return nil
}

// Prove logs in as username with password on a new connection and PINGs.
func (r *Rotator) Prove(ctx context.Context, username string, password credential.Credential) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.connect(ctx, username); err != nil {
		return err
	}
	if err := r.t.login(ctx, username, password); err != nil {
		return fmt.Errorf("%s: %w", r.t.name, err)
	}
	return nil
}

// Sessions lists username's connections from CLIENT LIST, "ADDR" or
// "ADDR (NAME)" each; nil when there are none. Redis does not record which
// password a connection authenticated with, so these are the user's
// sessions under either password.
func (r *Rotator) Sessions(ctx context.Context, username string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.connect(ctx, username); err != nil {
		return nil, err
	}
	list, err := r.t.client.ClientList(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("%s: sessions of %s: CLIENT LIST: %w", r.t.name, username, err)
	}
	return sessionsOf(list, username), nil
}

// sessionsOf picks username's clients out of CLIENT LIST's lines
// ("id=3 addr=10.0.0.5:51234 … name=worker … user=app …").
func sessionsOf(list, username string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(list))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		f := map[string]string{}
		for _, kv := range strings.Fields(sc.Text()) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				f[k] = v
			}
		}
		if f["user"] != username || f["addr"] == "" {
			continue
		}
		s := f["addr"]
		name := f["name"]
		if name == "" {
			name = f["lib-name"] // Redis 7.2 and later
		}
		if name != "" {
			s += " (" + name + ")"
		}
		out = append(out, s)
	}
	return out
}

// Active reports whether username logs in with password: the user exists,
// is on, and has that password (or none is needed), read with ACL GETUSER
// rather than by logging in.
func (r *Rotator) Active(ctx context.Context, username string, password credential.Credential) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.connect(ctx, username); err != nil {
		return false, err
	}
	u, err := getUser(ctx, r.t.client, username)
	if err != nil {
		return false, fmt.Errorf("%s: user %s: %w", r.t.name, username, redact(err, password))
	}
	return u.exists && u.on && (u.nopass || u.hasHash(passwordHash(password))), nil
}

// Retire removes password from username's passwords (ACL SETUSER NAME
// !<sha256>); connections that authenticated with it stay authenticated,
// new logins with it fail. It refuses to remove the current password, and
// does nothing when the user or the password is already gone.
func (r *Rotator) Retire(ctx context.Context, username string, password credential.Credential) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.connect(ctx, username); err != nil {
		return err
	}
	res := r.t.userResource(username)
	if cur, err := r.t.creds.Get(r.user.Password.Secret); err == nil && cur.Equal(password) {
		return fmt.Errorf("%s: refusing to remove the current password of secret %q", res, r.user.Password.Secret)
	}
	u, err := getUser(ctx, r.t.client, username)
	if err != nil {
		return fmt.Errorf("%s: %w", res, redact(err, password))
	}
	h := passwordHash(password)
	if !u.exists || !u.hasHash(h) {
		return nil
	}
	if err := r.t.setUser(ctx, username, password, "!"+h); err != nil {
		// Another run removed it between the read and the write.
		if strings.Contains(err.Error(), "does not exist") {
			return nil
		}
		return fmt.Errorf("%s: remove the previous password: %w", res, err)
	}
	r.t.log.Info("rotation: previous password removed from the user", "resource", res)
	return nil
}

// Close releases the admin connection.
func (r *Rotator) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.connected = false
	return r.t.Close()
}
