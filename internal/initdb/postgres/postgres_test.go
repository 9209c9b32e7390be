package postgres

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/reconcile/reconciletest"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// fullConfig declares one of everything: a login owner in a group role, a
// reader, a database with an extension, a schema, migrations, PUBLIC
// connect revoked, and grants of every kind.
func fullConfig(t testing.TB, f *fixture, migrations string) (config.Postgres, []string, []string) {
	cfg := f.config()
	owner, _ := f.loginRole("own")
	owner.ConnectionLimit = ptr(5)
	reader, _ := f.loginRole("rdr")
	group := config.PGRole{Name: f.role("grp"), Login: ptr(false)}
	owner.InRoles = []string{group.Name}
	db := f.db("db")
	cfg.Roles = []config.PGRole{group, owner, reader}
	cfg.Databases = []config.PGDatabase{{
		Name:                db,
		Owner:               owner.Name,
		Extensions:          []string{"pgcrypto"},
		Schemas:             []config.PGSchema{{Name: "ingest", Owner: owner.Name}},
		Migrations:          migrations,
		RevokePublicConnect: true,
	}}
	cfg.Grants = []config.PGGrant{
		{Role: reader.Name, Database: db, On: "database", Privileges: []string{"CONNECT", "temp"}},
		{Role: reader.Name, Database: db, Schema: "ingest", On: "schema", Privileges: []string{"USAGE"}},
		{Role: reader.Name, Database: db, On: "tables", Privileges: []string{"SELECT"}},
		{Role: reader.Name, Database: db, Schema: "ingest", On: "tables", Privileges: []string{"select"}},
		{Role: reader.Name, Database: db, Schema: "public", On: "sequences", Privileges: []string{"ALL"}},
	}
	return cfg, []string{group.Name, owner.Name, reader.Name}, []string{db}
}

func TestConformance(t *testing.T) {
	for _, inst := range instances {
		t.Run(inst, func(t *testing.T) {
			reconciletest.Run(t, func(t *testing.T) reconciletest.Env {
				f := newFixture(t, inst)
				cfg, roles, dbs := fullConfig(t, f, "testdata/migrations")
				return reconciletest.Env{
					NewTarget: func() reconcile.Target { return New(cfg, f.creds, nil) },
					Snapshot: func(ctx context.Context) (string, error) {
						return snapshot(ctx, t, f.pg, roles, dbs)
					},
				}
			})
		})
	}
}

