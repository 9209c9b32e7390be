package amqp

import (
	"context"
	"fmt"
	"strings"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// Admin rotation. Bitnami's image creates the admin user on first boot
// only, so once the source holds a new password the broker keeps the old
// one: when the source keeps the previous value (file: NAME.previous; OCI
// Vault: PREVIOUS) and the broker takes it, bootstrap logs in with it and
// the plan's first change puts the new password hash on the admin user.

// adminPass is the password every admin request and connection uses: the
// previous value while the broker still takes only that one.
func (t *Target) adminPass() (credential.Credential, error) {
	if t.stale {
		if prev, ok := t.creds.Previous(t.cfg.Password.Secret); ok {
			return prev, nil
		}
	}
	return t.creds.Get(t.cfg.Password.Secret)
}

// tryPrevious is asked after the management API refused the current
// password (401): it reports whether the previous one is accepted, and if
// so switches to it.
func (t *Target) tryPrevious(ctx context.Context) bool {
	prev, ok := t.creds.Previous(t.cfg.Password.Secret)
	if !ok {
		return false
	}
	api := newMgmt(t.cfg.Host, t.cfg.ManagementPort, t.tls, t.cfg.User, prev, t.cfg.Timeouts)
	var ov overview
	if api.do(ctx, "GET", path("overview")+"?columns=rabbitmq_version", nil, &ov) != nil {
		return false
	}
	t.api, t.stale = api, true
	t.log.Warn("the broker still takes the previous admin password; apply sets the new one",
		"resource", t.adminResource(), "secret", t.cfg.Password.Secret)
	return true
}

func (t *Target) adminResource() string { return reconcile.Resource(t.name, "admin", t.cfg.User) }

// planAdminPassword is the rotation change, when one is pending.
func (t *Target) planAdminPassword() []reconcile.Change {
	if !t.stale {
		return nil
	}
	return []reconcile.Change{{
		Resource: t.adminResource(),
		Action:   reconcile.Update,
		Detail:   fmt.Sprintf("the broker takes the previous value of secret %q: put the new password hash on user %s, then log in with it", t.cfg.Password.Secret, t.cfg.User),
		Apply:    t.applyAdminPassword,
	}}
}

// applyAdminPassword puts the new hash on the admin user, keeping its tags,
// over the session authenticated with the previous password; then proves
// the new one on the management API and over AMQP before using it.
func (t *Target) applyAdminPassword(ctx context.Context) error {
	res := t.adminResource()
	pass, err := t.creds.Get(t.cfg.Password.Secret)
	if err != nil {
		return fmt.Errorf("update %s: %w", res, err)
	}
	var cur defUser
	if err := t.api.do(ctx, "GET", path("users", t.cfg.User), nil, &cur); err != nil {
		return fmt.Errorf("update %s: read the user: %w", res, err)
	}
	h, err := hashPassword(pass.Reveal())
	if err != nil {
		return fmt.Errorf("update %s: %w", res, err)
	}
	body := userBody{PasswordHash: h, HashingAlgorithm: hashAlgorithm, Tags: strings.Join(tagList(cur.Tags), ",")}
	if err := t.api.do(ctx, "PUT", path("users", t.cfg.User), body, nil); err != nil {
		return fmt.Errorf("update %s: put the new password hash: %w", res, err)
	}
	api := newMgmt(t.cfg.Host, t.cfg.ManagementPort, t.tls, t.cfg.User, pass, t.cfg.Timeouts)
	var ov overview
	if err := api.do(ctx, "GET", path("overview")+"?columns=rabbitmq_version", nil, &ov); err != nil {
		return fmt.Errorf("update %s: the new password was set but the management API refused it: %w", res, err)
	}
	c, err := t.dial(ctx, "/", t.cfg.User, pass)
	if err != nil && !isAMQPCode(err, amqp091.NotAllowed) { // logged in; vhost "/" closed to it
		return fmt.Errorf("update %s: the new password was set but an AMQP login with it failed: %w", res, redactErr(err, pass))
	}
	if c != nil {
		_ = c.Close()
	}
	t.api.http.CloseIdleConnections()
	t.api, t.stale = api, false
	t.log.Info("admin password rotated on the broker", "resource", res)
	return nil
}
