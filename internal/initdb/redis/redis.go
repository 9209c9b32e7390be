// Package redis verifies a Redis instance and keeps its ACL users: it
// authenticates, pings, round-trips a short-lived key, compares the
// replication role and the settings the config expects, and creates the
// declared ACL users with their rules and passwords (users.go; and the
// server side of their rotation, rotator.go). It never changes the
// server's configuration (Bitnami's chart copies its config at start, so
// CONFIG SET would not survive a restart anyway) except the admin password
// it rotates, never touches an ACL user the config does not declare, never
// flushes, and never touches a key outside bootstrap:check:*, and those
// only for at most 30 seconds.
package redis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// Target is one Redis instance (redis/health, redis/auth).
type Target struct {
	cfg    config.Redis
	creds  credential.Resolved
	log    *slog.Logger
	name   string
	client *goredis.Client
	// opts is kept to open the fresh connection the auth check needs; the
	// password reaches go-redis only through its credentials callback.
	opts *goredis.Options
	pw   credential.Credential
	// stale: the server takes only the previous password (admin.go).
	stale bool
	// normalised caches declared ACL rules as the server normalises
	// them (acl.go), by rule list.
	normalised map[string]map[string]string
}

var (
	_ reconcile.Target        = (*Target)(nil)
	_ reconcile.Verifier      = (*Target)(nil)
	_ reconcile.WaitDescriber = (*Target)(nil)
)

// quietOnce silences go-redis's process-wide logger, which writes straight
// to stderr past our slog handler. Everything it would say about our
// connections (failed dials, handshakes) also comes back to us as an error,
// which is reported with the resource it concerns.
var quietOnce sync.Once

type discard struct{}

func (discard) Printf(context.Context, string, ...any) {}

// New returns the target for one configured Redis instance. It opens no
// connection; Connect does.
func New(cfg config.Redis, creds credential.Resolved, log *slog.Logger) *Target {
	quietOnce.Do(func() { goredis.SetLogger(discard{}) })
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	name := cfg.Target()
	return &Target{cfg: cfg, creds: creds, log: log.With("target", name), name: name}
}

// Name is redis/INSTANCE.
func (t *Target) Name() string { return t.name }

// WaitingFor says what the engine waits for while Connect fails.
func (t *Target) WaitingFor() string {
	if t.cfg.TLS.Enabled {
		return "Redis at " + t.cfg.Address + " (TLS)"
	}
	return "Redis at " + t.cfg.Address
}

// Connect dials, authenticates and pings. A refused connection, a timeout or
// a server still loading its dataset is worth waiting for; a rejected
// password, a missing secret or a TLS failure is Permanent.
func (t *Target) Connect(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: connect to %s: %w", t.name, t.cfg.Address, err)
	}
	if t.client == nil {
		opts, err := t.options()
		if err != nil {
			return reconcile.Permanent(fmt.Errorf("%s: %w", t.name, err))
		}
		t.opts = opts
		t.client = goredis.NewClient(opts)
	}
	if err := t.client.Ping(ctx).Err(); err != nil {
		if t.tryPrevious(ctx, err) {
			return nil
		}
		return t.connectError(ctx, err)
	}
	return nil
}

// Close releases the connection pool.
func (t *Target) Close() error {
	if t.client == nil {
		return nil
	}
	err := t.client.Close()
	t.client = nil
	return err
}

func (t *Target) options() (*goredis.Options, error) {
	if ref := t.cfg.Password; ref != nil && ref.Secret != "" {
		pw, err := t.creds.Get(ref.Secret)
		if err != nil {
			return nil, fmt.Errorf("password: %w", err)
		}
		t.pw = pw
	}
	opts := &goredis.Options{
		Addr: t.cfg.Address,
		DB:   t.cfg.DB,
		// RESP2 works on every Redis and Redis-compatible server, and keeps
		// go-redis from negotiating push-based features we do not use.
		Protocol:                 2,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		// The engine owns waiting and retrying; go-redis should report the
		// first failure instead of retrying behind its back.
		MaxRetries:            -1,
		DialerRetries:         1,
		DialTimeout:           t.cfg.Timeouts.Connect.Duration,
		ReadTimeout:           t.cfg.Timeouts.Request.Duration,
		WriteTimeout:          t.cfg.Timeouts.Request.Duration,
		ContextTimeoutEnabled: true,
		PoolSize:              2,
	}
	if user, pw := t.cfg.Username, t.pw; user != "" || !pw.IsZero() {
		// Revealed only when go-redis authenticates a new connection.
		opts.CredentialsProvider = func() (string, string) { return user, pw.Reveal() }
	}
	if t.cfg.TLS.Enabled {
		host, _, err := net.SplitHostPort(t.cfg.Address)
		if err != nil {
			host = t.cfg.Address
		}
		if opts.TLSConfig, err = t.cfg.TLS.ClientConfig(host); err != nil {
			return nil, err
		}
	}
	return opts, nil
}

