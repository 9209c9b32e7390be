package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/health-data-ai/bootstrap/internal/config"
)

// This file reads what is there; the plan*.go files decide what to do
// about it. Nothing here writes.

// roleState is a role as pg_authid has it.
type roleState struct {
	login     bool
	connLimit int
	password  *string // rolpassword: a SCRAM verifier, an md5 hash or NULL
	inherit   bool    // rolinherit: new memberships inherit by default
	memberOf  map[string]membership
	// settings are the role's own defaults in every database (ALTER ROLE
	// ... SET, pg_db_role_setting with setdatabase 0), name -> value.
	settings map[string]string
}

// membership is what the role's memberships in one group let it do, over
// every grantor's grant. Before PostgreSQL 16 a membership always allowed
// SET ROLE, and inheriting was the member's rolinherit alone: both read as
// true. From 16 each grant has its own INHERIT and SET options (a role made
// by a CREATEROLE non-superuser leaves its creator a member with neither).
type membership struct {
	inherit, set bool
}

// dbState is a database as pg_database has it.
type dbState struct {
	owner         string
	publicConnect bool
	acl           map[string]map[string]bool // role -> explicit privileges
}

// dbDetail is what one database holds that plan compares: read only for
// databases that declare extensions, schemas, grants or migrations, since
// each costs a connection to that database.
type dbDetail struct {
	extensions map[string]bool
	schemas    map[string]string // name -> owner
	grants     map[int]grantState
	applied    map[int64]bool // goose versions
	// loginDefaults says, per login of a rotating role, which kinds of
	// defaultKinds its default privileges here already grant in full to
	// the group (rotation.go); a login absent has none.
	loginDefaults map[string]map[string]bool
}

// grantState is what an existing grant lacks.
type grantState struct {
	have     map[string]bool // schema grants: privileges held
	objects  int             // tables/sequences in the schema
	missing  map[string]int  // privilege -> objects lacking it
	defaults map[string]bool // default privileges held
}

// state is the server as Plan found it; a role or database absent from
// the maps does not exist.
type state struct {
	major   int // the server's major version
	roles   map[string]*roleState
	dbs     map[string]*dbState
	details map[string]*dbDetail
}

// membershipOptionsSince is the major from which pg_auth_members has
// inherit_option and set_option, and GRANT role takes WITH INHERIT, SET.
const membershipOptionsSince = 16

// rolesQuery reads roles, their memberships, each as "IS" + group name,
// where I and S are t or f: whether any grant of it carries INHERIT, SET,
// and their settings in every database, each as name=value.
func rolesQuery(major int) string {
	inherit, set := "true", "true"
	if major >= membershipOptionsSince {
		inherit, set = "m.inherit_option", "m.set_option"
	}
	return `
SELECT a.rolname::text, a.rolcanlogin, a.rolconnlimit, a.rolpassword, a.rolinherit,
       ARRAY(SELECT left(bool_or(` + inherit + `)::text, 1) || left(bool_or(` + set + `)::text, 1) || g.rolname::text
             FROM pg_auth_members m JOIN pg_authid g ON g.oid = m.roleid
             WHERE m.member = a.oid GROUP BY g.rolname),
       ARRAY(SELECT unnest(s.setconfig) FROM pg_db_role_setting s
             WHERE s.setdatabase = 0 AND s.setrole = a.oid)
FROM pg_authid a WHERE a.rolname = ANY($1::text[])`
}

// databasesQuery reads owners and explicit ACL entries. A NULL datacl means
// the built-in default, which acldefault spells out (owner: all; PUBLIC:
// CONNECT, TEMPORARY).
const databasesQuery = `
SELECT d.datname::text, pg_get_userbyid(d.datdba)::text,
       EXISTS (SELECT 1 FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
               WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT'),
       ARRAY(SELECT a.privilege_type || ' ' || coalesce(r.rolname, 'PUBLIC')
             FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
             LEFT JOIN pg_roles r ON r.oid = a.grantee
             WHERE a.grantee = 0 OR r.oid IS NOT NULL)
FROM pg_database d WHERE d.datname = ANY($1::text[])`

// granteeOID is the SQL for the OID a grant's role has in ACLs: 0 for
// PUBLIC, which pg_roles does not list.
func granteeOID(param string) string {
	return "(CASE WHEN " + param + "::text = 'PUBLIC' THEN 0::oid ELSE (SELECT oid FROM pg_roles WHERE rolname::text = " + param + "::text) END)"
}

