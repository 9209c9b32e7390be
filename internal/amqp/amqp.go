// Package amqp owns RabbitMQ: vhosts, users, permissions, topic
// permissions, exchanges, queues, bindings and policies of the brokers in
// the config, reconciled through the management HTTP API and AMQP 0-9-1.
//
// It reads the broker state in a handful of requests (GET /api/definitions
// and, when needed, /api/vhosts and /api/feature-flags), declares
// exchanges, queues and bindings over AMQP (falling back to the management
// API where the admin user may not open the vhost) and everything else
// through the management API. It never deletes anything, never changes an
// object it was not asked about, never publishes into or consumes from a
// queue, and never sends a password in clear: user passwords travel as
// salted SHA-256 hashes.
package amqp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// declareWorkers is how many AMQP channels (or HTTP requests) declare
// exchanges, queues and bindings at once. The broker runs each channel in
// its own process, so a few in parallel hide the round trips; more only
// queue up behind the broker's schedulers.
const declareWorkers = 8

// Target reconciles one RabbitMQ broker.
type Target struct {
	cfg   config.RabbitMQ
	creds credential.Resolved
	log   *slog.Logger
	name  string

	api *mgmt
	ov  overview
	// tls is the client config of both AMQPS and the management API; nil
	// for plain connections.
	tls *tls.Config
	// stale: the broker takes only the previous admin password (admin.go).
	stale bool

	mu    sync.Mutex
	conns map[string]*amqp091.Connection // admin AMQP connections by vhost
}

var (
	_ reconcile.Target        = (*Target)(nil)
	_ reconcile.Verifier      = (*Target)(nil)
	_ reconcile.WaitDescriber = (*Target)(nil)
)

// New returns the target for one rabbitmq entry of the config.
func New(cfg config.RabbitMQ, creds credential.Resolved, log *slog.Logger) *Target {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	name := cfg.Target()
	return &Target{
		cfg:   cfg,
		creds: creds,
		log:   log.With("target", name),
		name:  name,
		conns: map[string]*amqp091.Connection{},
	}
}

// Name is rabbitmq/INSTANCE.
func (t *Target) Name() string { return t.name }

func (t *Target) amqpAddr() string { return net.JoinHostPort(t.cfg.Host, strconv.Itoa(t.cfg.Port)) }
func (t *Target) mgmtAddr() string {
	return net.JoinHostPort(t.cfg.Host, strconv.Itoa(t.cfg.ManagementPort))
}

// WaitingFor says what Connect waits for.
func (t *Target) WaitingFor() string {
	return fmt.Sprintf("RabbitMQ management API at %s and AMQP at %s", t.mgmtAddr(), t.amqpAddr())
}

// Connect checks that the management API answers and accepts the admin
// user, and that AMQP accepts the same user. Bad credentials are
// Permanent; a server that is not up yet is not.
func (t *Target) Connect(ctx context.Context) error {
	pass, err := t.adminPass()
	if err != nil {
		return reconcile.Permanent(fmt.Errorf("%s: admin password: %w", t.name, err))
	}
	if t.api == nil {
		if t.cfg.TLS.Enabled {
			if t.tls, err = t.cfg.TLS.ClientConfig(t.cfg.Host); err != nil {
				return reconcile.Permanent(fmt.Errorf("%s: %w", t.name, err))
			}
		}
		t.api = newMgmt(t.cfg.Host, t.cfg.ManagementPort, t.tls, t.cfg.User, pass, t.cfg.Timeouts)
	}
	// The AMQP handshake runs while the management API answers: a no-op
	// run is mostly these round trips.
	type dialed struct {
		conn *amqp091.Connection
		err  error
	}
	dctx, cancelDial := context.WithCancel(ctx)
	defer cancelDial()
	dc := make(chan dialed, 1)
	go func() {
		c, err := t.dial(dctx, "/", t.cfg.User, pass)
		dc <- dialed{c, err}
	}()
	var ov overview
	err = t.api.do(ctx, "GET", path("overview")+"?columns=rabbitmq_version,cluster_name,exchange_types", nil, &ov)
	if err != nil {
		// The management API decides; do not wait for a (slow, failed)
		// AMQP login as well.
		cancelDial()
		if d := <-dc; d.conn != nil {
			_ = d.conn.Close()
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: management API at %s: %w", t.name, t.mgmtAddr(), ctx.Err())
		}
		if config.IsCertificateError(err) {
			// The handshake failed, so the Authorization header was never sent.
			return reconcile.Permanent(fmt.Errorf("%s: management API at %s: server certificate not trusted, nothing sent: %w", t.name, t.mgmtAddr(), err))
		}
		if isStatus(err, 401) && !t.stale && t.tryPrevious(ctx) {
			// Once more, as the previous password (admin.go).
			return t.Connect(ctx)
		}
		if isStatus(err, 401) {
			return reconcile.Permanent(fmt.Errorf("%s: management API at %s rejected user %q (401 Unauthorized): check the password in secret %q",
				t.name, t.mgmtAddr(), t.cfg.User, t.cfg.Password.Secret))
		}
		if isStatus(err, 403) {
			return reconcile.Permanent(fmt.Errorf("%s: management API at %s: user %q may not use it (403 Forbidden): it needs the administrator tag",
				t.name, t.mgmtAddr(), t.cfg.User))
		}
		return fmt.Errorf("%s: management API at %s: %w", t.name, t.mgmtAddr(), err)
	}
	t.ov = ov
	d := <-dc
	switch err := d.err; {
	case err == nil:
		t.keep("/", d.conn)
	case ctx.Err() != nil:
		return fmt.Errorf("%s: AMQP at %s: %w", t.name, t.amqpAddr(), ctx.Err())
	case isAMQPCode(err, amqp091.NotAllowed):
		// Logged in, but may not open vhost "/" (or it does not exist):
		// the credentials work, which is what Connect checks.
	case config.IsCertificateError(err):
		return reconcile.Permanent(fmt.Errorf("%s: AMQP at %s: server certificate not trusted, nothing sent: %w", t.name, t.amqpAddr(), err))
	case isAMQPCode(err, amqp091.AccessRefused):
		return reconcile.Permanent(fmt.Errorf("%s: AMQP at %s refused login of user %q: %w", t.name, t.amqpAddr(), t.cfg.User, err))
	default:
		return fmt.Errorf("%s: AMQP at %s: %w", t.name, t.amqpAddr(), err)
	}
	t.log.Debug("connected", "version", ov.RabbitMQVersion)
	return nil
}

