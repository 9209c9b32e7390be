package postgres

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// privilegesByKind lists, per grant kind, every privilege PostgreSQL knows
// for that object type, in aclexplode's spelling; ALL expands to it.
var privilegesByKind = map[string][]string{
	"database":  {"CONNECT", "CREATE", "TEMPORARY"},
	"schema":    {"USAGE", "CREATE"},
	"tables":    {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"},
	"sequences": {"USAGE", "SELECT", "UPDATE"},
}

// grantSpec is one normalised grant: kind lower case, schema defaulted,
// privileges upper case, expanded and sorted in catalog order.
type grantSpec struct {
	Role, Database, Schema, Kind string
	Privileges                   []string
}

func (g grantSpec) resourceParts() []string {
	p := []string{"grant", g.Database, g.Role, g.Kind}
	if g.Kind != "database" {
		p = append(p, g.Schema)
	}
	return p
}

// normaliseGrants validates and merges the configured grants; two entries
// for the same role, database, kind and schema become one change.
func normaliseGrants(target string, in []config.PGGrant) ([]grantSpec, error) {
	var out []grantSpec
	index := map[string]int{}
	for _, g := range in {
		kind := strings.ToLower(strings.TrimSpace(g.On))
		known, ok := privilegesByKind[kind]
		if !ok {
			return nil, fmt.Errorf("grant to %s on %q in database %s: on must be database, schema, tables or sequences", g.Role, g.On, g.Database)
		}
		schema := g.Schema
		switch kind {
		case "database":
			schema = ""
		case "tables", "sequences":
			if schema == "" {
				schema = "public"
			}
		case "schema":
			if schema == "" {
				return nil, fmt.Errorf("grant to %s on schema in database %s: schema is required", g.Role, g.Database)
			}
		}
		spec := grantSpec{Role: g.Role, Database: g.Database, Schema: schema, Kind: kind}
		res := reconcile.Resource(target, spec.resourceParts()...)
		want := map[string]bool{}
		for _, p := range g.Privileges {
			p = strings.ToUpper(strings.Join(strings.Fields(p), " "))
			switch p {
			case "ALL", "ALL PRIVILEGES":
				for _, k := range known {
					want[k] = true
				}
				continue
			case "TEMP":
				p = "TEMPORARY"
			}
			if !slices.Contains(known, p) {
				return nil, fmt.Errorf("%s: privilege %q does not apply to %s (one of %s, or ALL)", res, p, kind, strings.Join(known, ", "))
			}
			want[p] = true
		}
		if len(want) == 0 {
			return nil, fmt.Errorf("%s: no privileges", res)
		}
		if i, dup := index[res]; dup {
			for _, p := range out[i].Privileges {
				want[p] = true
			}
			out[i].Privileges = ordered(known, want)
			continue
		}
		spec.Privileges = ordered(known, want)
		index[res] = len(out)
		out = append(out, spec)
	}
	return out, nil
}

func ordered(known []string, set map[string]bool) []string {
	var out []string
	for _, k := range known {
		if set[k] {
			out = append(out, k)
		}
	}
	return out
}

// roleState is a role as pg_authid has it.
type roleState struct {
	login     bool
	connLimit int
	password  *string // rolpassword: a SCRAM verifier, an md5 hash or NULL
	memberOf  map[string]bool
}

// dbState is a database as pg_database has it.
type dbState struct {
	owner         string
	publicConnect bool
	acl           map[string]map[string]bool // role -> explicit privileges
}

// dbDetail is what one database holds that plan compares: read only for
// databases that declare extensions, schemas, grants or migrations.
type dbDetail struct {
	extensions map[string]bool
	schemas    map[string]string // name -> owner
	grants     map[int]grantState
	applied    map[int64]bool // goose versions
}

// grantState is what an existing grant lacks.
type grantState struct {
	have     map[string]bool // schema grants: privileges held
	objects  int             // tables/sequences in the schema
	missing  map[string]int  // privilege -> objects lacking it
	defaults map[string]bool // default privileges held
}

type state struct {
	roles   map[string]*roleState
	dbs     map[string]*dbState
	details map[string]*dbDetail
}

const rolesQuery = `
SELECT a.rolname::text, a.rolcanlogin, a.rolconnlimit, a.rolpassword,
       ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_authid g ON g.oid = m.roleid
             WHERE m.member = a.oid)
FROM pg_authid a WHERE a.rolname = ANY($1::text[])`

// databasesQuery reads owners and explicit ACL entries. A NULL datacl means
// the built-in default, which acldefault spells out (owner: all; PUBLIC:
// CONNECT, TEMPORARY).
const databasesQuery = `
SELECT d.datname::text, pg_get_userbyid(d.datdba)::text,
       EXISTS (SELECT 1 FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
               WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT'),
       ARRAY(SELECT a.privilege_type || ' ' || r.rolname
             FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
             JOIN pg_roles r ON r.oid = a.grantee)
FROM pg_database d WHERE d.datname = ANY($1::text[])`

// readState reads roles and databases from the admin connection: two
// queries whatever the size of the config.
func (t *Target) readState(ctx context.Context, conn *pgx.Conn, roleNames, dbNames []string) (*state, error) {
	st := &state{roles: map[string]*roleState{}, dbs: map[string]*dbState{}, details: map[string]*dbDetail{}}
	rows, err := conn.Query(ctx, rolesQuery, roleNames)
	if err != nil {
		return nil, fmt.Errorf("read roles: %w", err)
	}
	for rows.Next() {
		var name string
		var groups []string
		r := &roleState{memberOf: map[string]bool{}}
		var limit int32
		if err := rows.Scan(&name, &r.login, &limit, &r.password, &groups); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read roles: %w", err)
		}
		r.connLimit = int(limit)
		for _, g := range groups {
			r.memberOf[g] = true
		}
		st.roles[name] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read roles: %w", err)
	}
	rows, err = conn.Query(ctx, databasesQuery, dbNames)
	if err != nil {
		return nil, fmt.Errorf("read databases: %w", err)
	}
	for rows.Next() {
		var name string
		var acl []string
		d := &dbState{acl: map[string]map[string]bool{}}
		if err := rows.Scan(&name, &d.owner, &d.publicConnect, &acl); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read databases: %w", err)
		}
		for _, e := range acl {
			priv, role, _ := strings.Cut(e, " ")
			if d.acl[role] == nil {
				d.acl[role] = map[string]bool{}
			}
			d.acl[role][priv] = true
		}
		st.dbs[name] = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read databases: %w", err)
	}
	return st, nil
}