// mentioned lists every role and database the config names, declared or
// not: a grant to an existing undeclared role is an update, not a create,
// and a grant in an undeclared database needs that database's owner. The
// logins of a rotating role count as declared.
func mentioned(cfg config.Postgres, grants []grantSpec) (roles, dbs []string) {
	roles = make([]string, 0, len(cfg.Roles))
	addRole := func(n string) {
		if n != "" && !slices.Contains(roles, n) {
			roles = append(roles, n)
		}
	}
	for _, r := range cfg.Roles {
		addRole(r.Name)
		if rotates(r) {
			for _, id := range identities(r.Name) {
				addRole(id)
			}
		}
	}
	for _, g := range grants {
		if g.Role != public {
			addRole(g.Role)
		}
	}
	dbs = make([]string, 0, len(cfg.Databases))
	seen := map[string]bool{}
	for _, d := range cfg.Databases {
		dbs = append(dbs, d.Name)
		seen[d.Name] = true
	}
	for _, g := range grants {
		if !seen[g.Database] {
			dbs = append(dbs, g.Database)
			seen[g.Database] = true
		}
	}
	return roles, dbs
}

// declaredDatabases indexes the config's databases by name; a database
// only a grant names is absent.
func declaredDatabases(cfg config.Postgres) map[string]*config.PGDatabase {
	out := make(map[string]*config.PGDatabase, len(cfg.Databases))
	for i := range cfg.Databases {
		out[cfg.Databases[i].Name] = &cfg.Databases[i]
	}
	return out
}

// readState reads roles and databases from the admin connection: two
// queries whatever the size of the config.
func (t *Target) readState(ctx context.Context, conn *pgx.Conn, roleNames, dbNames []string) (*state, error) {
	major := serverMajor(conn)
	roles, err := readRoles(ctx, conn, major, roleNames)
	if err != nil {
		return nil, fmt.Errorf("read roles: %w", err)
	}
	dbs, err := readDatabases(ctx, conn, dbNames)
	if err != nil {
		return nil, fmt.Errorf("read databases: %w", err)
	}
	return &state{major: major, roles: roles, dbs: dbs, details: map[string]*dbDetail{}}, nil
}

func readRoles(ctx context.Context, conn *pgx.Conn, major int, names []string) (map[string]*roleState, error) {
	rows, err := conn.Query(ctx, rolesQuery(major), names)
	if err != nil {
		return nil, err
	}
	out := map[string]*roleState{}
	for rows.Next() {
		var name string
		var groups, settings []string
		r := &roleState{memberOf: map[string]membership{}, settings: map[string]string{}}
		var limit int32
		if err := rows.Scan(&name, &r.login, &limit, &r.password, &r.inherit, &groups, &settings); err != nil {
			rows.Close()
			return nil, err
		}
		r.connLimit = int(limit)
		for _, g := range groups {
			r.memberOf[g[2:]] = membership{inherit: g[0] == 't', set: g[1] == 't'}
		}
		for _, kv := range settings {
			k, v, _ := strings.Cut(kv, "=")
			r.settings[k] = v
		}
		out[name] = r
	}
	return out, rows.Err()
}

func readDatabases(ctx context.Context, conn *pgx.Conn, names []string) (map[string]*dbState, error) {
	rows, err := conn.Query(ctx, databasesQuery, names)
	if err != nil {
		return nil, err
	}
	out := map[string]*dbState{}
	for rows.Next() {
		var name string
		var acl []string
		d := &dbState{acl: map[string]map[string]bool{}}
		if err := rows.Scan(&name, &d.owner, &d.publicConnect, &acl); err != nil {
			rows.Close()
			return nil, err
		}
		for _, e := range acl {
			priv, role, _ := strings.Cut(e, " ")
			if d.acl[role] == nil {
				d.acl[role] = map[string]bool{}
			}
			d.acl[role][priv] = true
		}
		out[name] = d
	}
	return out, rows.Err()
}

