package postgres

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

var instances = []string{"health", "auth"}

func randomPassword() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// adminConn is a superuser connection for test setup and inspection,
// closed when the test ends.
func adminConn(t testing.TB, pg testenv.PG, db string) *pgx.Conn {
	t.Helper()
	return pg.Admin(t, db)
}

func dropDatabases(t testing.TB, pg testenv.PG, dbs ...string) {
	t.Helper()
	c := adminConn(t, pg, "postgres")
	for _, d := range dbs {
		if _, err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+ident(d)+" WITH (FORCE)"); err != nil {
			t.Errorf("cleanup: drop database %s: %v", d, err)
		}
	}
}

func dropRoles(t testing.TB, pg testenv.PG, roles ...string) {
	t.Helper()
	c := adminConn(t, pg, "postgres")
	for _, r := range roles {
		if _, err := c.Exec(context.Background(), "DROP ROLE IF EXISTS "+ident(r)); err != nil {
			t.Errorf("cleanup: drop role %s: %v", r, err)
		}
	}
}

// fixture names test roles and databases uniquely, keeps their secrets,
// and drops them all when the test ends.
type fixture struct {
	t     testing.TB
	inst  string
	pg    testenv.PG
	creds credential.Resolved

	mu    sync.Mutex
	roles []string
	dbs   []string
}

func newFixture(t testing.TB, inst string) *fixture {
	t.Helper()
	pg := testenv.Postgres(t, inst)
	f := &fixture{t: t, inst: inst, pg: pg, creds: credential.Resolved{"pg-admin": credential.New(pg.Password)}}
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		dropDatabases(t, pg, f.dbs...)
		// Databases first: a role cannot be dropped while it owns one.
		dropRoles(t, pg, f.roles...)
	})
	return f
}

func (f *fixture) role(prefix string) string {
	n := testenv.Unique(prefix)
	f.mu.Lock()
	f.roles = append(f.roles, n)
	f.mu.Unlock()
	return n
}

func (f *fixture) db(prefix string) string {
	n := testenv.Unique(prefix)
	f.mu.Lock()
	f.dbs = append(f.dbs, n)
	f.mu.Unlock()
	return n
}

// loginRole declares a login role with a fresh password secret.
func (f *fixture) loginRole(prefix string) (config.PGRole, string) {
	name := f.role(prefix)
	pw := randomPassword()
	f.creds["pw-"+name] = credential.New(pw)
	return config.PGRole{Name: name, Password: &config.SecretRef{Secret: "pw-" + name}}, pw
}

func (f *fixture) config() config.Postgres {
	return config.Postgres{
		Name:    f.inst,
		Host:    f.pg.Host,
		Port:    f.pg.Port,
		SSLMode: "prefer",
		Admin:   config.PGAdmin{User: f.pg.User, Password: config.SecretRef{Secret: "pg-admin"}, Database: "postgres"},
	}
}

func ptr[T any](v T) *T { return &v }

func connectTarget(t testing.TB, tgt *Target) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tgt.Connect(ctx); err != nil {
		t.Fatalf("connect: %v", err)
	}
}

func planOf(t testing.TB, cfg config.Postgres, creds credential.Resolved) []reconcile.Change {
	t.Helper()
	tgt := New(cfg, creds, nil)
	defer tgt.Close()
	connectTarget(t, tgt)
	changes, err := tgt.Plan(context.Background())
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	return changes
}

// applyAll connects, locks, plans and applies like the engine does, and
// returns the plan it applied.
func applyAll(t testing.TB, cfg config.Postgres, creds credential.Resolved) []reconcile.Change {
	t.Helper()
	changes, err := tryApply(context.Background(), cfg, creds)
	if err != nil {
		t.Fatal(err)
	}
	return changes
}