func TestPlanNamesAndOrder(t *testing.T) {
	f := newFixture(t, "health")
	cfg, roles, dbs := fullConfig(t, f, "testdata/migrations")
	changes := planOf(t, cfg, f.creds)
	db, group, owner, reader := dbs[0], roles[0], roles[1], roles[2]
	want := []string{
		"create postgres/health/role/" + group,
		"create postgres/health/role/" + owner,
		"create postgres/health/role/" + reader,
		"create postgres/health/membership/" + owner + "/" + group,
		"create postgres/health/database/" + db,
		"create postgres/health/revokePublicConnect/" + db,
		"create postgres/health/extension/" + db + "/pgcrypto",
		"create postgres/health/schema/" + db + "/ingest",
		"create postgres/health/grant/" + db + "/" + reader + "/database",
		"create postgres/health/grant/" + db + "/" + reader + "/schema/ingest",
		"create postgres/health/grant/" + db + "/" + reader + "/tables/public",
		"create postgres/health/grant/" + db + "/" + reader + "/tables/ingest",
		"create postgres/health/grant/" + db + "/" + reader + "/sequences/public",
		"create postgres/health/migration/" + db + "/1",
		"create postgres/health/migration/" + db + "/2",
	}
	var got []string
	for _, c := range changes {
		got = append(got, string(c.Action)+" "+c.Resource)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	c, _ := find(changes, "postgres/health/role/"+owner)
	if c.Detail != "login, connectionLimit 5, password set" {
		t.Errorf("role detail %q", c.Detail)
	}
	c, _ = find(changes, "postgres/health/grant/"+db+"/"+reader+"/sequences/public")
	if !strings.Contains(c.Detail, "USAGE, SELECT, UPDATE") {
		t.Errorf("ALL did not expand for sequences: %q", c.Detail)
	}
	c, _ = find(changes, "postgres/health/revokePublicConnect/"+db)
	if c.Detail != "revoke CONNECT from PUBLIC; grant CONNECT to "+owner+", "+reader {
		t.Errorf("revokePublicConnect detail %q", c.Detail)
	}
}

func TestDroppedDatabaseIsPlannedAsCreate(t *testing.T) {
	for _, inst := range instances {
		t.Run(inst, func(t *testing.T) {
			f := newFixture(t, inst)
			cfg := f.config()
			r, _ := f.loginRole("own")
			cfg.Roles = []config.PGRole{r}
			db := f.db("drop")
			cfg.Databases = []config.PGDatabase{{Name: db, Owner: r.Name, Schemas: []config.PGSchema{{Name: "s1", Owner: r.Name}}}}
			applyAll(t, cfg, f.creds)
			if w := writes(planOf(t, cfg, f.creds)); len(w) != 0 {
				t.Fatalf("plan after apply: %v", w)
			}
			dropDatabases(t, f.pg, db)
			w := writes(planOf(t, cfg, f.creds))
			want := []string{
				"create postgres/" + inst + "/database/" + db + " (owner " + r.Name + ")",
				"create postgres/" + inst + "/schema/" + db + "/s1 (owner " + r.Name + ")",
			}
			if strings.Join(w, "\n") != strings.Join(want, "\n") {
				t.Fatalf("plan after drop:\n%s\nwant:\n%s", strings.Join(w, "\n"), strings.Join(want, "\n"))
			}
			applyAll(t, cfg, f.creds)
			if w := writes(planOf(t, cfg, f.creds)); len(w) != 0 {
				t.Fatalf("plan after re-create: %v", w)
			}
		})
	}
}

func TestPasswordChangeUpdatesExactlyThatRole(t *testing.T) {
	for _, inst := range instances {
		t.Run(inst, func(t *testing.T) {
			f := newFixture(t, inst)
			cfg := f.config()
			var names []string
			for range 3 {
				r, _ := f.loginRole("pw")
				cfg.Roles = append(cfg.Roles, r)
				names = append(names, r.Name)
			}
			applyAll(t, cfg, f.creds)
			admin := adminConn(t, f.pg, "postgres")
			stored := func() map[string]string {
				m := map[string]string{}
				rows, _ := admin.Query(context.Background(), `SELECT rolname::text, rolpassword FROM pg_authid WHERE rolname = ANY($1)`, names)
				for rows.Next() {
					var n, p string
					if err := rows.Scan(&n, &p); err != nil {
						t.Fatal(err)
					}
					m[n] = p
				}
				return m
			}
			before := stored()

			// A re-run rotates nothing.
			if w := writes(applyAll(t, cfg, f.creds)); len(w) != 0 {
				t.Fatalf("second apply: %v", w)
			}
			newPw := randomPassword()
			f.creds["pw-"+names[1]] = credential.New(newPw)
			changes := planOf(t, cfg, f.creds)
			w := writes(changes)
			want := "update postgres/" + inst + "/role/" + names[1] + " (password changed)"
			if len(w) != 1 || w[0] != want {
				t.Fatalf("plan after changing one password: %v, want [%s]", w, want)
			}
			for _, c := range changes {
				if strings.Contains(c.Detail, newPw) {
					t.Fatalf("detail holds the password: %q", c.Detail)
				}
			}
			applyAll(t, cfg, f.creds)
			after := stored()
			for i, n := range names {
				if changed := after[n] != before[n]; changed != (i == 1) {
					t.Errorf("role %d verifier changed=%t", i, changed)
				}
			}
			if !strings.HasPrefix(after[names[1]], "SCRAM-SHA-256$4096:") {
				t.Errorf("stored password is not a SCRAM verifier")
			}
			runVerify(t, cfg, f.creds)
		})
	}
}

func runVerify(t testing.TB, cfg config.Postgres, creds credential.Resolved) []error {
	t.Helper()
	tgt := New(cfg, creds, nil)
	defer tgt.Close()
	connectTarget(t, tgt)
	checks, err := tgt.Verify(context.Background())
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	var errs []error
	for _, c := range checks {
		if c.Action != reconcile.Check {
			t.Errorf("verify returned %s %s", c.Action, c.Resource)
		}
		if c.Apply == nil {
			continue
		}
		if err := c.Apply(context.Background()); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		t.Errorf("verify checks failed: %v", errs)
	}
	return errs
}

func TestVerifyFailsNamingRoleWithoutPassword(t *testing.T) {
	f := newFixture(t, "auth")
	cfg := f.config()
	r, _ := f.loginRole("vf")
	cfg.Roles = []config.PGRole{r}
	applyAll(t, cfg, f.creds)
	wrong := randomPassword()
	f.creds["pw-"+r.Name] = credential.New(wrong)
	tgt := New(cfg, f.creds, nil)
	defer tgt.Close()
	connectTarget(t, tgt)
	checks, err := tgt.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(checks) != 1 || checks[0].Resource != "postgres/auth/login/"+r.Name {
		t.Fatalf("checks: %+v", checks)
	}
	err = checks[0].Apply(context.Background())
	if err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
	msg := err.Error()
	for _, want := range []string{r.Name, "postgres/auth", "28P01"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not name %q", msg, want)
		}
	}
	if strings.Contains(msg, wrong) {
		t.Errorf("error holds the password: %q", msg)
	}
}

