package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// Rotation (DESIGN.md "Rotation"). A role with rotation is a group that
// owns the objects, and its two logins, NAME_a and NAME_b, take turns
// holding its password: while apps use one, the rotation (rotator.go) sets
// a new password on the other, proves it, promotes it, and only after a
// grace retires the first. The plan therefore makes the login the source
// names current able to log in with the current password and never touches
// the other one's LOGIN or password: that belongs to the rotation, and
// undoing it would cut off apps mid-rotation. Each login is a member of the
// group and starts every session as the group (ALTER ROLE ... SET role), so
// what either creates is the group's and usable by both (RESET ROLE
// returns to the group: the setting is the session's default); its default
// privileges give the group what it creates as itself (SET ROLE NONE).

// rotatingRole is a declared role with rotation, its logins and the one of
// them (or, for a value stored before rotation was configured, the declared
// role itself) that holds the current password.
type rotatingRole struct {
	config.PGRole
	ids     [2]string
	current string
}

// rotates reports whether r rotates, as config.Config.Rotating counts it.
func rotates(r config.PGRole) bool {
	return r.Rotation != nil && r.Password != nil && r.Password.Secret != ""
}

// identities are the two logins of a rotating role, as the config names
// them.
func identities(role string) [2]string {
	return config.Rotating{Kind: "postgres", Name: role}.Identities()
}

// rotatingRoles indexes the config's rotating roles by name, each with the
// login the resolved credentials say holds its password now: the username
// stored beside it, or the declared name when there is none (a plain value).
func (t *Target) rotatingRoles() (map[string]rotatingRole, error) {
	out := map[string]rotatingRole{}
	for _, r := range t.cfg.Roles {
		if !rotates(r) {
			continue
		}
		rr := rotatingRole{PGRole: r, ids: identities(r.Name), current: r.Name}
		// A username, not a secret: it names a role in logs and errors.
		if u := t.creds[credential.UsernameKey(r.Password.Secret)]; !u.IsZero() {
			rr.current = u.Reveal()
		}
		if !rr.owns(rr.current) {
			return nil, fmt.Errorf("%s: secret %q says login %q holds its password, which is none of %s, %s, %s",
				t.res("role", r.Name), r.Password.Secret, rr.current, r.Name, rr.ids[0], rr.ids[1])
		}
		out[r.Name] = rr
	}
	return out, nil
}

// owns reports whether username is the role itself or one of its logins.
func (rr rotatingRole) owns(username string) bool {
	return username == rr.Name || username == rr.ids[0] || username == rr.ids[1]
}

// loginOf is a rotating role's login and the group it belongs to.
type loginOf struct{ login, group string }

// rotationDatabases lists the databases where objects a login creates as
// itself need default privileges for the group: those the group owns, owns
// a schema in, or is granted anything in. Default privileges are per
// database, so elsewhere they would do nothing.
func (t *Target) rotationDatabases(group string, grants []grantSpec) []string {
	var out []string
	add := func(db string) {
		if !slices.Contains(out, db) {
			out = append(out, db)
		}
	}
	for _, d := range t.cfg.Databases {
		if d.Owner == group || slices.ContainsFunc(d.Schemas, func(s config.PGSchema) bool { return s.Owner == group }) {
			add(d.Name)
		}
	}
	for _, g := range grants {
		if g.Role == group {
			add(g.Database)
		}
	}
	return out
}

// loginsByDatabase maps each rotation database (rotationDatabases) to the
// logins whose default privileges must be read there.
func (t *Target) loginsByDatabase(rots map[string]rotatingRole, grants []grantSpec) map[string][]loginOf {
	out := map[string][]loginOf{}
	for _, r := range t.cfg.Roles {
		rr, ok := rots[r.Name]
		if !ok {
			continue
		}
		for _, db := range t.rotationDatabases(rr.Name, grants) {
			for _, id := range rr.ids {
				out[db] = append(out[db], loginOf{login: id, group: rr.Name})
			}
		}
	}
	return out
}