func tryApply(ctx context.Context, cfg config.Postgres, creds credential.Resolved) ([]reconcile.Change, error) {
	tgt := New(cfg, creds, nil)
	defer tgt.Close()
	if err := tgt.Connect(ctx); err != nil {
		return nil, err
	}
	if err := tgt.Lock(ctx); err != nil {
		return nil, err
	}
	changes, err := tgt.Plan(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range changes {
		if c.Drift != "" {
			return nil, fmt.Errorf("drift on %s: %s", c.Resource, c.Drift)
		}
		if c.Apply == nil || c.Action == reconcile.Check {
			continue
		}
		if err := c.Apply(ctx); err != nil {
			return nil, err
		}
	}
	return changes, nil
}

func writes(cs []reconcile.Change) []string {
	var out []string
	for _, c := range cs {
		switch c.Action {
		case reconcile.Create, reconcile.Update, reconcile.Delete:
			out = append(out, string(c.Action)+" "+c.Resource+" ("+c.Detail+")")
		}
	}
	return out
}

func find(cs []reconcile.Change, resource string) (reconcile.Change, bool) {
	for _, c := range cs {
		if c.Resource == resource {
			return c, true
		}
	}
	return reconcile.Change{}, false
}

// snapshot renders everything the server holds about the given roles and
// databases: attributes, a digest of the stored password, memberships,
// owners, ACLs, and inside each database its extensions, schemas, relation
// ACLs, default privileges and goose versions.
func snapshot(ctx context.Context, t testing.TB, pg testenv.PG, roles, dbs []string) (string, error) {
	c := adminConn(t, pg, "postgres")
	var b strings.Builder
	rows, err := c.Query(ctx, `
		SELECT a.rolname, a.rolcanlogin, a.rolconnlimit, md5(coalesce(a.rolpassword, '')),
		       ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
		             WHERE m.member = a.oid ORDER BY 1)
		FROM pg_authid a WHERE rolname = ANY($1) ORDER BY 1`, roles)
	if err != nil {
		return "", err
	}
	for rows.Next() {
		var name, pw string
		var login bool
		var limit int32
		var groups []string
		if err := rows.Scan(&name, &login, &limit, &pw, &groups); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "role %s login=%t limit=%d pw=%s in=%v\n", name, login, limit, pw, groups)
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	rows, err = c.Query(ctx, `SELECT datname::text, pg_get_userbyid(datdba)::text, coalesce(datacl::text, '') FROM pg_database WHERE datname = ANY($1) ORDER BY 1`, dbs)
	if err != nil {
		return "", err
	}
	var existing []string
	for rows.Next() {
		var name, owner, acl string
		if err := rows.Scan(&name, &owner, &acl); err != nil {
			return "", err
		}
		existing = append(existing, name)
		fmt.Fprintf(&b, "database %s owner=%s acl=%s\n", name, owner, acl)
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	sort.Strings(existing)
	for _, db := range existing {
		dc := adminConn(t, pg, db)
		var lines []string
		rows, err := dc.Query(ctx, `
			SELECT 'ext ' || extname FROM pg_extension
			UNION ALL SELECT 'schema ' || nspname || ' owner=' || pg_get_userbyid(nspowner) || ' acl=' || coalesce(nspacl::text, '')
			  FROM pg_namespace WHERE nspname NOT LIKE 'pg\_%' AND nspname <> 'information_schema'
			UNION ALL SELECT 'rel ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text || ' owner=' || pg_get_userbyid(c.relowner) || ' acl=' || coalesce(c.relacl::text, '')
			  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			  WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema' AND c.relkind IN ('r','v','m','f','p','S')
			UNION ALL SELECT 'default ' || pg_get_userbyid(defaclrole) || ' ' || defaclnamespace::regnamespace::text || ' ' || defaclobjtype::text || ' ' || defaclacl::text
			  FROM pg_default_acl`)
		if err != nil {
			return "", err
		}
		for rows.Next() {
			var l string
			if err := rows.Scan(&l); err != nil {
				return "", err
			}
			lines = append(lines, l)
		}
		if err := rows.Err(); err != nil {
			return "", err
		}
		var hasGoose bool
		if err := dc.QueryRow(ctx, `SELECT to_regclass('public.goose_db_version') IS NOT NULL`).Scan(&hasGoose); err != nil {
			return "", err
		}
		if hasGoose {
			rows, err := dc.Query(ctx, `SELECT 'goose ' || version_id || ' ' || is_applied FROM public.goose_db_version`)
			if err != nil {
				return "", err
			}
			for rows.Next() {
				var l string
				if err := rows.Scan(&l); err != nil {
					return "", err
				}
				lines = append(lines, l)
			}
			if err := rows.Err(); err != nil {
				return "", err
			}
		}
		sort.Strings(lines)
		fmt.Fprintf(&b, "in %s:\n  %s\n", db, strings.Join(lines, "\n  "))
		dc.Close(ctx)
	}
	return b.String(), nil
}
