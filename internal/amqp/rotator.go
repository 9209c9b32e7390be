package amqp

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/rotate"
)

// Rotator is the broker's side of one rotating user's credential: it puts
// a password on one of the user's two identities, proves it with an AMQP
// login, lists an identity's connections and removes an identity's
// password. It works through the management API as the admin user, with
// the target's client (TLS, timeouts, and the admin's previous password
// while the broker takes only that one).
//
// Which identity holds the current password is read, at each call, from
// the resolved credentials it was given (the NAME/username key, which the
// rotation updates when it promotes): Set refuses to change that
// identity's password and Retire to remove it, so no step can lock the
// applications out.
type Rotator struct {
	t    *Target
	user config.RMQUser
	log  *slog.Logger
	// bad is why the config gives no rotating user of that name; every
	// method returns it (the constructor fits cmd's wiring, which cannot
	// fail: config.Rotating lists only declared rotating users).
	bad error

	mu        sync.Mutex
	connected bool
}

var _ rotate.Server = (*Rotator)(nil)

// NewRotator returns the rotator of the user named user in cfg, which must
// be declared with rotation:. It connects when first used.
func NewRotator(cfg config.RabbitMQ, user string, creds credential.Resolved, log *slog.Logger) *Rotator {
	t := New(cfg, creds, log)
	r := &Rotator{t: t, log: t.log.With("user", user)}
	i := slices.IndexFunc(cfg.Users, func(u config.RMQUser) bool { return u.Name == user })
	switch {
	case i < 0:
		r.bad = fmt.Errorf("%s: user %s is not declared", t.name, user)
	case cfg.Users[i].Rotation == nil:
		r.bad = fmt.Errorf("%s: user %s has no rotation", t.name, user)
	default:
		r.user = cfg.Users[i]
	}
	return r
}

