package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// Verify returns one check per login role with a password: log in with it
// (to a database the role owns, else one it is granted CONNECT on, else the
// admin database); for a rotating role, as the login that holds the
// current password. It never writes.
func (t *Target) Verify(ctx context.Context) ([]reconcile.Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("verify %s: %w", t.name, err)
	}
	grants, err := normaliseGrants(t.name, t.cfg.Grants)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", t.name, err)
	}
	rots, err := t.rotatingRoles()
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", t.name, err)
	}
	var checks []reconcile.Change
	for _, r := range t.cfg.Roles {
		if !r.CanLogin() || r.Password == nil || r.Password.Secret == "" {
			continue
		}
		// A rotating role's password is its current login's.
		login := r.Name
		if rr, ok := rots[r.Name]; ok {
			login = rr.current
		}
		res := t.res("login", login)
		pw, err := t.creds.Get(r.Password.Secret)
		if err != nil {
			return nil, fmt.Errorf("verify %s: password: %w", res, err)
		}
		// The database is the declared role's: a login reaches it as a
		// member of the group.
		db := t.loginDatabase(r.Name, grants)
		c := reconcile.Change{Resource: res, Action: reconcile.Check, Detail: "log in to database " + db}
		if r.ConnLimit() == 0 {
			// A role allowed no connections cannot prove its password.
			c.Detail = "connectionLimit 0: login not probed"
		} else {
			c.Apply = t.checkLogin(login, db, pw)
		}
		checks = append(checks, c)
	}
	return checks, nil
}

func (t *Target) loginDatabase(role string, grants []grantSpec) string {
	for _, d := range t.cfg.Databases {
		if d.Owner == role {
			return d.Name
		}
	}
	for _, g := range grants {
		if g.Kind == "database" && g.Role == role && slices.Contains(g.Privileges, "CONNECT") {
			return g.Database
		}
	}
	return t.cfg.Admin.Database
}

// checkLogin logs in as role with its password. Its error names role,
// database and instance; the driver's message carries no password.
func (t *Target) checkLogin(role, db string, pw credential.Credential) func(context.Context) error {
	return func(ctx context.Context) error {
		conn, err := t.dial(ctx, db, role, pw)
		if err != nil {
			return fmt.Errorf("check %s: log in as role %s: %w", t.res("login", role), role, err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		var one int
		if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			return fmt.Errorf("check %s: query as role %s: %w", t.res("login", role), role, err)
		}
		return nil
	}
}