func TestConcurrentAppliesBothSucceed(t *testing.T) {
	for _, inst := range instances {
		t.Run(inst, func(t *testing.T) {
			f := newFixture(t, inst)
			cfg, _, _ := fullConfig(t, f, "testdata/migrations")
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
					defer cancel()
					_, errs[i] = tryApply(ctx, cfg, f.creds)
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("apply %d: %v", i, err)
				}
			}
			if w := writes(planOf(t, cfg, f.creds)); len(w) != 0 {
				t.Fatalf("plan after concurrent applies: %v", w)
			}
		})
	}
}

// TestConcurrentAppliesWithoutLock races two applies that skip Lock, so the
// creates and GRANTs really collide: the race-safety of each change, not
// the lock, has to carry them.
func TestConcurrentAppliesWithoutLock(t *testing.T) {
	f := newFixture(t, "health")
	cfg, _, _ := fullConfig(t, f, "")
	cfg.Databases[0].Migrations = ""
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			tgt := New(cfg, f.creds, nil)
			defer tgt.Close()
			if errs[i] = tgt.Connect(ctx); errs[i] != nil {
				return
			}
			changes, err := tgt.Plan(ctx)
			if errs[i] = err; err != nil {
				return
			}
			for _, c := range changes {
				if c.Apply != nil {
					if errs[i] = c.Apply(ctx); errs[i] != nil {
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("apply %d: %v", i, err)
		}
	}
	if w := writes(planOf(t, cfg, f.creds)); len(w) != 0 {
		t.Fatalf("plan after racing applies: %v", w)
	}
}

func TestGrantsCoverTablesCreatedLaterByMigrations(t *testing.T) {
	for _, inst := range instances {
		t.Run(inst, func(t *testing.T) {
			f := newFixture(t, inst)
			dir := t.TempDir()
			copyFile(t, "testdata/migrations/00001_items.sql", filepath.Join(dir, "00001_items.sql"))
			cfg, roles, dbs := fullConfig(t, f, dir)
			owner, reader, db := roles[1], roles[2], dbs[0]
			applyAll(t, cfg, f.creds)

			// A later release ships a migration with a new table.
			copyFile(t, "testdata/migrations/00002_ingest_events.sql", filepath.Join(dir, "00002_ingest_events.sql"))
			w := writes(planOf(t, cfg, f.creds))
			if len(w) != 1 || !strings.HasPrefix(w[0], "create postgres/"+inst+"/migration/"+db+"/2 ") {
				t.Fatalf("plan with a new migration: %v", w)
			}
			applyAll(t, cfg, f.creds)
			if w := writes(planOf(t, cfg, f.creds)); len(w) != 0 {
				t.Fatalf("plan after the migration: %v", w)
			}

			ctx := context.Background()
			admin := adminConn(t, f.pg, db)
			var tableOwner string
			if err := admin.QueryRow(ctx, `SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = 'ingest.events'::regclass`).Scan(&tableOwner); err != nil {
				t.Fatal(err)
			}
			if tableOwner != owner {
				t.Errorf("migration table owned by %s, want the database owner %s", tableOwner, owner)
			}
			if _, err := admin.Exec(ctx, `INSERT INTO ingest.events (payload) VALUES ('{"a":1}')`); err != nil {
				t.Fatal(err)
			}
			rc := loginAs(t, f, reader, db)
			var n int
			if err := rc.QueryRow(ctx, `SELECT (SELECT count(*) FROM items) + (SELECT count(*) FROM ingest.events)`).Scan(&n); err != nil {
				t.Fatalf("reader cannot read the migrated tables: %v", err)
			}
			if n != 2 {
				t.Errorf("reader sees %d rows, want 2", n)
			}
			if _, err := rc.Exec(ctx, `INSERT INTO items (name) VALUES ('x')`); err == nil {
				t.Error("reader could insert: grants too wide")
			}
			var seq bool
			if err := rc.QueryRow(ctx, `SELECT has_sequence_privilege('items_id_seq', 'USAGE')`).Scan(&seq); err != nil || !seq {
				t.Errorf("reader lacks USAGE on the migration's sequence: %v %v", seq, err)
			}
		})
	}
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func loginAs(t testing.TB, f *fixture, role, db string) *pgx.Conn {
	t.Helper()
	pw, err := f.creds.Get("pw-" + role)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(f.config(), f.creds, nil).dial(context.Background(), db, role, pw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func TestRevokePublicConnectKeepsOwnerAndGrantees(t *testing.T) {
	f := newFixture(t, "auth")
	cfg := f.config()
	owner, _ := f.loginRole("own")
	grantee, _ := f.loginRole("gr")
	outsider, _ := f.loginRole("out")
	db := f.db("rpc")
	cfg.Roles = []config.PGRole{owner, grantee, outsider}
	cfg.Databases = []config.PGDatabase{{Name: db, Owner: owner.Name, RevokePublicConnect: true}}
	// Only a schema grant: CONNECT is implied by revokePublicConnect.
	cfg.Grants = []config.PGGrant{{Role: grantee.Name, Database: db, Schema: "public", On: "schema", Privileges: []string{"USAGE"}}}
	applyAll(t, cfg, f.creds)
	loginAs(t, f, owner.Name, db)
	loginAs(t, f, grantee.Name, db)
	pw, _ := f.creds.Get("pw-" + outsider.Name)
	_, err := New(cfg, f.creds, nil).dial(context.Background(), db, outsider.Name, pw)
	if sqlState(err) != "42501" {
		t.Errorf("outsider connect error = %v, want insufficient_privilege", err)
	}
	if w := writes(planOf(t, cfg, f.creds)); len(w) != 0 {
		t.Fatalf("plan after apply: %v", w)
	}
}

func TestUpdatesSayWhatDiffers(t *testing.T) {
	f := newFixture(t, "health")
	cfg := f.config()
	r, _ := f.loginRole("upd")
	other, _ := f.loginRole("oth")
	db := f.db("upd")
	cfg.Roles = []config.PGRole{r, other}
	cfg.Databases = []config.PGDatabase{{Name: db, Owner: r.Name, Schemas: []config.PGSchema{{Name: "s", Owner: r.Name}}}}
	applyAll(t, cfg, f.creds)

	cfg.Roles[0].ConnectionLimit = ptr(50)
	cfg.Roles[0].Login = ptr(false)
	cfg.Databases[0].Owner = other.Name
	cfg.Databases[0].Schemas[0].Owner = other.Name
	w := writes(planOf(t, cfg, f.creds))
	want := []string{
		"update postgres/health/role/" + r.Name + " (login true -> false, connectionLimit -1 -> 50)",
		"update postgres/health/database/" + db + " (owner " + r.Name + " -> " + other.Name + ")",
		"update postgres/health/schema/" + db + "/s (owner " + r.Name + " -> " + other.Name + ")",
	}
	if strings.Join(w, "\n") != strings.Join(want, "\n") {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(w, "\n"), strings.Join(want, "\n"))
	}
	applyAll(t, cfg, f.creds)
	if w := writes(planOf(t, cfg, f.creds)); len(w) != 0 {
		t.Fatalf("plan after update: %v", w)
	}
}

// TestServerLogHoldsNoPassword applies roles with passwords (create, then
// change) against a server logging every statement and scans what it logged.
func TestServerLogHoldsNoPassword(t *testing.T) {
	for _, inst := range instances {
		t.Run(inst, func(t *testing.T) {
			f := newFixture(t, inst)
			if f.pg.LogFile == "" {
				testenv.Missing(t, "PostgreSQL "+inst+" server log")
			}
			start := logSize(t, f.pg.LogFile)
			cfg := f.config()
			r1, pw1 := f.loginRole("leak")
			r2, pw2 := f.loginRole("leak")
			db := f.db("leak")
			cfg.Roles = []config.PGRole{r1, r2}
			cfg.Databases = []config.PGDatabase{{Name: db, Owner: r1.Name}}
			applyAll(t, cfg, f.creds)
			pw3 := randomPassword()
			f.creds["pw-"+r2.Name] = credential.New(pw3)
			applyAll(t, cfg, f.creds)
			runVerify(t, cfg, f.creds)

			admin := adminConn(t, f.pg, "postgres")
			var verifier string
			if err := admin.QueryRow(context.Background(), `SELECT rolpassword FROM pg_authid WHERE rolname = $1`, r2.Name).Scan(&verifier); err != nil {
				t.Fatal(err)
			}
			// Give the logging collector a moment to flush.
			var logged string
			deadline := time.Now().Add(5 * time.Second)
			for {
				logged = readFrom(t, f.pg.LogFile, start)
				if strings.Contains(logged, "CREATE DATABASE "+ident(db)) || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if !strings.Contains(logged, "CREATE DATABASE "+ident(db)) {
				t.Fatalf("the server log does not show our statements; is log_statement=all on? (%d bytes logged)", len(logged))
			}
			for name, secret := range map[string]string{"password 1": pw1, "password 2": pw2, "password 3": pw3, "stored verifier": verifier} {
				if strings.Contains(logged, secret) {
					t.Errorf("the server log holds %s", name)
				}
			}
			if strings.Contains(logged, "SCRAM-SHA-256$") {
				t.Error("the server log holds a SCRAM verifier")
			}
		})
	}
}

func logSize(t testing.TB, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("server log: %v", err)
	}
	return st.Size()
}

func readFrom(t testing.TB, path string, off int64) string {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.Seek(off, 0); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(fh)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWrongAdminPasswordIsPermanent(t *testing.T) {
	for _, inst := range instances {
		t.Run(inst, func(t *testing.T) {
			f := newFixture(t, inst)
			wrong := randomPassword()
			creds := credential.Resolved{"pg-admin": credential.New(wrong)}
			tgt := New(f.config(), creds, nil)
			defer tgt.Close()
			err := tgt.Connect(context.Background())
			if err == nil {
				t.Fatal("connect with a wrong admin password succeeded")
			}
			if !reconcile.IsPermanent(err) {
				t.Errorf("error is not permanent: %v", err)
			}
			msg := err.Error()
			for _, want := range []string{"postgres/" + inst, f.pg.Host, f.pg.User, "28P01"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not name %q", msg, want)
				}
			}
			if strings.Contains(msg, wrong) {
				t.Errorf("error holds the password: %q", msg)
			}
		})
	}
}

func TestUnreachableServerIsRetryable(t *testing.T) {
	f := newFixture(t, "health")
	cfg := f.config()
	cfg.Port = 1 // nothing listens there
	tgt := New(cfg, f.creds, nil)
	defer tgt.Close()
	if w := tgt.WaitingFor(); !strings.Contains(w, f.pg.Host+":1") {
		t.Errorf("WaitingFor = %q", w)
	}
	err := tgt.Connect(context.Background())
	if err == nil || reconcile.IsPermanent(err) {
		t.Fatalf("connect to a closed port: %v (permanent=%t), want a retryable error", err, reconcile.IsPermanent(err))
	}
}

func TestMissingMigrationsFolderNamesIt(t *testing.T) {
	f := newFixture(t, "health")
	cfg := f.config()
	missing := filepath.Join(t.TempDir(), "nope")
	cfg.Databases = []config.PGDatabase{{Name: f.db("mig"), Migrations: missing}}
	tgt := New(cfg, f.creds, nil)
	defer tgt.Close()
	connectTarget(t, tgt)
	_, err := tgt.Plan(context.Background())
	if err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("plan error %v does not name the missing folder %s", err, missing)
	}
}

func TestLockBlocksUntilReleased(t *testing.T) {
	f := newFixture(t, "auth")
	cfg := f.config()
	a := New(cfg, f.creds, nil)
	defer a.Close()
	connectTarget(t, a)
	if err := a.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := New(cfg, f.creds, nil)
	defer b.Close()
	connectTarget(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := b.Lock(ctx); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock while held: %v, want deadline exceeded", err)
	}
	a.Close()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if err := b.Lock(ctx2); err != nil {
		t.Fatalf("lock after release: %v", err)
	}
}

func TestNormaliseGrants(t *testing.T) {
	tests := []struct {
		name string
		in   []config.PGGrant
		want []grantSpec
		err  string
	}{
		{
			name: "all expands per kind",
			in: []config.PGGrant{
				{Role: "r", Database: "d", On: "database", Privileges: []string{"ALL"}},
				{Role: "r", Database: "d", On: "tables", Privileges: []string{"all privileges"}},
				{Role: "r", Database: "d", Schema: "s", On: "Schema", Privileges: []string{"ALL"}},
				{Role: "r", Database: "d", On: "sequences", Privileges: []string{"ALL"}},
			},
			want: []grantSpec{
				{"r", "d", "", "database", []string{"CONNECT", "CREATE", "TEMPORARY"}, true},
				{"r", "d", "public", "tables", []string{"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"}, true},
				{"r", "d", "s", "schema", []string{"USAGE", "CREATE"}, true},
				{"r", "d", "public", "sequences", []string{"USAGE", "SELECT", "UPDATE"}, true},
			},
		},
		{
			name: "temp and case",
			in:   []config.PGGrant{{Role: "r", Database: "d", On: "database", Privileges: []string{"temp", "connect"}}},
			want: []grantSpec{{"r", "d", "", "database", []string{"CONNECT", "TEMPORARY"}, false}},
		},
		{
			name: "duplicates merge",
			in: []config.PGGrant{
				{Role: "r", Database: "d", Schema: "public", On: "tables", Privileges: []string{"SELECT"}},
				{Role: "r", Database: "d", On: "tables", Privileges: []string{"INSERT"}},
			},
			want: []grantSpec{{"r", "d", "public", "tables", []string{"SELECT", "INSERT"}, false}},
		},
		{
			name: "privilege of another kind",
			in:   []config.PGGrant{{Role: "r", Database: "d", Schema: "s", On: "schema", Privileges: []string{"SELECT"}}},
			err:  `postgres/x/grant/d/r/schema/s: privilege "SELECT" does not apply to schema`,
		},
		{
			name: "unknown kind",
			in:   []config.PGGrant{{Role: "r", Database: "d", On: "functions", Privileges: []string{"EXECUTE"}}},
			err:  "on must be database, schema, tables or sequences",
		},
		{
			name: "schema grant without schema",
			in:   []config.PGGrant{{Role: "r", Database: "d", On: "schema", Privileges: []string{"USAGE"}}},
			err:  "schema is required",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := normaliseGrants("postgres/x", tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i].Role != tc.want[i].Role || got[i].Schema != tc.want[i].Schema || got[i].Kind != tc.want[i].Kind || got[i].All != tc.want[i].All ||
					strings.Join(got[i].Privileges, ",") != strings.Join(tc.want[i].Privileges, ",") {
					t.Errorf("grant %d: got %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestSSLModes(t *testing.T) {
	tgt := New(config.Postgres{Name: "x", Host: "db.example", SSLMode: "verify-full"}, nil, nil)
	cc, err := tgt.connConfig("d", "u", credential.New("p"))
	if err != nil {
		t.Fatal(err)
	}
	if cc.TLSConfig == nil || cc.TLSConfig.InsecureSkipVerify || cc.TLSConfig.ServerName != "db.example" || len(cc.Fallbacks) != 0 {
		t.Errorf("verify-full: %+v fallbacks %d", cc.TLSConfig, len(cc.Fallbacks))
	}
	if cc.RequireAuth != "scram-sha-256" || cc.ChannelBinding != "require" {
		t.Errorf("verify-full: require_auth %q, channel_binding %q: want SCRAM bound to the channel", cc.RequireAuth, cc.ChannelBinding)
	}
	tgt.cfg.SSLMode = "require"
	cc, _ = tgt.connConfig("d", "u", credential.New("p"))
	if cc.TLSConfig == nil || !cc.TLSConfig.InsecureSkipVerify || len(cc.Fallbacks) != 0 {
		t.Errorf("require: %+v fallbacks %d", cc.TLSConfig, len(cc.Fallbacks))
	}
	if cc.RequireAuth != "scram-sha-256" || cc.ChannelBinding != "require" {
		t.Errorf("require: require_auth %q, channel_binding %q: want SCRAM bound to the channel", cc.RequireAuth, cc.ChannelBinding)
	}
	tgt.cfg.SSLMode = "prefer"
	cc, _ = tgt.connConfig("d", "u", credential.New("p"))
	if cc.TLSConfig == nil || len(cc.Fallbacks) != 1 || cc.Fallbacks[0].TLSConfig != nil {
		t.Errorf("prefer: %+v fallbacks %d", cc.TLSConfig, len(cc.Fallbacks))
	}
	tgt.cfg.SSLMode = "disable"
	cc, _ = tgt.connConfig("d", "u", credential.New("p"))
	if cc.TLSConfig != nil || len(cc.Fallbacks) != 0 {
		t.Errorf("disable: %+v fallbacks %d", cc.TLSConfig, len(cc.Fallbacks))
	}
	tgt.cfg.SSLMode = "allow"
	if _, err := tgt.connConfig("d", "u", credential.New("p")); err == nil {
		t.Error("sslmode allow accepted")
	}
}

func TestGrantOnUndeclaredMissingSchemaSaysHowToFix(t *testing.T) {
	f := newFixture(t, "auth")
	cfg := f.config()
	r, _ := f.loginRole("gs")
	db := f.db("gs")
	cfg.Roles = []config.PGRole{r}
	cfg.Databases = []config.PGDatabase{{Name: db, Owner: r.Name}}
	cfg.Grants = []config.PGGrant{{Role: r.Name, Database: db, Schema: "later", On: "tables", Privileges: []string{"SELECT"}}}
	_, err := tryApply(context.Background(), cfg, f.creds)
	if err == nil || sqlState(err) != "3F000" || !strings.Contains(err.Error(), "declare schema later in database "+db) {
		t.Fatalf("error %v, want 3F000 with a remedy", err)
	}
	if !strings.Contains(err.Error(), "postgres/auth/grant/"+db+"/"+r.Name+"/tables/later") {
		t.Errorf("error does not name the resource: %v", err)
	}
}

// TestExistingPasswordsAreAdopted covers roles made outside bootstrap: an
// md5 hash of the right password is upgraded to SCRAM, a role without a
// password gets one, and after that nothing changes.
func TestExistingPasswordsAreAdopted(t *testing.T) {
	f := newFixture(t, "health")
	cfg := f.config()
	md5Role, md5Pw := f.loginRole("md5")
	bare, _ := f.loginRole("bare")
	cfg.Roles = []config.PGRole{md5Role, bare}
	admin := adminConn(t, f.pg, "postgres")
	ctx := context.Background()
	if _, err := admin.Exec(ctx, "SET log_statement = 'none'"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "SET password_encryption = 'md5'; CREATE ROLE "+ident(md5Role.Name)+" LOGIN PASSWORD "+literal(md5Pw)+
		"; CREATE ROLE "+ident(bare.Name)+" LOGIN; RESET password_encryption; RESET log_statement"); err != nil {
		t.Fatal(err)
	}
	w := writes(planOf(t, cfg, f.creds))
	want := []string{
		"update postgres/health/role/" + md5Role.Name + " (password stored as md5 -> SCRAM-SHA-256)",
		"update postgres/health/role/" + bare.Name + " (password set)",
	}
	if strings.Join(w, "\n") != strings.Join(want, "\n") {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(w, "\n"), strings.Join(want, "\n"))
	}
	applyAll(t, cfg, f.creds)
	if w := writes(planOf(t, cfg, f.creds)); len(w) != 0 {
		t.Fatalf("plan after apply: %v", w)
	}
	runVerify(t, cfg, f.creds)
}