// Close closes the AMQP connections and idle HTTP connections.
func (t *Target) Close() error {
	t.mu.Lock()
	conns := t.conns
	t.conns = map[string]*amqp091.Connection{}
	t.mu.Unlock()
	var errs []error
	for vh, c := range conns {
		if err := c.Close(); err != nil && !errors.Is(err, amqp091.ErrClosed) {
			errs = append(errs, fmt.Errorf("close AMQP connection to vhost %s: %w", vh, err))
		}
	}
	if t.api != nil {
		t.api.http.CloseIdleConnections()
	}
	return errors.Join(errs...)
}

// keep caches an admin connection to vhost.
func (t *Target) keep(vhost string, c *amqp091.Connection) {
	t.mu.Lock()
	old := t.conns[vhost]
	t.conns[vhost] = c
	t.mu.Unlock()
	if old != nil && old != c {
		_ = old.Close()
	}
}

// adminConn returns a live admin AMQP connection to vhost, dialling one
// when there is none.
func (t *Target) adminConn(ctx context.Context, vhost string) (*amqp091.Connection, error) {
	t.mu.Lock()
	c := t.conns[vhost]
	t.mu.Unlock()
	if c != nil && !c.IsClosed() {
		return c, nil
	}
	pass, err := t.adminPass()
	if err != nil {
		return nil, err
	}
	c, err = t.dial(ctx, vhost, t.cfg.User, pass)
	if err != nil {
		return nil, err
	}
	t.keep(vhost, c)
	return c, nil
}

// dial opens an AMQP connection as user to vhost. The password goes only
// into the SASL PLAIN response, never into a URL. ctx bounds the TCP
// connect and the handshake.
func (t *Target) dial(ctx context.Context, vhost, user string, pass credential.Credential) (*amqp091.Connection, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	scheme := "amqp"
	if t.tls != nil {
		scheme = "amqps"
	}
	var nc atomic.Pointer[net.Conn]
	props := amqp091.NewConnectionProperties()
	props.SetClientConnectionName("bootstrap")
	cfg := amqp091.Config{
		SASL:       []amqp091.Authentication{&amqp091.PlainAuth{Username: user, Password: pass.Reveal()}},
		Vhost:      vhost,
		Heartbeat:  10 * time.Second,
		Locale:     "en_US",
		Properties: props,
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: t.cfg.Timeouts.Connect.Duration}
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// The handshake gets a deadline; amqp091 clears it once open.
			deadline := time.Now().Add(15 * time.Second)
			if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
				deadline = dl
			}
			_ = c.SetDeadline(deadline)
			nc.Store(&c)
			return c, nil
		},
	}
	if t.tls != nil {
		cfg.TLSClientConfig = t.tls.Clone()
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			if p := nc.Load(); p != nil {
				_ = (*p).SetDeadline(time.Unix(1, 0))
			}
		case <-done:
		}
	}()
	conn, err := amqp091.DialConfig(scheme+"://"+t.amqpAddr()+"/", cfg)
	close(done)
	if ctx.Err() != nil {
		if conn != nil {
			_ = conn.Close()
		}
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	return conn, nil
}

func isAMQPCode(err error, code int) bool {
	var ae *amqp091.Error
	return errors.As(err, &ae) && ae.Code == code
}

// Verify logs in over AMQP as each declared user to each vhost it has
// permissions on; for a rotating user, as the identity that holds the
// current password (the one applications are given).
func (t *Target) Verify(ctx context.Context) ([]reconcile.Change, error) {
	var out []reconcile.Change
	for _, u := range t.cfg.Users {
		name, pass, err := holder(t.creds, u)
		if err != nil {
			name = u.Name // the check reports the error
		}
		for _, p := range u.Permissions {
			vhost := p.VHost
			out = append(out, reconcile.Change{
				Resource: reconcile.Resource(t.name, "login", name, vhost),
				Action:   reconcile.Check,
				Detail:   fmt.Sprintf("log in over AMQP as %s to vhost %s", name, vhost),
				Apply: func(ctx context.Context) error {
					if err != nil {
						return fmt.Errorf("log in as %s to vhost %s: %w", name, vhost, err)
					}
					c, err := t.dial(ctx, vhost, name, pass)
					if err != nil {
						return fmt.Errorf("log in as %s to vhost %s: %w", name, vhost, redactErr(err, pass))
					}
					return c.Close()
				},
			})
		}
	}
	return out, nil
}

// redactErr guarantees a credential never leaves in an error text, whatever
// the library put there.
func redactErr(err error, c credential.Credential) error {
	if err == nil || c.Reveal() == "" || !strings.Contains(err.Error(), c.Reveal()) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), c.Reveal(), credential.Redacted))
}
