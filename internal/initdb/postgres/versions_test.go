package postgres

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// What differs between PostgreSQL majors. `make test` runs this package on
// 15 (Debian's), 16 (what the chart deploys) and 17 (BOOTSTRAP_TEST_PG_MAJOR,
// scripts/testenv.d/pgmajors.sh); each test here failed on a major before
// the fix it names.

func TestParseMajor(t *testing.T) {
	for in, want := range map[string]int{
		"15.10 (Debian 15.10-0+deb12u1)": 15,
		"16.14":                          16,
		"17.10":                          17,
		"18beta1":                        18,
		"9.6.24":                         9,
		"":                               0,
		"x":                              0,
	} {
		if got := parseMajor(in); got != want {
			t.Errorf("parseMajor(%q) = %d, want %d", in, got, want)
		}
	}
}

// serverMajorOf is the major version of the test server, for the checks
// that only exist on some majors.
func serverMajorOf(t *testing.T, f *fixture) int {
	t.Helper()
	var n int
	if err := adminConn(t, f.pg, "postgres").QueryRow(context.Background(),
		`SELECT current_setting('server_version_num')::int / 10000`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestGrantAllOnTablesIsTheServersAll: ALL on tables grants every table
// privilege the server knows, on the tables there and, through default
// privileges, on those the owner makes later; a second plan is empty.
// PostgreSQL 17 added MAINTAIN, which the server's own GRANT ALL includes:
// ALL was expanded to the seven privileges of 15 and 16 and left it out.
func TestGrantAllOnTablesIsTheServersAll(t *testing.T) {
	f := newFixture(t, "health")
	cfg := f.config()
	owner, _ := f.loginRole("allown")
	reader, _ := f.loginRole("allrdr")
	db := f.db("all")
	cfg.Roles = []config.PGRole{owner, reader}
	cfg.Databases = []config.PGDatabase{{Name: db, Owner: owner.Name, Schemas: []config.PGSchema{{Name: "app", Owner: owner.Name}}}}
	applyAll(t, cfg, f.creds)
	ctx := context.Background()
	dc := adminConn(t, f.pg, db)
	asOwner := func(stmt string) {
		t.Helper()
		if _, err := dc.Exec(ctx, "SET ROLE "+ident(owner.Name)+"; "+stmt+"; RESET ROLE"); err != nil {
			t.Fatal(err)
		}
	}
	asOwner("CREATE TABLE app.before (id int)")

	cfg.Grants = []config.PGGrant{{Role: reader.Name, Database: db, Schema: "app", On: "tables", Privileges: []string{"ALL"}}}
	applyAll(t, cfg, f.creds)
	asOwner("CREATE TABLE app.after (id int)")
	if w := writes(planOf(t, cfg, f.creds)); len(w) != 0 {
		t.Fatalf("plan after apply: %v", w)
	}

	// Every table privilege the server knows: what an owner holds.
	var all []string
	if err := dc.QueryRow(ctx, `SELECT array_agg(privilege_type ORDER BY privilege_type)
		FROM aclexplode(acldefault('r', $1::regrole))`, owner.Name).Scan(&all); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"app.before", "app.after"} {
		var got []string
		if err := dc.QueryRow(ctx, `SELECT coalesce(array_agg(a.privilege_type ORDER BY a.privilege_type), '{}')
			FROM pg_class c, aclexplode(c.relacl) a
			WHERE c.oid = $1::regclass AND a.grantee = $2::regrole`, table, reader.Name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, all) {
			t.Errorf("%s: %s holds %v, want the server's ALL %v", table, reader.Name, got, all)
		}
	}
}

// TestMembershipInheritsAndSets: a membership the config names lets the
// member use the role's privileges (INHERIT) and SET ROLE to it. Since
// PostgreSQL 16, a role made by a CREATEROLE non-superuser leaves its
// creator an ADMIN-only member (INHERIT FALSE, SET FALSE): the membership
// existed, so the plan was empty while the creator could use none of the
// role's privileges — and a plain GRANT leaves an existing membership's
// options as they are.
func TestMembershipInheritsAndSets(t *testing.T) {
	f := newFixture(t, "health")
	creator, group := f.role("creator"), f.role("made")
	admin := adminConn(t, f.pg, "postgres")
	ctx := context.Background()
	if _, err := admin.Exec(ctx, "CREATE ROLE "+ident(creator)+" CREATEROLE NOLOGIN; SET ROLE "+ident(creator)+
		"; CREATE ROLE "+ident(group)+" NOLOGIN; RESET ROLE"); err != nil {
		t.Fatal(err)
	}
	cfg := f.config()
	cfg.Roles = []config.PGRole{
		{Name: group, Login: ptr(false)},
		{Name: creator, Login: ptr(false), InRoles: []string{group}},
	}
	res := "postgres/health/membership/" + creator + "/" + group
	major := serverMajorOf(t, f)
	c, _ := find(planOf(t, cfg, f.creds), res)
	want, detail := reconcile.Create, "grant role "+group+" to "+creator
	if major >= 16 {
		want, detail = reconcile.Update, "missing INHERIT, SET"
	}
	if c.Action != want || c.Detail != detail {
		t.Fatalf("plan %s: %s (%s), want %s (%s)", res, c.Action, c.Detail, want, detail)
	}
	applyAll(t, cfg, f.creds)
	if w := writes(planOf(t, cfg, f.creds)); len(w) != 0 {
		t.Fatalf("plan after apply: %v", w)
	}
	checks := []string{"USAGE", "MEMBER"}
	if major >= 16 {
		checks = append(checks, "SET")
	}
	for _, p := range checks {
		var ok bool
		if err := admin.QueryRow(ctx, `SELECT pg_has_role($1, $2, $3)`, creator, group, p).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Errorf("pg_has_role(%s, %s, %s) is false after apply", creator, group, p)
		}
	}
	if t.Failed() {
		t.Logf("server major %d; memberships: %s", major, strings.Join(memberships(t, f, creator), "; "))
	}
}

// memberships lists role's pg_auth_members rows as text, for failures.
func memberships(t *testing.T, f *fixture, role string) []string {
	t.Helper()
	rows, err := adminConn(t, f.pg, "postgres").Query(context.Background(),
		`SELECT to_jsonb(m)::text FROM pg_auth_members m WHERE m.member = $1::regrole`, role)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}