// connect connects the target once; a failed attempt is retried by the
// next call.
func (r *Rotator) connect(ctx context.Context) error {
	if r.bad != nil {
		return r.bad
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.connected {
		return nil
	}
	if err := r.t.Connect(ctx); err != nil {
		return err
	}
	r.connected = true
	return nil
}

// Close closes the admin connections.
func (r *Rotator) Close() error { return r.t.Close() }

func (r *Rotator) resource(username string) string {
	return reconcile.Resource(r.t.name, "user", username)
}

// Set lets username, one of the two identities, log in with password:
// the user is created or updated with that password's hash and the
// declared tags, permissions and topic permissions. A stored hash that
// already verifies is kept. Set refuses the identity that holds the
// current password unless password is that one: a new password goes on
// the other.
func (r *Rotator) Set(ctx context.Context, username string, password credential.Credential) error {
	start := time.Now()
	if r.bad != nil {
		return fmt.Errorf("set the password of user %s: %w", username, r.bad)
	}
	if err := r.settable(username, password); err != nil {
		return fmt.Errorf("set the password of user %s: %w", username, err)
	}
	if err := r.connect(ctx); err != nil {
		return fmt.Errorf("set the password of user %s: %w", username, err)
	}
	action, err := r.set(ctx, username, password)
	if err != nil {
		return fmt.Errorf("set the password of user %s: %w", username, err)
	}
	r.log.Info("password set", "resource", r.resource(username), "action", action, "duration", time.Since(start))
	return nil
}

func (r *Rotator) settable(username string, password credential.Credential) error {
	ids := identities(r.user)
	if username != ids[0] && username != ids[1] {
		return fmt.Errorf("not an identity of rotating user %s (%s, %s)", r.user.Name, ids[0], ids[1])
	}
	cur, pass, err := holder(r.t.creds, r.user)
	if err != nil {
		return err
	}
	if username == cur && !password.Equal(pass) {
		return fmt.Errorf("it holds the current password of secret %q: a new one goes on %s", r.user.Password.Secret, rotating(r.user).Standby(cur))
	}
	return nil
}

// set writes the user when its hash or tags differ, then the permissions
// (one PUT each, idempotent); it returns what it did to the user.
func (r *Rotator) set(ctx context.Context, username string, password credential.Credential) (reconcile.Action, error) {
	cur, exists, err := r.read(ctx, username)
	if err != nil {
		return "", err
	}
	action := reconcile.Update
	if !exists {
		action = reconcile.Create
	}
	want := cleanTags(r.user.Tags)
	body := userBody{PasswordHash: cur.PasswordHash, HashingAlgorithm: algorithmOf(cur), Tags: strings.Join(want, ",")}
	if !exists || !verifyPassword(cur.PasswordHash, cur.HashingAlgorithm, password.Reveal()) {
		if body.PasswordHash, err = hashPassword(password.Reveal()); err != nil {
			return "", fmt.Errorf("hash the password: %w", err)
		}
		body.HashingAlgorithm = hashAlgorithm
	} else if slices.Equal(tagList(cur.Tags), want) {
		action = reconcile.Noop
	}
	if action != reconcile.Noop {
		if err := r.t.putUser(ctx, username, body); err != nil {
			return "", err
		}
	}
	for _, p := range r.user.Permissions {
		if err := r.t.putPermission(ctx, username, p); err != nil {
			return "", err
		}
	}
	for _, p := range r.user.TopicPermissions {
		if err := r.t.putTopicPermission(ctx, username, p); err != nil {
			return "", err
		}
	}
	return action, nil
}

// Prove opens an AMQP connection as username with password to the first
// vhost the user has permissions on, and closes it: what an application
// does. A user declared without permissions is proven on vhost "/", where
// "not allowed" still means the password was taken. The management API
// (GET /api/whoami) is not used: it takes only users with a management
// tag, and an application user usually has none.
func (r *Rotator) Prove(ctx context.Context, username string, password credential.Credential) error {
	if err := r.connect(ctx); err != nil { // the TLS config comes with it
		return fmt.Errorf("prove the password of user %s: %w", username, err)
	}
	vhost, anyVHost := "/", true
	if len(r.user.Permissions) > 0 {
		vhost, anyVHost = r.user.Permissions[0].VHost, false
	}
	c, err := r.t.dial(ctx, vhost, username, password)
	if err != nil && !(anyVHost && isAMQPCode(err, amqp091.NotAllowed)) {
		return fmt.Errorf("prove the password of user %s: AMQP login at %s to vhost %s: %w", username, r.t.amqpAddr(), vhost, redactErr(err, password))
	}
	if c != nil {
		_ = c.Close()
	}
	return nil
}

// connection is the part of GET /api/connections Sessions reads. Client
// properties are whatever the client sent (an empty list for some
// protocols), so they are decoded apart.
type connection struct {
	User             string          `json:"user"`
	PeerHost         any             `json:"peer_host"`
	PeerPort         any             `json:"peer_port"`
	ClientProperties json.RawMessage `json:"client_properties"`
}

// Sessions lists username's connections, one line each: the client's
// address and its connection name (or product). The management API lists
// a connection once its first statistics arrive (collect_statistics_interval,
// 5 s by default), so one opened in the last seconds may be missing.
func (r *Rotator) Sessions(ctx context.Context, username string) ([]string, error) {
	if err := r.connect(ctx); err != nil {
		return nil, fmt.Errorf("list the connections of user %s: %w", username, err)
	}
	var conns []connection
	// The columns keep out the statistics each connection otherwise
	// carries; RabbitMQ before 3.11 cannot filter by user.
	if err := r.t.api.do(ctx, "GET", path("connections")+"?columns=user,peer_host,peer_port,client_properties", nil, &conns); err != nil {
		return nil, fmt.Errorf("list the connections of user %s: %w", username, err)
	}
	var out []string
	for _, c := range conns {
		if c.User == username {
			out = append(out, c.describe())
		}
	}
	sort.Strings(out)
	return out, nil
}

func (c connection) describe() string {
	line := net.JoinHostPort(fmt.Sprint(c.PeerHost), fmt.Sprint(c.PeerPort))
	var props struct {
		ConnectionName string `json:"connection_name"`
		Product        string `json:"product"`
	}
	_ = json.Unmarshal(c.ClientProperties, &props) // a list or nothing: no name
	switch {
	case props.ConnectionName != "":
		line += " " + props.ConnectionName
	case props.Product != "":
		line += " " + props.Product
	}
	return line
}

// Active reports whether username logs in with password: the user exists
// and its stored hash verifies password. It reads the user, never logs in
// (a login would show up as a session of the identity being retired).
func (r *Rotator) Active(ctx context.Context, username string, password credential.Credential) (bool, error) {
	if err := r.connect(ctx); err != nil {
		return false, fmt.Errorf("read user %s: %w", username, err)
	}
	cur, exists, err := r.read(ctx, username)
	if err != nil {
		return false, err
	}
	return exists && verifyPassword(cur.PasswordHash, cur.HashingAlgorithm, password.Reveal()), nil
}

func (r *Rotator) read(ctx context.Context, username string) (defUser, bool, error) {
	var cur defUser
	err := r.t.api.do(ctx, "GET", path("users", username), nil, &cur)
	if isStatus(err, 404) {
		return cur, false, nil
	}
	if err != nil {
		return cur, false, fmt.Errorf("read user %s: %w", username, err)
	}
	return cur, true, nil
}

// Retire removes username's password: PUT with an empty hash, tags as
// they are; permissions stay. RabbitMQ checks a password only at login,
// so the user's open connections go on (tested: they keep publishing,
// with confirms). Retire refuses the identity that holds the current
// password. A user that does not exist, has no password or another one
// than password (Active says false) does not log in with password: that
// is left as it is, the last logged as a warning, since someone else set
// that password and may use it.
func (r *Rotator) Retire(ctx context.Context, username string, password credential.Credential) error {
	start := time.Now()
	if r.bad != nil {
		return fmt.Errorf("retire user %s: %w", username, r.bad)
	}
	if err := r.retirable(username); err != nil {
		return fmt.Errorf("retire user %s: %w", username, err)
	}
	if err := r.connect(ctx); err != nil {
		return fmt.Errorf("retire user %s: %w", username, err)
	}
	cur, exists, err := r.read(ctx, username)
	switch {
	case err != nil:
		return fmt.Errorf("retire user %s: %w", username, err)
	case !exists || cur.PasswordHash == "":
		return nil
	case !verifyPassword(cur.PasswordHash, cur.HashingAlgorithm, password.Reveal()):
		r.log.Warn("not retired: the user has another password than the one being retired (set by hand?); left as is",
			"resource", r.resource(username))
		return nil
	}
	body := userBody{HashingAlgorithm: algorithmOf(cur), Tags: strings.Join(tagList(cur.Tags), ",")}
	if err := r.t.putUser(ctx, username, body); err != nil {
		return fmt.Errorf("retire user %s: %w", username, err)
	}
	r.log.Info("password removed; open connections go on", "resource", r.resource(username), "action", reconcile.Update, "duration", time.Since(start))
	return nil
}

func (r *Rotator) retirable(username string) error {
	ids := identities(r.user)
	if username != ids[0] && username != ids[1] && username != r.user.Name {
		return fmt.Errorf("not an identity of rotating user %s (%s, %s)", r.user.Name, ids[0], ids[1])
	}
	cur, _, err := holder(r.t.creds, r.user)
	if err != nil {
		return err
	}
	if username == cur {
		return fmt.Errorf("it holds the current password of secret %q", r.user.Password.Secret)
	}
	return nil
}
