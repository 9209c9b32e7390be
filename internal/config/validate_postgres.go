package config

import (
	"fmt"
	"slices"
	"strings"
)

// Privileges accepted per grant target (upper case; ALL expands per type).
var privileges = map[string][]string{
	"database":  {"ALL", "CONNECT", "CREATE", "TEMPORARY", "TEMP"},
	"schema":    {"ALL", "USAGE", "CREATE"},
	"tables":    {"ALL", "SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"},
	"sequences": {"ALL", "USAGE", "SELECT", "UPDATE"},
}

// pgScope is what one PostgreSQL instance declares, so that owners,
// memberships and grants can be checked against it: bootstrap creates only
// what is declared, and a reference to anything else would fail mid-apply.
type pgScope struct {
	path      string                // the instance's path, named in problems
	roles     map[string]bool       // the declared roles and the admin user
	databases map[string]PGDatabase // the declared databases with valid names
}

func (v *validator) postgres() {
	instances := seen{}
	for i, pg := range v.c.Postgres {
		p := v.instance("postgres", i, pg.Name, instances)
		v.pgServer(p, pg)
		sc := &pgScope{path: p, roles: v.pgRoleNames(p, pg), databases: map[string]PGDatabase{}}
		for j, r := range pg.Roles {
			v.pgRole(sc, fmt.Sprintf("%s.roles[%d]", p, j), r)
		}
		ds := seen{}
		for j, db := range pg.Databases {
			v.pgDatabase(sc, fmt.Sprintf("%s.databases[%d]", p, j), db, ds)
		}
		gs := seen{}
		for j, g := range pg.Grants {
			v.pgGrant(sc, fmt.Sprintf("%s.grants[%d]", p, j), g, gs)
		}
	}
}

// pgServer checks how bootstrap connects to the instance.
func (v *validator) pgServer(p string, pg Postgres) {
	v.host(p+".host", pg.Host)
	v.port(p+".port", pg.Port)
	v.enum(p+".sslmode", pg.SSLMode, "disable", "prefer", "require", "verify-full")
	v.tls(p, pg.TLS, true, pg.SSLMode)
	v.pgName(p+".admin.user", pg.Admin.User)
	v.pgName(p+".admin.database", pg.Admin.Database)
	v.ref(p+".admin.password", pg.Admin.Password, true)
}

// pgRoleNames checks the role names and returns every role a reference may
// name. It runs before the other role checks because inRoles may name a
// role declared further down.
func (v *validator) pgRoleNames(p string, pg Postgres) map[string]bool {
	roles := map[string]bool{pg.Admin.User: true}
	rs := seen{}
	for j, r := range pg.Roles {
		rp := fmt.Sprintf("%s.roles[%d]", p, j)
		if !v.pgName(rp+".name", r.Name) {
			continue
		}
		switch {
		case strings.HasPrefix(r.Name, "pg_"):
			v.add(rp+".name", "role names starting with pg_ are reserved by PostgreSQL")
		case r.Name == pg.Admin.User:
			v.add(rp+".name", "%q is the admin user, which bootstrap connects as and does not manage", r.Name)
		default:
			v.dup(rs, r.Name, rp+".name", "role")
		}
		roles[r.Name] = true
	}
	return roles
}

// pgRole checks a role's attributes and memberships.
func (v *validator) pgRole(sc *pgScope, rp string, r PGRole) {
	if r.Password != nil {
		v.ref(rp+".password", *r.Password, false)
	}
	if r.CanLogin() && (r.Password == nil || r.Password.Secret == "" && !r.Password.Inline) {
		v.add(rp+".password", "is required for a login role: {secret: NAME} (or set login: false)")
	}
	if r.Rotation != nil {
		v.rotation(rp+".rotation", r.Rotation)
		if !r.CanLogin() {
			v.add(rp+".rotation", "rotates a login role's password; this role has login: false")
		}
		for _, id := range []string{r.Name + "_a", r.Name + "_b"} {
			if len(id) > 63 {
				v.add(rp+".name", "with rotation the login roles %s_a and %s_b must fit PostgreSQL's 63 bytes: at most 61 bytes, got %d", r.Name, r.Name, len(r.Name))
				break
			}
			if sc.roles[id] {
				v.add(rp+".rotation", "its login role %q is declared as a role of its own", id)
			}
		}
	}
	if r.ConnLimit() < -1 {
		v.add(rp+".connectionLimit", "must be -1 (unlimited) or more, got %d", r.ConnLimit())
	}
	for k, in := range r.InRoles {
		ip := fmt.Sprintf("%s.inRoles[%d]", rp, k)
		switch {
		case in == r.Name:
			v.add(ip, "a role cannot be a member of itself")
		case strings.HasPrefix(in, "pg_") && pgNameRe.MatchString(in):
			// predefined roles (pg_read_all_data, ...) exist on every server
		case !sc.roles[in]:
			v.add(ip, "role %q is not declared in %s.roles", in, sc.path)
		}
	}
}