// defaultKinds are the objects a login's default privileges cover, with
// pg_default_acl's objtype and acldefault's type for them: enough for the
// group to use the tables, sequences, functions and schemas a login
// creates as itself. ALL is whatever the server's ALL is (MAINTAIN on
// tables from 17): the read compares with acldefault, the owner's ALL.
var defaultKinds = []struct{ name, objType, aclType string }{
	{"tables", "r", "r"},
	{"sequences", "S", "s"},
	{"functions", "f", "f"},
	{"schemas", "n", "n"},
}

// queueLoginDefaults reads, for each login, which defaultKinds its global
// default privileges in this database grant the group in full.
func (d *dbDetail) queueLoginDefaults(b *pgx.Batch, logins []loginOf) {
	var ls, gs, kinds []string
	for _, l := range logins {
		ls, gs = append(ls, l.login), append(gs, l.group)
	}
	for _, k := range defaultKinds {
		kinds = append(kinds, "('"+k.name+"', '"+k.objType+"', '"+k.aclType+"')")
	}
	q := `SELECT p.login, k.name, NOT EXISTS (
	        SELECT a.privilege_type FROM aclexplode(acldefault(k.acl::"char", x.oid)) a WHERE a.grantee = x.oid
	        EXCEPT
	        SELECT e.privilege_type FROM pg_default_acl da, aclexplode(da.defaclacl) e
	        WHERE da.defaclrole = x.oid AND da.defaclnamespace = 0
	          AND da.defaclobjtype = k.obj::"char" AND e.grantee = g.oid)
	      FROM unnest($1::text[], $2::text[]) AS p(login, grp)
	      JOIN pg_roles x ON x.rolname = p.login
	      JOIN pg_roles g ON g.rolname = p.grp
	      CROSS JOIN (VALUES ` + strings.Join(kinds, ", ") + `) AS k(name, obj, acl)`
	b.Queue(q, ls, gs).Query(func(rows pgx.Rows) error {
		var login, kind string
		var full bool
		_, err := pgx.ForEachRow(rows, []any{&login, &kind, &full}, func() error {
			if d.loginDefaults[login] == nil {
				d.loginDefaults[login] = map[string]bool{}
			}
			d.loginDefaults[login][kind] = full
			return nil
		})
		return err
	})
}

// planRotatingRole plans the group and its two logins.
func (t *Target) planRotatingRole(rr rotatingRole, st *state, pws map[string]passwordPlan) []reconcile.Change {
	var out []reconcile.Change
	if rr.current == rr.Name {
		// A value from before rotation was configured: the declared role
		// is still the apps' login, planned as any login role, until the
		// first rotation moves the password to a login.
		out = append(out, t.planRole(rr.PGRole, st.roles[rr.Name], pws[rr.Name]))
	} else {
		out = append(out, t.planGroup(rr, st.roles[rr.Name]))
	}
	for _, id := range rr.ids {
		out = append(out, t.planLogin(rr, id, st.roles[id], pws[id], id == rr.current))
	}
	return out
}

// planGroup creates the group when missing. An existing one keeps its
// LOGIN and password: the declared role was the apps' login before the
// first rotation, and only the rotation, once nobody uses it, retires it.
func (t *Target) planGroup(rr rotatingRole, cur *roleState) reconcile.Change {
	c := reconcile.Change{Resource: t.res("role", rr.Name), Action: reconcile.Noop}
	if cur == nil {
		c.Action = reconcile.Create
		c.Detail = fmt.Sprintf("nologin, group of %s and %s", rr.ids[0], rr.ids[1])
		c.Apply = t.applyCreateRole(rr.Name, roleOptions(false, -1), nil)
	}
	return c
}

// planLogin plans one login: the current one as a login role with the
// current password; the other only exists, NOLOGIN when created, with the
// role's connection limit, since its LOGIN and password are the rotation's.
func (t *Target) planLogin(rr rotatingRole, id string, cur *roleState, pw passwordPlan, current bool) reconcile.Change {
	limit := rr.ConnLimit()
	if current {
		return t.planRole(config.PGRole{Name: id, ConnectionLimit: &limit}, cur, pw)
	}
	c := reconcile.Change{Resource: t.res("role", id), Action: reconcile.Noop}
	switch {
	case cur == nil:
		c.Action = reconcile.Create
		c.Detail = "nologin"
		if limit != -1 {
			c.Detail += fmt.Sprintf(", connectionLimit %d", limit)
		}
		c.Detail += ", standby login of " + rr.Name
		c.Apply = t.applyCreateRole(id, roleOptions(false, limit), nil)
	case cur.connLimit != limit:
		c.Action = reconcile.Update
		c.Detail = fmt.Sprintf("connectionLimit %d -> %d", cur.connLimit, limit)
		c.Apply = t.applyAlterRole(id, fmt.Sprintf("CONNECTION LIMIT %d", limit), nil)
	}
	return c
}