// readDetailsLocked reads the contents of every existing database that
// declares something inside or where a rotating role's logins need default
// privileges (logins, by database), one connection and round trip each;
// the rest cost nothing. t.mu must be held.
func (t *Target) readDetailsLocked(ctx context.Context, st *state, dbNames []string, declared map[string]*config.PGDatabase, owners map[string]string, grants []grantSpec, logins map[string][]loginOf) error {
	grantsIn := grantsInside(grants)
	for _, name := range dbNames {
		d := declared[name]
		needs := len(grantsIn[name]) > 0 || len(logins[name]) > 0 ||
			(d != nil && (len(d.Extensions) > 0 || len(d.Schemas) > 0 || d.Migrations != ""))
		if !needs || st.dbs[name] == nil {
			continue
		}
		c, err := t.dbConnLocked(ctx, name)
		if err != nil {
			return fmt.Errorf("plan %s: %w", t.res("database", name), err)
		}
		det, err := readDetail(ctx, c, d, owners[name], grantsIn[name], logins[name])
		if err != nil {
			return fmt.Errorf("plan %s: read database contents: %w", t.res("database", name), wrapCtx(ctx, err))
		}
		st.details[name] = det
	}
	return nil
}

// grantsInside groups by database the grants that need a connection to it,
// keyed by their index in grants. Database grants are left out: their ACL
// is in pg_database, which readState has read already.
func grantsInside(grants []grantSpec) map[string]map[int]grantSpec {
	out := map[string]map[int]grantSpec{}
	for i, g := range grants {
		if g.Kind == "database" {
			continue
		}
		if out[g.Database] == nil {
			out[g.Database] = map[int]grantSpec{}
		}
		out[g.Database][i] = g
	}
	return out
}

// relation kinds GRANT ... ON ALL TABLES / SEQUENCES IN SCHEMA covers, the
// acldefault object type for a NULL relacl, and pg_default_acl's objtype.
var relKinds = map[string]struct{ kinds, aclType, defType string }{
	"tables":    {`'{r,v,m,f,p}'`, "r", "r"},
	"sequences": {`'{S}'`, "s", "S"},
}