// pgDatabase checks a database, its extensions and its schemas, and records
// it in sc for the grants.
func (v *validator) pgDatabase(sc *pgScope, dp string, db PGDatabase, ds seen) {
	if v.pgName(dp+".name", db.Name) {
		if db.Name == "template0" || db.Name == "template1" {
			v.add(dp+".name", "%q is a template database and cannot be managed", db.Name)
		}
		v.dup(ds, db.Name, dp+".name", "database")
		sc.databases[db.Name] = db
	}
	v.pgOwner(sc, dp+".owner", db.Owner)
	if db.Strategy != "" && db.Strategy != "wal_log" && db.Strategy != "file_copy" {
		v.add(dp+".strategy", "must be wal_log or file_copy, got %q", db.Strategy)
	}
	es := seen{}
	for k, e := range db.Extensions {
		ep := fmt.Sprintf("%s.extensions[%d]", dp, k)
		if v.pgName(ep, e) {
			v.dup(es, e, ep, "extension")
		}
	}
	ss := seen{}
	for k, s := range db.Schemas {
		sp := fmt.Sprintf("%s.schemas[%d]", dp, k)
		if v.pgName(sp+".name", s.Name) {
			if strings.HasPrefix(s.Name, "pg_") {
				v.add(sp+".name", "schema names starting with pg_ are reserved by PostgreSQL")
			}
			v.dup(ss, s.Name, sp+".name", "schema")
		}
		v.pgOwner(sc, sp+".owner", s.Owner)
	}
}

// pgOwner checks an optional owner: empty means the admin user.
func (v *validator) pgOwner(sc *pgScope, path, owner string) {
	if owner != "" && !sc.roles[owner] {
		v.add(path, "role %q is not declared in %s.roles or as admin", owner, sc.path)
	}
}

// pgGrant checks a grant against the declared roles, databases and schemas
// and the privileges its target takes.
func (v *validator) pgGrant(sc *pgScope, gp string, g PGGrant, gs seen) {
	if v.required(gp+".role", g.Role) && !sc.roles[g.Role] && !strings.EqualFold(g.Role, "public") {
		v.add(gp+".role", "role %q is not declared in %s.roles", g.Role, sc.path)
	}
	db, dbOK := sc.databases[g.Database]
	if v.required(gp+".database", g.Database) && !dbOK {
		v.add(gp+".database", "database %q is not declared in %s.databases", g.Database, sc.path)
	}
	if !v.enum(gp+".on", g.On, "database", "schema", "tables", "sequences") {
		return
	}
	if g.On == "database" {
		if g.Schema != "" {
			v.add(gp+".schema", "is not used with on: database")
		}
	} else if v.required(gp+".schema", g.Schema) && dbOK && g.Schema != "public" {
		v.pgGrantSchema(gp, g, db)
	}
	if len(g.Privileges) == 0 {
		v.add(gp+".privileges", "is required, e.g. [%s]", privileges[g.On][1])
	}
	for k, pr := range g.Privileges {
		if !slices.Contains(privileges[g.On], strings.ToUpper(pr)) {
			v.add(fmt.Sprintf("%s.privileges[%d]", gp, k), "%q is not a privilege on %s (want %s)", pr, g.On, strings.Join(privileges[g.On], ", "))
		}
	}
	role := g.Role
	if strings.EqualFold(role, "public") {
		// PUBLIC is every role, in any spelling; revokePublicConnect
		// takes CONNECT from it, so granting it back would flip for ever.
		role = "PUBLIC"
		if dbOK && db.RevokePublicConnect && g.On == "database" && slices.ContainsFunc(g.Privileges, func(p string) bool {
			p = strings.ToUpper(p)
			return p == "CONNECT" || p == "ALL"
		}) {
			v.add(gp+".privileges", "grants CONNECT to PUBLIC on database %q, whose revokePublicConnect takes it away", g.Database)
		}
	}
	v.dup(gs, strings.Join([]string{role, g.Database, g.Schema, g.On}, "/"), gp, "grant for role/database/schema/on")
}

// pgGrantSchema checks that a grant's schema is declared in its database;
// public is not declared because every database has it.
func (v *validator) pgGrantSchema(gp string, g PGGrant, db PGDatabase) {
	if !slices.ContainsFunc(db.Schemas, func(s PGSchema) bool { return s.Name == g.Schema }) {
		v.add(gp+".schema", "schema %q is not declared in database %q", g.Schema, g.Database)
	}
}

func (v *validator) pgName(path, name string) bool {
	return v.name(path, name, pgNameRe, 63, "letters, digits, '_', '$' and '-', not starting with a digit, at most 63 bytes")
}