// relation kinds GRANT ... ON ALL TABLES / SEQUENCES IN SCHEMA covers, the
// acldefault object type for a NULL relacl, and pg_default_acl's objtype.
var relKinds = map[string]struct{ kinds, aclType, defType string }{
	"tables":    {`'{r,v,m,f,p}'`, "r", "r"},
	"sequences": {`'{S}'`, "s", "S"},
}

// readDetail reads one database's extensions, schemas, grant ACLs and
// goose versions in one round trip (plus one when goose's table exists).
func readDetail(ctx context.Context, conn *pgx.Conn, db *config.PGDatabase, owner string, grants map[int]grantSpec) (*dbDetail, error) {
	d := &dbDetail{extensions: map[string]bool{}, schemas: map[string]string{}, grants: map[int]grantState{}, applied: map[int64]bool{}}
	b := &pgx.Batch{}
	var exts, schemas []string
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
	if len(exts) > 0 {
		b.Queue(`SELECT extname::text FROM pg_extension WHERE extname = ANY($1::text[])`, exts).Query(func(rows pgx.Rows) error {
			names, err := pgx.CollectRows(rows, pgx.RowTo[string])
			for _, n := range names {
				d.extensions[n] = true
			}
			return err
		})
	}
	if len(schemas) > 0 {
		b.Queue(`SELECT nspname::text, pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = ANY($1::text[])`, schemas).Query(func(rows pgx.Rows) error {
			var name, own string
			_, err := pgx.ForEachRow(rows, []any{&name, &own}, func() error {
				d.schemas[name] = own
				return nil
			})
			return err
		})
	}
	keys := make([]int, 0, len(grants))
	for i := range grants {
		keys = append(keys, i)
	}
	slices.Sort(keys)
	for _, i := range keys {
		g := grants[i]
		switch g.Kind {
		case "schema":
			b.Queue(`SELECT ARRAY(SELECT a.privilege_type FROM pg_namespace n,
			           aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
			         WHERE n.nspname = $1 AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $2))`,
				g.Schema, g.Role).QueryRow(func(row pgx.Row) error {
				var have []string
				err := row.Scan(&have)
				d.grants[i] = grantState{have: setOf(have)}
				return err
			})
		case "tables", "sequences":
			k := relKinds[g.Kind]
			q := `WITH obj AS (
			        SELECT coalesce(c.relacl, acldefault('` + k.aclType + `', c.relowner)) AS acl
			        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			        WHERE n.nspname = $1 AND c.relkind::text = ANY(` + k.kinds + `::text[]))
			      SELECT p, (SELECT count(*) FROM obj),
			             (SELECT count(*) FROM obj WHERE NOT EXISTS (
			                SELECT 1 FROM aclexplode(obj.acl) a
			                WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $2) AND a.privilege_type = p))
			      FROM unnest($3::text[]) p`
			gs := grantState{missing: map[string]int{}, defaults: map[string]bool{}}
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
			if g.Role != owner {
				b.Queue(`SELECT ARRAY(SELECT a.privilege_type
				           FROM pg_default_acl da JOIN pg_namespace n ON n.oid = da.defaclnamespace,
				                aclexplode(da.defaclacl) a
				           WHERE n.nspname = $1 AND da.defaclobjtype = '`+k.defType+`'
				             AND da.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = $2)
				             AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $3))`,
					g.Schema, owner, g.Role).QueryRow(func(row pgx.Row) error {
					var have []string
					err := row.Scan(&have)
					for _, p := range have {
						gs.defaults[p] = true
					}
					return err
				})
			}
		}
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
	if hasGoose {
		rows, err := conn.Query(ctx, `SELECT DISTINCT version_id FROM `+gooseTable)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", gooseTable, err)
		}
		versions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", gooseTable, err)
		}
		for _, v := range versions {
			d.applied[v] = true
		}
	}
	return d, nil
}

