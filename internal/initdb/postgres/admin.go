package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// Admin rotation. Bitnami's image sets the superuser's password on first
// init only, so once the source holds a new one, the server keeps taking
// the old one: bootstrap would deliver the new value to the Secret and then
// fail to log in, run after run. When the source keeps the previous value
// (file: NAME.previous; OCI Vault: the PREVIOUS version) and the server takes
// it, bootstrap logs in with it, and the plan's first change sets the new
// one on the server, then proves a login with it.

// adminPassword is the password every admin session logs in with: the
// previous value while the server still takes only that one.
func (t *Target) adminPassword() (credential.Credential, error) {
	if t.adminStale.Load() {
		if prev, ok := t.creds.Previous(t.cfg.Admin.Password.Secret); ok {
			return prev, nil
		}
	}
	return t.creds.Get(t.cfg.Admin.Password.Secret)
}

// dialAdmin connects as the admin to database; a refused password is
// retried with the previous value of the secret, which, if the server takes
// it, marks the rotation pending.
func (t *Target) dialAdmin(ctx context.Context, database string) (*pgx.Conn, error) {
	pw, err := t.adminPassword()
	if err != nil {
		return nil, reconcile.Permanent(fmt.Errorf("connect %s as %s: admin password: %w", t.name, t.cfg.Admin.User, err))
	}
	conn, err := t.dial(ctx, database, t.cfg.Admin.User, pw)
	if err == nil || sqlState(err) != "28P01" || t.adminStale.Load() {
		return conn, err
	}
	prev, ok := t.creds.Previous(t.cfg.Admin.Password.Secret)
	if !ok {
		return nil, err
	}
	conn, perr := t.dial(ctx, database, t.cfg.Admin.User, prev)
	if perr != nil {
		// Neither value works: the current one's failure says what to fix.
		return nil, err
	}
	t.adminStale.Store(true)
	t.log.Warn("the server still takes the previous admin password; apply sets the new one",
		"resource", t.res("admin", t.cfg.Admin.User), "secret", t.cfg.Admin.Password.Secret)
	return conn, nil
}

// planAdminPassword is the rotation change, when one is pending.
func (t *Target) planAdminPassword() []reconcile.Change {
	if !t.adminStale.Load() {
		return nil
	}
	return []reconcile.Change{{
		Resource: t.res("admin", t.cfg.Admin.User),
		Action:   reconcile.Update,
		Detail:   fmt.Sprintf("the server takes the previous value of secret %q: set the new one (SCRAM verifier), then log in with it", t.cfg.Admin.Password.Secret),
		Apply:    t.applyAdminPassword,
	}}
}

// applyAdminPassword sets the new admin password on the server over the
// session opened with the previous one, then proves a fresh login with the
// new one; only then do later sessions use it.
func (t *Target) applyAdminPassword(ctx context.Context) error {
	res := t.res("admin", t.cfg.Admin.User)
	pw, err := t.creds.Get(t.cfg.Admin.Password.Secret)
	if err != nil {
		return fmt.Errorf("update %s: %w", res, err)
	}
	verifier, err := newSCRAMVerifier(pw.Reveal())
	if err != nil {
		return fmt.Errorf("update %s: %w", res, err)
	}
	err = t.withConn(ctx, "", func(c *pgx.Conn) error {
		return execSecret(ctx, c, "ALTER ROLE "+ident(t.cfg.Admin.User)+" PASSWORD "+literal(verifier))
	})
	if err != nil {
		return fmt.Errorf("update %s: set the new password: %w", res, err)
	}
	probe, err := t.dial(ctx, t.cfg.Admin.Database, t.cfg.Admin.User, pw)
	if err != nil {
		return fmt.Errorf("update %s: the new password was set but a login with it failed: %w", res, err)
	}
	probe.Close(context.Background())
	t.adminStale.Store(false)
	t.log.Info("admin password rotated on the server", "resource", res)
	return nil
}