// readDetail reads one database's extensions, schemas, grant ACLs, the
// default privileges of rotating roles' logins and goose versions in one
// round trip (plus one when goose's table exists). owner is the role whose
// default privileges the grants rely on.
func readDetail(ctx context.Context, conn *pgx.Conn, db *config.PGDatabase, owner string, grants map[int]grantSpec, logins []loginOf) (*dbDetail, error) {
	d := &dbDetail{extensions: map[string]bool{}, schemas: map[string]string{}, grants: map[int]grantState{}, applied: map[int64]bool{}, loginDefaults: map[string]map[string]bool{}}
	b := &pgx.Batch{}
	exts, schemas := detailNames(db, grants)
	if len(exts) > 0 {
		d.queueExtensions(b, exts)
	}
	if len(schemas) > 0 {
		d.queueSchemas(b, schemas)
	}
	// In index order, so the batch is the same from one run to the next.
	for _, i := range slices.Sorted(maps.Keys(grants)) {
		d.queueGrant(b, i, grants[i], owner)
	}
	if len(logins) > 0 {
		d.queueLoginDefaults(b, logins)
	}
	hasGoose := false
	if db != nil && db.Migrations != "" {
		b.Queue(`SELECT to_regclass('` + gooseTable + `') IS NOT NULL`).QueryRow(func(row pgx.Row) error {
			return row.Scan(&hasGoose)
		})
	}
	if b.Len() > 0 {
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			return nil, err
		}
	}
	// Querying goose's table before knowing it exists would fail the batch.
	if hasGoose {
		if err := d.readApplied(ctx, conn); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// detailNames lists the extensions and schemas to look up in db: those it
// declares and the schemas its grants name.
func detailNames(db *config.PGDatabase, grants map[int]grantSpec) (exts, schemas []string) {
	if db != nil {
		exts = db.Extensions
		for _, s := range db.Schemas {
			schemas = append(schemas, s.Name)
		}
	}
	for _, g := range grants {
		if g.Schema != "" {
			schemas = append(schemas, g.Schema)
		}
	}
	return exts, schemas
}

func (d *dbDetail) queueExtensions(b *pgx.Batch, names []string) {
	b.Queue(`SELECT extname::text FROM pg_extension WHERE extname = ANY($1::text[])`, names).Query(func(rows pgx.Rows) error {
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, n := range names {
			d.extensions[n] = true
		}
		return err
	})
}

func (d *dbDetail) queueSchemas(b *pgx.Batch, names []string) {
	b.Queue(`SELECT nspname::text, pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = ANY($1::text[])`, names).Query(func(rows pgx.Rows) error {
		var name, own string
		_, err := pgx.ForEachRow(rows, []any{&name, &own}, func() error {
			d.schemas[name] = own
			return nil
		})
		return err
	})
}

// queueGrant queues the reads for grant i, a schema, tables or sequences
// grant (see grantsInside).
func (d *dbDetail) queueGrant(b *pgx.Batch, i int, g grantSpec, owner string) {
	switch g.Kind {
	case "schema":
		d.queueSchemaGrant(b, i, g)
	case "tables", "sequences":
		gs := grantState{missing: map[string]int{}, defaults: map[string]bool{}}
		d.queueObjectGrant(b, i, g, gs)
		// The owner already holds every privilege on what it creates, so
		// no default privileges are set for it and none are read.
		if g.Role != owner {
			queueDefaultPrivileges(b, g, owner, gs)
		}
	}
}

func (d *dbDetail) queueSchemaGrant(b *pgx.Batch, i int, g grantSpec) {
	b.Queue(`SELECT ARRAY(SELECT a.privilege_type FROM pg_namespace n,
			           aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
			         WHERE n.nspname = $1 AND a.grantee = `+granteeOID("$2")+`)`,
		g.Schema, g.Role).QueryRow(func(row pgx.Row) error {
		var have []string
		err := row.Scan(&have)
		d.grants[i] = grantState{have: setOf(have)}
		return err
	})
}

// queueObjectGrant counts, per privilege, the tables or sequences of the
// schema the role lacks it on, so a plan can say how far from done a grant
// is rather than only that it differs.
func (d *dbDetail) queueObjectGrant(b *pgx.Batch, i int, g grantSpec, gs grantState) {
	k := relKinds[g.Kind]
	q := `WITH obj AS (
			        SELECT coalesce(c.relacl, acldefault('` + k.aclType + `', c.relowner)) AS acl
			        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			        WHERE n.nspname = $1 AND c.relkind::text = ANY(` + k.kinds + `::text[]))
			      SELECT p, (SELECT count(*) FROM obj),
			             (SELECT count(*) FROM obj WHERE NOT EXISTS (
			                SELECT 1 FROM aclexplode(obj.acl) a
			                WHERE a.grantee = ` + granteeOID("$2") + ` AND a.privilege_type = p))
			      FROM unnest($3::text[]) p`
	b.Queue(q, g.Schema, g.Role, g.Privileges).Query(func(rows pgx.Rows) error {
		var priv string
		var total, missing int64
		_, err := pgx.ForEachRow(rows, []any{&priv, &total, &missing}, func() error {
			gs.objects = int(total)
			if missing > 0 {
				gs.missing[priv] = int(missing)
			}
			return nil
		})
		d.grants[i] = gs
		return err
	})
}

// queueDefaultPrivileges reads the default privileges owner grants the
// role in the schema into gs.defaults, a map gs shares with the grant
// queueObjectGrant stores.
func queueDefaultPrivileges(b *pgx.Batch, g grantSpec, owner string, gs grantState) {
	b.Queue(`SELECT ARRAY(SELECT a.privilege_type
				           FROM pg_default_acl da JOIN pg_namespace n ON n.oid = da.defaclnamespace,
				                aclexplode(da.defaclacl) a
				           WHERE n.nspname = $1 AND da.defaclobjtype = '`+relKinds[g.Kind].defType+`'
				             AND da.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = $2)
				             AND a.grantee = `+granteeOID("$3")+`)`,
		g.Schema, owner, g.Role).QueryRow(func(row pgx.Row) error {
		var have []string
		err := row.Scan(&have)
		for _, p := range have {
			gs.defaults[p] = true
		}
		return err
	})
}

func (d *dbDetail) readApplied(ctx context.Context, conn *pgx.Conn) error {
	rows, err := conn.Query(ctx, `SELECT DISTINCT version_id FROM `+gooseTable)
	if err != nil {
		return fmt.Errorf("read %s: %w", gooseTable, err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("read %s: %w", gooseTable, err)
	}
	for _, v := range versions {
		d.applied[v] = true
	}
	return nil
}

func setOf(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}