func setOf(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// Plan reads the server (two queries for all roles and databases, one
// round trip more per database that declares extensions, schemas, grants
// or migrations) and returns roles, memberships, databases, PUBLIC connect
// revocations, extensions, schemas, grants and migrations, in that order.
// It never writes.
func (t *Target) Plan(ctx context.Context) ([]reconcile.Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("plan %s: %w", t.name, err)
	}
	grants, err := normaliseGrants(t.name, t.cfg.Grants)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", t.name, err)
	}
	passwords := map[string]credential.Credential{}
	for _, r := range t.cfg.Roles {
		if r.Password == nil || r.Password.Secret == "" {
			continue
		}
		pw, err := t.creds.Get(r.Password.Secret)
		if err != nil {
			return nil, fmt.Errorf("plan %s: password: %w", t.res("role", r.Name), err)
		}
		passwords[r.Name] = pw
	}

	// Every role the config mentions, declared or not: a grant to an
	// existing undeclared role is an update, not a create.
	roleNames := make([]string, 0, len(t.cfg.Roles))
	addRole := func(n string) {
		if n != "" && !slices.Contains(roleNames, n) {
			roleNames = append(roleNames, n)
		}
	}
	for _, r := range t.cfg.Roles {
		addRole(r.Name)
	}
	for _, g := range grants {
		addRole(g.Role)
	}
	dbNames := make([]string, 0, len(t.cfg.Databases))
	declared := map[string]*config.PGDatabase{}
	for i := range t.cfg.Databases {
		d := &t.cfg.Databases[i]
		dbNames = append(dbNames, d.Name)
		declared[d.Name] = d
	}
	for _, g := range grants {
		if declared[g.Database] == nil && !slices.Contains(dbNames, g.Database) {
			dbNames = append(dbNames, g.Database)
		}
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	conn, err := t.adminConnLocked(ctx)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", t.name, err)
	}
	st, err := t.readState(ctx, conn, roleNames, dbNames)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", t.name, wrapCtx(ctx, err))
	}

	// ownerOf is the role a database's default privileges are set FOR and
	// its migrations run as: the desired owner of a declared database
	// (the admin when none is given), the current owner of any other.
	ownerOf := func(db string) string {
		if d := declared[db]; d != nil {
			if d.Owner != "" {
				return d.Owner
			}
			return t.cfg.Admin.User
		}
		if s := st.dbs[db]; s != nil {
			return s.owner
		}
		return t.cfg.Admin.User
	}

	// Per-database details, only where something is declared inside.
	grantsIn := map[string]map[int]grantSpec{}
	for i, g := range grants {
		if g.Kind == "database" {
			continue
		}
		if grantsIn[g.Database] == nil {
			grantsIn[g.Database] = map[int]grantSpec{}
		}
		grantsIn[g.Database][i] = g
	}
	for _, name := range dbNames {
		d := declared[name]
		needs := len(grantsIn[name]) > 0 ||
			(d != nil && (len(d.Extensions) > 0 || len(d.Schemas) > 0 || d.Migrations != ""))
		if !needs || st.dbs[name] == nil {
			continue
		}
		c, err := t.dbConnLocked(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("plan %s: %w", t.res("database", name), err)
		}
		det, err := readDetail(ctx, c, d, ownerOf(name), grantsIn[name])
		if err != nil {
			return nil, fmt.Errorf("plan %s: read database contents: %w", t.res("database", name), wrapCtx(ctx, err))
		}
		st.details[name] = det
	}

	// Reading the migration folders now makes a missing one fail the plan
	// rather than a late apply.
	for _, d := range t.cfg.Databases {
		if d.Migrations == "" {
			continue
		}
		if _, err := t.migratorLocked(d.Name, ownerOf(d.Name), d.Migrations); err != nil {
			return nil, fmt.Errorf("plan %s: %w", t.res("migration", d.Name), err)
		}
	}

	pwPlans, err := planPasswords(ctx, t.cfg.Roles, st.roles, passwords)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", t.name, err)
	}

	var changes []reconcile.Change
	for _, r := range t.cfg.Roles {
		changes = append(changes, t.planRole(r, st.roles[r.Name], pwPlans[r.Name]))
	}
	for _, r := range t.cfg.Roles {
		for _, in := range r.InRoles {
			c := reconcile.Change{Resource: t.res("membership", r.Name, in), Action: reconcile.Noop}
			if s := st.roles[r.Name]; s == nil || !s.memberOf[in] {
				c.Action = reconcile.Create
				c.Detail = fmt.Sprintf("grant role %s to %s", in, r.Name)
				c.Apply = t.applyMembership(r.Name, in)
			}
			changes = append(changes, c)
		}
	}
	for _, d := range t.cfg.Databases {
		changes = append(changes, t.planDatabase(d, ownerOf(d.Name), st.dbs[d.Name]))
	}
	for _, d := range t.cfg.Databases {
		if d.RevokePublicConnect {
			changes = append(changes, t.planPublicConnect(d, ownerOf(d.Name), st.dbs[d.Name], grants))
		}
	}
	for _, d := range t.cfg.Databases {
		det := st.details[d.Name]
		for _, e := range d.Extensions {
			c := reconcile.Change{Resource: t.res("extension", d.Name, e), Action: reconcile.Noop}
			if det == nil || !det.extensions[e] {
				c.Action = reconcile.Create
				c.Detail = "create extension " + e
				c.Apply = t.applyExtension(d.Name, e)
			}
			changes = append(changes, c)
		}
	}
	for _, d := range t.cfg.Databases {
		det := st.details[d.Name]
		for _, s := range d.Schemas {
			owner := s.Owner // defaulted to the database's owner by config.ApplyDefaults
			c := reconcile.Change{Resource: t.res("schema", d.Name, s.Name), Action: reconcile.Noop}
			cur, exists := "", false
			if det != nil {
				cur, exists = det.schemas[s.Name]
			}
			switch {
			case !exists:
				c.Action = reconcile.Create
				c.Detail = "owner " + owner
				c.Apply = t.applySchema(d.Name, s.Name, owner, true)
			case cur != owner:
				c.Action = reconcile.Update
				c.Detail = fmt.Sprintf("owner %s -> %s", cur, owner)
				c.Apply = t.applySchema(d.Name, s.Name, owner, false)
			}
			changes = append(changes, c)
		}
	}
	for i, g := range grants {
		changes = append(changes, t.planGrant(i, g, ownerOf(g.Database), st))
	}
	for _, d := range t.cfg.Databases {
		if d.Migrations == "" {
			continue
		}
		m := t.migrators[d.Name]
		det := st.details[d.Name]
		for _, src := range m.sources {
			c := reconcile.Change{Resource: t.res("migration", d.Name, strconv.FormatInt(src.Version, 10)), Action: reconcile.Noop}
			if det == nil || !det.applied[src.Version] {
				c.Action = reconcile.Create
				c.Detail = "apply " + filepath.Base(src.Path)
				c.Apply = t.applyMigration(d.Name, ownerOf(d.Name), d.Migrations, src.Version)
			}
			changes = append(changes, c)
		}
	}
	return changes, nil
}

