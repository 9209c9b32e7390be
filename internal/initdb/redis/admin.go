package redis

import (
	"context"
	"fmt"

	goredis "github.com/redis/go-redis/v9"

	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// Password rotation of the user bootstrap checks as. A Bitnami Redis takes
// its password from the environment at start, so a new value in the source
// is not what the running server knows: when the source keeps the previous
// value (file: NAME.previous; OCI Vault: PREVIOUS) and the server takes it,
// bootstrap logs in with it and the plan's first change sets the new one.

// tryPrevious reconnects with the previous password after the current one
// was refused; it reports whether that worked.
func (t *Target) tryPrevious(ctx context.Context, err error) bool {
	ref := t.cfg.Password
	if ref == nil || !(goredis.IsAuthError(err) || isAuthMessage(err)) {
		return false
	}
	prev, ok := t.creds.Previous(ref.Secret)
	if !ok {
		return false
	}
	opts := *t.opts
	user := t.cfg.Username
	opts.CredentialsProvider = func() (string, string) { return user, prev.Reveal() }
	c := goredis.NewClient(&opts)
	if c.Ping(ctx).Err() != nil {
		_ = c.Close()
		return false
	}
	_ = t.client.Close()
	t.client = c
	t.stale = true
	t.log.Warn("the server still takes the previous password; apply sets the new one",
		"resource", t.adminResource(), "secret", ref.Secret)
	return true
}

func (t *Target) adminResource() string { return reconcile.Resource(t.name, "password", t.user()) }

// planPassword is the rotation change, when one is pending.
func (t *Target) planPassword() []reconcile.Change {
	if !t.stale {
		return nil
	}
	how := "ACL SETUSER " + t.user() + " >new <previous"
	if t.user() == "default" {
		how = "CONFIG SET requirepass (or ACL SETUSER default when CONFIG is unavailable)"
	}
	return []reconcile.Change{{
		Resource: t.adminResource(),
		Action:   reconcile.Update,
		Detail:   fmt.Sprintf("the server takes the previous value of secret %q: %s, then log in with the new one", t.cfg.Password.Secret, how),
		Apply:    t.applyPassword,
	}}
}

// applyPassword sets the new password over the session opened with the
// previous one and proves a fresh login with it before using it. The
// change lives until the server restarts, when Bitnami's image applies the
// Secret bootstrap delivers after this run.
func (t *Target) applyPassword(ctx context.Context) error {
	res := t.adminResource()
	prev, _ := t.creds.Previous(t.cfg.Password.Secret)
	var err error
	if t.user() == "default" {
		err = t.client.ConfigSet(ctx, "requirepass", t.pw.Reveal()).Err()
		if err != nil && unavailable(err) {
			err = t.client.Do(ctx, "ACL", "SETUSER", "default", "resetpass", ">"+t.pw.Reveal()).Err()
		}
	} else {
		err = t.client.Do(ctx, "ACL", "SETUSER", t.user(), ">"+t.pw.Reveal(), "<"+prev.Reveal()).Err()
	}
	if err != nil {
		return fmt.Errorf("update %s: set the new password: %w", res, t.scrub(err))
	}
	c := goredis.NewClient(t.opts)
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		return fmt.Errorf("update %s: the new password was set but a login with it failed: %w", res, t.scrub(err))
	}
	_ = t.client.Close()
	t.client = c
	t.stale = false
	t.log.Info("password rotated on the server", "resource", res)
	return nil
}