// planRoleSettings makes every login of every rotating role start its
// sessions as the group.
func (t *Target) planRoleSettings(st *state, rots map[string]rotatingRole) []reconcile.Change {
	var out []reconcile.Change
	for _, r := range t.cfg.Roles {
		if rr, ok := rots[r.Name]; ok {
			for _, id := range rr.ids {
				out = append(out, t.planRoleSetting(st, id, rr.Name))
			}
		}
	}
	return out
}

// planRoleSetting is `ALTER ROLE login SET role = group`: the session of a
// login is the group's from the start, so what it creates the group owns,
// and the other login, a member too, can use and alter it.
func (t *Target) planRoleSetting(st *state, login, group string) reconcile.Change {
	c := reconcile.Change{Resource: t.res("roleSetting", login, "role"), Action: reconcile.Noop}
	have, set := "", false
	if s := st.roles[login]; s != nil {
		have, set = s.settings["role"]
	}
	switch {
	case !set:
		c.Action = reconcile.Create
		c.Detail = "set role = " + group + " at login"
	case have != group:
		c.Action = reconcile.Update
		c.Detail = fmt.Sprintf("role %s -> %s", have, group)
	default:
		return c
	}
	res := c.Resource
	c.Apply = func(ctx context.Context) error {
		err := t.withConn(ctx, "", func(conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, "ALTER ROLE "+ident(login)+" SET role = "+literal(group))
			return err
		})
		if err != nil {
			return fmt.Errorf("set %s: %w", res, err)
		}
		return nil
	}
	return c
}

// planAllLoginDefaults plans the default privileges of every login of
// every rotating role in each of its rotation databases.
func (t *Target) planAllLoginDefaults(st *state, rots map[string]rotatingRole, grants []grantSpec) []reconcile.Change {
	var out []reconcile.Change
	for _, r := range t.cfg.Roles {
		rr, ok := rots[r.Name]
		if !ok {
			continue
		}
		for _, db := range t.rotationDatabases(rr.Name, grants) {
			for _, id := range rr.ids {
				out = append(out, t.planLoginDefaults(st, db, id, rr.Name))
			}
		}
	}
	return out
}

// planLoginDefaults grants the group, by default, ALL on what login
// creates in db as itself (after SET ROLE NONE), so the group, and through
// it the other login, can still use it. Only the missing kinds are granted.
func (t *Target) planLoginDefaults(st *state, db, login, group string) reconcile.Change {
	c := reconcile.Change{Resource: t.res("defaultPrivileges", db, login), Action: reconcile.Noop}
	var have map[string]bool
	if det := st.details[db]; det != nil {
		have = det.loginDefaults[login]
	}
	var missing []string
	some := false
	for _, k := range defaultKinds {
		if have[k.name] {
			some = true
		} else {
			missing = append(missing, k.name)
		}
	}
	if len(missing) == 0 {
		return c
	}
	c.Action = reconcile.Update
	if !some {
		c.Action = reconcile.Create
	}
	c.Detail = fmt.Sprintf("grant ALL on %s %s creates to %s", strings.Join(missing, ", "), login, group)
	stmts := make([]string, len(missing))
	for i, k := range missing {
		stmts[i] = "ALTER DEFAULT PRIVILEGES FOR ROLE " + ident(login) + " GRANT ALL ON " + strings.ToUpper(k) + " TO " + ident(group)
	}
	res := c.Resource
	c.Apply = func(ctx context.Context) error {
		err := t.withConn(ctx, db, func(conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, strings.Join(stmts, "; "))
			return err
		})
		if err != nil {
			return fmt.Errorf("grant %s: %w", res, err)
		}
		return nil
	}
	return c
}