// connectError classifies a failed dial+AUTH+PING.
func (t *Target) connectError(ctx context.Context, err error) error {
	err = t.scrub(err)
	at := t.name + " at " + t.cfg.Address
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s: connect to %s%s: %w", t.name, t.cfg.Address, t.tlsHint(err), ctx.Err())
	case goredis.IsAuthError(err) || isAuthMessage(err):
		return reconcile.Permanent(fmt.Errorf("%s: authentication failed%s: %w", at, t.authHint(), err))
	case goredis.IsPermissionError(err):
		return reconcile.Permanent(fmt.Errorf("%s: user %s may not run PING: %w", at, t.user(), err))
	case config.IsCertificateError(err):
		// The handshake failed before AUTH: no password was sent.
		return reconcile.Permanent(fmt.Errorf("%s: server certificate not trusted, nothing sent: %w", at, err))
	case isTLSError(err):
		return reconcile.Permanent(fmt.Errorf("%s: TLS handshake failed (tls on: %v): %w", at, t.cfg.TLS.Enabled, err))
	default:
		// Refused, reset, timeout, LOADING: the server may come up yet.
		return fmt.Errorf("%s: connect to %s%s: %w", t.name, t.cfg.Address, t.tlsHint(err), err)
	}
}

// tlsHint explains the usual cause of a TLS connection that times out: a
// plain-text Redis never answers the TLS ClientHello, so the mismatch looks
// like a slow server instead of failing fast.
func (t *Target) tlsHint(err error) string {
	var ne net.Error
	if t.cfg.TLS.Enabled && (errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()) {
		return " (no answer to the TLS handshake: does this server speak TLS? tls is true)"
	}
	return ""
}

// authHint says which credential to look at, never its value.
func (t *Target) authHint() string {
	if ref := t.cfg.Password; ref != nil && ref.Secret != "" {
		return fmt.Sprintf(" as %s (check secret %q)", t.user(), ref.Secret)
	}
	return " (the server wants a password and the config gives redis " + t.cfg.Name + " none)"
}

func (t *Target) user() string {
	if t.cfg.Username != "" {
		return t.cfg.Username
	}
	return "default"
}

// isAuthMessage catches the authentication errors go-redis does not type:
// a password sent to a server that has none, and pre-6.0 servers.
func isAuthMessage(err error) bool {
	var rerr goredis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	return strings.Contains(msg, "called without any password configured") ||
		strings.Contains(msg, "invalid password") ||
		strings.Contains(msg, "invalid username-password pair")
}

func isTLSError(err error) bool {
	var (
		rh   tls.RecordHeaderError
		alrt tls.AlertError
		ua   x509.UnknownAuthorityError
		he   x509.HostnameError
		ci   x509.CertificateInvalidError
		cv   *tls.CertificateVerificationError
	)
	return errors.As(err, &rh) || errors.As(err, &alrt) || errors.As(err, &ua) ||
		errors.As(err, &he) || errors.As(err, &ci) || errors.As(err, &cv)
}

// scrub guarantees the password never leaves in an error, whatever a
// server or library chose to echo.
func (t *Target) scrub(err error) error {
	if err == nil || t.pw.IsZero() || !strings.Contains(err.Error(), t.pw.Reveal()) {
		return err
	}
	return scrubbed{msg: strings.ReplaceAll(err.Error(), t.pw.Reveal(), credential.Redacted), err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (s scrubbed) Error() string { return s.msg }
func (s scrubbed) Unwrap() error { return s.err }
