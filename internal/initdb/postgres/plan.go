package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// Plan reads the server (two queries for all roles and databases, one
// round trip more per database that declares extensions, schemas, grants
// or migrations, or where a rotating role's logins need default
// privileges) and returns roles, memberships, the logins' role settings,
// databases, PUBLIC connect revocations, extensions, schemas, the logins'
// default privileges, grants and migrations, in that order. It never
// writes.
func (t *Target) Plan(ctx context.Context) ([]reconcile.Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("plan %s: %w", t.name, err)
	}
	grants, err := normaliseGrants(t.name, t.cfg.Grants)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", t.name, err)
	}
	rots, err := t.rotatingRoles()
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", t.name, err)
	}
	// Secrets first: a missing one fails the plan before it connects.
	passwords, err := t.passwords(rots)
	if err != nil {
		return nil, err
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	conn, err := t.adminConnLocked(ctx)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", t.name, err)
	}
	grants = forServer(grants, serverMajor(conn))
	st, owners, err := t.readLocked(ctx, grants, t.loginsByDatabase(rots, grants))
	if err != nil {
		return nil, err
	}
	if err := t.loadMigratorsLocked(owners); err != nil {
		return nil, err
	}
	if err := t.checkStrategies(st); err != nil {
		return nil, err
	}
	pwPlans, err := planPasswords(ctx, st.roles, passwords)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", t.name, err)
	}

	// The admin's new password first: every later change may open a
	// session, which should log in with it.
	changes := t.planAdminPassword()
	changes = append(changes, t.planRoles(st, rots, pwPlans)...)
	changes = append(changes, t.planMemberships(st, rots)...)
	changes = append(changes, t.planRoleSettings(st, rots)...)
	changes = append(changes, t.planDatabases(st, owners)...)
	changes = append(changes, t.planPublicConnects(st, owners, grants)...)
	changes = append(changes, t.planExtensions(st)...)
	changes = append(changes, t.planSchemas(st)...)
	changes = append(changes, t.planAllLoginDefaults(st, rots, grants)...)
	for i, g := range grants {
		changes = append(changes, t.planGrant(i, g, owners[g.Database], st))
	}
	changes = append(changes, t.planMigrations(st, owners)...)
	return changes, nil
}

// passwords resolves the secret of every role that declares one, by the
// login that holds it: the role, or for a rotating role its current login.
func (t *Target) passwords(rots map[string]rotatingRole) (map[string]credential.Credential, error) {
	out := map[string]credential.Credential{}
	for _, r := range t.cfg.Roles {
		if r.Password == nil || r.Password.Secret == "" {
			continue
		}
		pw, err := t.creds.Get(r.Password.Secret)
		if err != nil {
			return nil, fmt.Errorf("plan %s: password: %w", t.res("role", r.Name), err)
		}
		login := r.Name
		if rr, ok := rots[r.Name]; ok {
			login = rr.current
		}
		out[login] = pw
	}
	return out, nil
}

// readLocked reads every role and database the config mentions, then the
// contents of those that declare something inside or where logins (by
// database) need default privileges, and returns them with the owner of
// each mentioned database. t.mu must be held.
func (t *Target) readLocked(ctx context.Context, grants []grantSpec, logins map[string][]loginOf) (*state, map[string]string, error) {
	roleNames, dbNames := mentioned(t.cfg, grants)
	conn, err := t.adminConnLocked(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("plan %s: %w", t.name, err)
	}
	st, err := t.readState(ctx, conn, roleNames, dbNames)
	if err != nil {
		return nil, nil, fmt.Errorf("plan %s: %w", t.name, wrapCtx(ctx, err))
	}
	declared := declaredDatabases(t.cfg)
	owners := t.owners(declared, st, dbNames)
	if err := t.readDetailsLocked(ctx, st, dbNames, declared, owners, grants, logins); err != nil {
		return nil, nil, err
	}
	return st, owners, nil
}

// owners maps each database in dbNames to the role its default privileges
// are set FOR and its migrations run as: the desired owner of a declared
// database (the admin when none is given), the current owner of any other,
// since the config has no say over an undeclared database's owner.
func (t *Target) owners(declared map[string]*config.PGDatabase, st *state, dbNames []string) map[string]string {
	out := make(map[string]string, len(dbNames))
	for _, db := range dbNames {
		owner := t.cfg.Admin.User
		if d := declared[db]; d != nil {
			if d.Owner != "" {
				owner = d.Owner
			}
		} else if s := st.dbs[db]; s != nil {
			owner = s.owner
		}
		out[db] = owner
	}
	return out
}

// loadMigratorsLocked reads every migration folder now, so that a missing
// one fails the plan rather than a late apply. t.mu must be held.
func (t *Target) loadMigratorsLocked(owners map[string]string) error {
	for _, d := range t.cfg.Databases {
		if d.Migrations == "" {
			continue
		}
		if _, err := t.migratorLocked(d.Name, owners[d.Name], d.Migrations); err != nil {
			return fmt.Errorf("plan %s: %w", t.res("migration", d.Name), err)
		}
	}
	return nil
}

// wrapCtx makes a failure caused by ctx ending wrap ctx's error, whatever
// the driver reported, so callers can test it with errors.Is.
func wrapCtx(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%w)", cerr, err)
	}
	return err
}