// wrapCtx makes a failure caused by ctx ending wrap ctx's error, whatever
// the driver reported.
func wrapCtx(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%w)", cerr, err)
	}
	return err
}

// passwordPlan is the outcome of checking one role's password: what
// differs ("" when it matches) and, when it must be set, the SCRAM verifier
// to send — computed here, not at apply time, so the PBKDF2 rounds of many
// roles run in parallel and apply holds no plaintext. The verifier is kept
// as a Credential so it prints as REDACTED should it ever be formatted.
type passwordPlan struct {
	diff     string
	verifier *credential.Credential
}

// planPasswords checks every desired password against the stored value
// and computes verifiers for those to set. Each costs a 4096-round PBKDF2,
// so they run in parallel.
func planPasswords(ctx context.Context, roles []config.PGRole, cur map[string]*roleState, pws map[string]credential.Credential) (map[string]passwordPlan, error) {
	out := make(map[string]passwordPlan, len(roles))
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for _, r := range roles {
		pw, ok := pws[r.Name]
		if !ok {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		var stored *string
		exists := false
		if s := cur[r.Name]; s != nil {
			stored, exists = s.password, true
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(name string) {
			defer wg.Done()
			defer func() { <-sem }()
			p := passwordPlan{diff: "password set"}
			if exists {
				p.diff = comparePassword(name, pw, stored)
			}
			var err error
			if p.diff != "" {
				var v string
				v, err = newSCRAMVerifier(pw.Reveal())
				vc := credential.New(v)
				p.verifier = &vc
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("role %s: %w", name, err)
			}
			out[name] = p
		}(r.Name)
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, firstErr
}

func comparePassword(role string, pw credential.Credential, stored *string) string {
	if stored == nil {
		return "password set"
	}
	if strings.HasPrefix(*stored, "md5") && len(*stored) == 35 {
		// md5(password || username), hex, after "md5".
		sum := md5.Sum([]byte(pw.Reveal() + role))
		if hex.EncodeToString(sum[:]) == (*stored)[3:] {
			return "password stored as md5 -> SCRAM-SHA-256"
		}
		return "password changed"
	}
	ok, err := verifySCRAM(pw.Reveal(), *stored)
	if err != nil || !ok {
		return "password changed"
	}
	return ""
}

func (t *Target) planRole(r config.PGRole, cur *roleState, pw passwordPlan) reconcile.Change {
	c := reconcile.Change{Resource: t.res("role", r.Name), Action: reconcile.Noop}
	if cur == nil {
		var d []string
		if r.CanLogin() {
			d = append(d, "login")
		} else {
			d = append(d, "nologin")
		}
		if r.ConnLimit() != -1 {
			d = append(d, fmt.Sprintf("connectionLimit %d", r.ConnLimit()))
		}
		if pw.verifier != nil {
			d = append(d, "password set")
		}
		c.Action = reconcile.Create
		c.Detail = strings.Join(d, ", ")
		c.Apply = t.applyCreateRole(r.Name, roleOptions(r.CanLogin(), r.ConnLimit()), pw.verifier)
		return c
	}
	var diffs []string
	var opts []string
	if cur.login != r.CanLogin() {
		diffs = append(diffs, fmt.Sprintf("login %t -> %t", cur.login, r.CanLogin()))
		opts = append(opts, loginOption(r.CanLogin()))
	}
	if cur.connLimit != r.ConnLimit() {
		diffs = append(diffs, fmt.Sprintf("connectionLimit %d -> %d", cur.connLimit, r.ConnLimit()))
		opts = append(opts, "CONNECTION LIMIT "+strconv.Itoa(r.ConnLimit()))
	}
	if pw.diff != "" {
		diffs = append(diffs, pw.diff)
	}
	if len(diffs) == 0 {
		return c
	}
	c.Action = reconcile.Update
	c.Detail = strings.Join(diffs, ", ")
	c.Apply = t.applyAlterRole(r.Name, strings.Join(opts, " "), pw.verifier)
	return c
}

func loginOption(login bool) string {
	if login {
		return "LOGIN"
	}
	return "NOLOGIN"
}

func roleOptions(login bool, limit int) string {
	return loginOption(login) + " CONNECTION LIMIT " + strconv.Itoa(limit)
}

func (t *Target) planDatabase(d config.PGDatabase, owner string, cur *dbState) reconcile.Change {
	c := reconcile.Change{Resource: t.res("database", d.Name), Action: reconcile.Noop}
	switch {
	case cur == nil:
		c.Action = reconcile.Create
		c.Detail = "owner " + owner
		c.Apply = t.applyCreateDatabase(d.Name, owner)
	case cur.owner != owner:
		c.Action = reconcile.Update
		c.Detail = fmt.Sprintf("owner %s -> %s", cur.owner, owner)
		c.Apply = t.applyDatabaseOwner(d.Name, owner)
	}
	return c
}

// planPublicConnect revokes CONNECT from PUBLIC and keeps it, explicitly,
// for the owner and every role the config grants anything in the database
// (they could not use those grants without connecting).
func (t *Target) planPublicConnect(d config.PGDatabase, owner string, cur *dbState, grants []grantSpec) reconcile.Change {
	c := reconcile.Change{Resource: t.res("revokePublicConnect", d.Name), Action: reconcile.Noop}
	keep := []string{owner}
	for _, g := range grants {
		if g.Database == d.Name && !slices.Contains(keep, g.Role) {
			keep = append(keep, g.Role)
		}
	}
	var lacking []string
	for _, r := range keep {
		if cur == nil || !cur.acl[r]["CONNECT"] {
			lacking = append(lacking, r)
		}
	}
	public := cur == nil || cur.publicConnect
	if !public && len(lacking) == 0 {
		return c
	}
	var d1 []string
	if public {
		d1 = append(d1, "revoke CONNECT from PUBLIC")
	}
	if len(lacking) > 0 {
		d1 = append(d1, "grant CONNECT to "+strings.Join(lacking, ", "))
	}
	c.Action = reconcile.Update
	if cur == nil {
		c.Action = reconcile.Create
	}
	c.Detail = strings.Join(d1, "; ")
	c.Apply = t.applyPublicConnect(d.Name, lacking, public)
	return c
}

func (t *Target) planGrant(i int, g grantSpec, owner string, st *state) reconcile.Change {
	c := reconcile.Change{Resource: t.res(g.resourceParts()...), Action: reconcile.Noop}
	_, roleExists := st.roles[g.Role]
	var diffs []string
	some := false // anything of this grant is already in place
	withDefaults := g.Role != owner
	switch g.Kind {
	case "database":
		var have map[string]bool
		if db := st.dbs[g.Database]; db != nil {
			have = db.acl[g.Role]
		}
		var missing []string
		for _, p := range g.Privileges {
			if have[p] {
				some = true
			} else {
				missing = append(missing, p)
			}
		}
		if len(missing) > 0 {
			diffs = append(diffs, "missing "+strings.Join(missing, ", "))
		}
	case "schema":
		var have map[string]bool
		if det := st.details[g.Database]; det != nil {
			have = det.grants[i].have
		}
		var missing []string
		for _, p := range g.Privileges {
			if have[p] {
				some = true
			} else {
				missing = append(missing, p)
			}
		}
		if len(missing) > 0 {
			diffs = append(diffs, "missing "+strings.Join(missing, ", ")+" on schema "+g.Schema)
		}
	case "tables", "sequences":
		det := st.details[g.Database]
		if det == nil {
			diffs = append(diffs, fmt.Sprintf("grant %s on all %s in schema %s", strings.Join(g.Privileges, ", "), g.Kind, g.Schema))
			if withDefaults {
				diffs = append(diffs, "default privileges for "+owner)
			}
			break
		}
		gs := det.grants[i]
		for _, p := range g.Privileges {
			if n, ok := gs.missing[p]; ok {
				diffs = append(diffs, fmt.Sprintf("%s missing on %d of %d %s", p, n, gs.objects, g.Kind))
				if n < gs.objects {
					some = true
				}
			} else if gs.objects > 0 {
				some = true
			}
		}
		if withDefaults {
			var missing []string
			for _, p := range g.Privileges {
				if gs.defaults[p] {
					some = true
				} else {
					missing = append(missing, p)
				}
			}
			if len(missing) > 0 {
				diffs = append(diffs, fmt.Sprintf("default privileges for %s lack %s", owner, strings.Join(missing, ", ")))
			}
		}
	}
	if len(diffs) == 0 {
		return c
	}
	c.Action = reconcile.Update
	if !some || !roleExists {
		c.Action = reconcile.Create
	}
	c.Detail = strings.Join(diffs, "; ")
	c.Apply = t.applyGrant(g, owner, withDefaults)
	return c
}
