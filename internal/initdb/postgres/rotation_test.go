package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// rotatingRole declares a login role with rotation whose secret holds a
// plain password (no username yet), and returns it with its two logins,
// which the fixture drops too.
func (f *fixture) rotatingRole(prefix string) (config.PGRole, [2]string, string) {
	r, pw := f.loginRole(prefix)
	r.Rotation = &config.Rotation{}
	ids := identities(r.Name)
	f.mu.Lock()
	f.roles = append(f.roles, ids[0], ids[1])
	f.mu.Unlock()
	return r, ids, pw
}

// hold makes login the holder of r's current password pw, as the rotation
// leaves the resolved credentials after a promotion.
func (f *fixture) hold(r config.PGRole, login, pw string) {
	f.creds[r.Password.Secret] = credential.New(pw)
	f.creds[credential.UsernameKey(r.Password.Secret)] = credential.New(login)
}

// dialAs logs in as user with pw to db; the connection is closed when the
// test ends.
func dialAs(t testing.TB, f *fixture, user, pw, db string) (*pgx.Conn, error) {
	t.Helper()
	c, err := New(f.config(), f.creds, nil).dial(context.Background(), db, user, credential.New(pw))
	if err == nil {
		t.Cleanup(func() { c.Close(context.Background()) })
	}
	return c, err
}

func mustDial(t testing.TB, f *fixture, user, pw, db string) *pgx.Conn {
	t.Helper()
	c, err := dialAs(t, f, user, pw, db)
	if err != nil {
		t.Fatalf("log in as %s: %v", user, err)
	}
	return c
}

func mustExec(t testing.TB, c *pgx.Conn, stmt string) {
	t.Helper()
	if _, err := c.Exec(context.Background(), stmt); err != nil {
		t.Fatalf("as %s: %s: %v", c.Config().User, stmt, err)
	}
}

// roleAttrs reads whether each role can log in and has a password; a
// missing role is absent.
func roleAttrs(t testing.TB, f *fixture, roles ...string) map[string][2]bool {
	t.Helper()
	rows, err := adminConn(t, f.pg, "postgres").Query(context.Background(),
		`SELECT rolname::text, rolcanlogin, rolpassword IS NOT NULL FROM pg_authid WHERE rolname = ANY($1)`, roles)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][2]bool{}
	var name string
	var login, pw bool
	if _, err := pgx.ForEachRow(rows, []any{&name, &login, &pw}, func() error {
		out[name] = [2]bool{login, pw}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func wantAttrs(t testing.TB, f *fixture, want map[string][2]bool) {
	t.Helper()
	var names []string
	for n := range want {
		names = append(names, n)
	}
	got := roleAttrs(t, f, names...)
	for n, w := range want {
		if g, ok := got[n]; !ok || g != w {
			t.Errorf("role %s: [login, password] = %v (exists %t), want %v", n, g, ok, w)
		}
	}
}

func noWrites(t testing.TB, cfg config.Postgres, creds credential.Resolved) {
	t.Helper()
	if w := writes(planOf(t, cfg, creds)); len(w) != 0 {
		t.Fatalf("plan after apply:\n%s", strings.Join(w, "\n"))
	}
}

func newRotator(t testing.TB, f *fixture, cfg config.Postgres, role string) *Rotator {
	t.Helper()
	r := NewRotator(cfg, role, f.creds, nil)
	t.Cleanup(func() { r.Close() })
	return r
}

// TestRotationFreshInstall: a rotating role on an empty server is a
// NOLOGIN group, the login the source names current logs in with the
// password and the other exists NOLOGIN. What a login creates belongs to
// the group (its sessions start as the group); what it creates as itself
// (SET ROLE NONE), the group may still use (default privileges): the other
// login, once the rotation sets it, uses both. A second plan is empty.
func TestRotationFreshInstall(t *testing.T) {
	f := newFixture(t, "health")
	r, ids, pw := f.rotatingRole("rot")
	r.ConnectionLimit = ptr(7)
	db := f.db("rot")
	f.hold(r, ids[0], pw)
	cfg := f.config()
	cfg.Roles = []config.PGRole{r}
	cfg.Databases = []config.PGDatabase{{Name: db, Owner: r.Name}}

	var got []string
	for _, c := range applyAll(t, cfg, f.creds) {
		got = append(got, string(c.Action)+" "+c.Resource+" ("+c.Detail+")")
	}
	p := "postgres/health/"
	want := []string{
		"create " + p + "role/" + r.Name + " (nologin, group of " + ids[0] + " and " + ids[1] + ")",
		"create " + p + "role/" + ids[0] + " (login, connectionLimit 7, password set)",
		"create " + p + "role/" + ids[1] + " (nologin, connectionLimit 7, standby login of " + r.Name + ")",
		"create " + p + "membership/" + ids[0] + "/" + r.Name + " (grant role " + r.Name + " to " + ids[0] + ")",
		"create " + p + "membership/" + ids[1] + "/" + r.Name + " (grant role " + r.Name + " to " + ids[1] + ")",
		"create " + p + "roleSetting/" + ids[0] + "/role (set role = " + r.Name + " at login)",
		"create " + p + "roleSetting/" + ids[1] + "/role (set role = " + r.Name + " at login)",
		"create " + p + "database/" + db + " (owner " + r.Name + ")",
		"create " + p + "defaultPrivileges/" + db + "/" + ids[0] + " (grant ALL on tables, sequences, functions, schemas " + ids[0] + " creates to " + r.Name + ")",
		"create " + p + "defaultPrivileges/" + db + "/" + ids[1] + " (grant ALL on tables, sequences, functions, schemas " + ids[1] + " creates to " + r.Name + ")",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	noWrites(t, cfg, f.creds)
	wantAttrs(t, f, map[string][2]bool{r.Name: {false, false}, ids[0]: {true, true}, ids[1]: {false, false}})

	a := mustDial(t, f, ids[0], pw, db)
	var user, session string
	if err := a.QueryRow(context.Background(), `SELECT current_user::text, session_user::text`).Scan(&user, &session); err != nil {
		t.Fatal(err)
	}
	if user != r.Name || session != ids[0] {
		t.Errorf("a session of %s runs as %s (session %s), want %s", ids[0], user, session, r.Name)
	}
	mustExec(t, a, "CREATE TABLE grouped (id serial, v text); INSERT INTO grouped (v) VALUES ('a')")
	// RESET ROLE would return to the group, the session's default: SET
	// ROLE NONE is the login acting as itself.
	mustExec(t, a, "SET ROLE NONE; CREATE TABLE own (id serial, v text); INSERT INTO own (v) VALUES ('a')")
	var owners string
	if err := a.QueryRow(context.Background(), `SELECT string_agg(relname || '=' || pg_get_userbyid(relowner), ' ' ORDER BY relname)
		FROM pg_class WHERE relname IN ('grouped', 'own')`).Scan(&owners); err != nil {
		t.Fatal(err)
	}
	if want := "grouped=" + r.Name + " own=" + ids[0]; owners != want {
		t.Errorf("owners %q, want %q", owners, want)
	}

	pw2 := randomPassword()
	if err := newRotator(t, f, cfg, r.Name).Set(context.Background(), ids[1], credential.New(pw2)); err != nil {
		t.Fatal(err)
	}
	b := mustDial(t, f, ids[1], pw2, db)
	for _, stmt := range []string{
		"INSERT INTO grouped (v) VALUES ('b')",
		"ALTER TABLE grouped ADD COLUMN w int",
		"INSERT INTO own (v) VALUES ('b')",
		"UPDATE own SET v = 'c'",
		"SELECT nextval('own_id_seq')",
	} {
		mustExec(t, b, stmt)
	}
	// The standby's LOGIN and password are the rotation's: no plan undoes them.
	noWrites(t, cfg, f.creds)
	if errs := runVerify(t, cfg, f.creds); len(errs) != 0 {
		t.Fatal(errs)
	}
}

// TestRotationOfLegacyLogin: a role that logged in with a plain value
// before rotation was configured stays the apps' login, with its
// password, and gains its two logins. The first rotation moves the
// password to NAME_a and retires NAME, which stays the group owning the
// objects; the plan then leaves it NOLOGIN.
func TestRotationOfLegacyLogin(t *testing.T) {
	f := newFixture(t, "auth")
	r, ids, pw := f.rotatingRole("leg")
	db := f.db("leg")
	cfg := f.config()
	plain := r
	plain.Rotation = nil
	cfg.Roles = []config.PGRole{plain}
	cfg.Databases = []config.PGDatabase{{Name: db, Owner: r.Name}}
	applyAll(t, cfg, f.creds)
	mustExec(t, mustDial(t, f, r.Name, pw, db), "CREATE TABLE legacy (id int)")

	cfg.Roles = []config.PGRole{r}
	w := writes(planOf(t, cfg, f.creds))
	for _, s := range w {
		if strings.Contains(s, "/role/"+r.Name+" ") {
			t.Errorf("the legacy login is changed: %s", s)
		}
	}
	if len(w) != 8 {
		t.Errorf("plan: %d writes, want 8 (2 logins, 2 memberships, 2 settings, 2 default privileges):\n%s", len(w), strings.Join(w, "\n"))
	}
	applyAll(t, cfg, f.creds)
	noWrites(t, cfg, f.creds)
	wantAttrs(t, f, map[string][2]bool{r.Name: {true, true}, ids[0]: {false, false}, ids[1]: {false, false}})
	mustDial(t, f, r.Name, pw, db)
	if errs := runVerify(t, cfg, f.creds); len(errs) != 0 {
		t.Fatal(errs)
	}

	// The first rotation: standby NAME_a, then the declared role retired.
	ctx := context.Background()
	rot := newRotator(t, f, cfg, r.Name)
	pw2 := randomPassword()
	if err := rot.Set(ctx, ids[0], credential.New(pw2)); err != nil {
		t.Fatal(err)
	}
	if err := rot.Prove(ctx, ids[0], credential.New(pw2)); err != nil {
		t.Fatal(err)
	}
	f.hold(r, ids[0], pw2)
	if err := rot.Retire(ctx, r.Name, credential.New(pw)); err != nil {
		t.Fatal(err)
	}
	wantAttrs(t, f, map[string][2]bool{r.Name: {false, false}, ids[0]: {true, true}, ids[1]: {false, false}})
	noWrites(t, cfg, f.creds)
	a := mustDial(t, f, ids[0], pw2, db)
	mustExec(t, a, "INSERT INTO legacy VALUES (1); CREATE TABLE later (id int)")
	var owner string
	if err := a.QueryRow(ctx, `SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE relname = 'later'`).Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if owner != r.Name {
		t.Errorf("a table %s creates belongs to %s, want the group %s", ids[0], owner, r.Name)
	}
}

// TestRotatorSetProveSessionsRetire walks one rotation from NAME_a to
// NAME_b: Set creates a missing standby as the plan would, Prove logs in,
// Sessions lists the old login's open session, Retire makes new logins
// fail while that session goes on. Neither Set nor Retire touches the
// current login, and the server log holds no password.
func TestRotatorSetProveSessionsRetire(t *testing.T) {
	f := newFixture(t, "health")
	r, ids, pw := f.rotatingRole("rtr")
	db := f.db("rtr")
	f.hold(r, ids[0], pw)
	cfg := f.config()
	cfg.Roles = []config.PGRole{r}
	cfg.Databases = []config.PGDatabase{{Name: db, Owner: r.Name}}
	applyAll(t, cfg, f.creds)
	ctx := context.Background()

	// A standby dropped since: Set recreates it as the plan would.
	mustExec(t, adminConn(t, f.pg, db), "DROP OWNED BY "+ident(ids[1]))
	mustExec(t, adminConn(t, f.pg, "postgres"), "DROP ROLE "+ident(ids[1]))
	var logStart int64
	if f.pg.LogFile != "" {
		logStart = logSize(t, f.pg.LogFile)
	}

	old := mustDial(t, f, ids[0], pw, db)
	mustExec(t, old, "CREATE TABLE t (id int)")
	var oldPid int32
	if err := old.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&oldPid); err != nil {
		t.Fatal(err)
	}

	rot := newRotator(t, f, cfg, r.Name)
	pw2 := randomPassword()
	if err := rot.Set(ctx, ids[0], credential.New(pw2)); err == nil || !strings.Contains(err.Error(), "current password") {
		t.Fatalf("Set on the current login: %v, want a refusal", err)
	}
	if err := rot.Set(ctx, ids[1], credential.New(pw2)); err != nil {
		t.Fatal(err)
	}
	noWrites(t, cfg, f.creds)
	// Before Prove, whose session may linger a moment after it closes.
	sessions, err := rot.Sessions(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("127.0.0.1 bootstrap (backend pid %d)", oldPid); len(sessions) != 1 || sessions[0] != want {
		t.Errorf("sessions of %s: %q, want [%q]", ids[0], sessions, want)
	}
	if s, err := rot.Sessions(ctx, ids[1]); err != nil || s != nil {
		t.Errorf("sessions of %s: %q, %v; want none", ids[1], s, err)
	}
	if err := rot.Prove(ctx, ids[1], credential.New(pw2)); err != nil {
		t.Fatal(err)
	}
	if err := rot.Prove(ctx, ids[1], credential.New(pw)); err == nil {
		t.Error("Prove with a wrong password succeeded")
	}
	for _, c := range []struct {
		user, pw string
		want     bool
	}{{ids[0], pw, true}, {ids[1], pw2, true}, {ids[1], pw, false}, {r.Name, pw, false}} {
		if got, err := rot.Active(ctx, c.user, credential.New(c.pw)); err != nil || got != c.want {
			t.Errorf("Active(%s) = %t, %v; want %t", c.user, got, err, c.want)
		}
	}

	if err := rot.Retire(ctx, ids[0], credential.New(pw)); err == nil || !strings.Contains(err.Error(), "current password") {
		t.Fatalf("Retire of the current login: %v, want a refusal", err)
	}
	f.hold(r, ids[1], pw2) // promoted
	for range 2 {
		if err := rot.Retire(ctx, ids[0], credential.New(pw)); err != nil {
			t.Fatal(err)
		}
	}
	// With PASSWORD NULL the server refuses the password before it looks
	// at NOLOGIN ("not permitted to log in", which trust auth would say).
	_, err = dialAs(t, f, ids[0], pw, db)
	if code := sqlState(err); code != "28P01" && code != "28000" {
		t.Errorf("log in as the retired %s: %v, want an authentication failure", ids[0], err)
	}
	mustExec(t, old, "INSERT INTO t VALUES (1)")
	if err := rot.Retire(ctx, ids[1], credential.New(pw2)); err == nil {
		t.Error("Retire of the new current login succeeded")
	}
	wantAttrs(t, f, map[string][2]bool{r.Name: {false, false}, ids[0]: {false, false}, ids[1]: {true, true}})

	if f.pg.LogFile == "" {
		return
	}
	// Set's role setting is logged, so the log has caught up when it shows.
	marker := "ALTER ROLE " + ident(ids[1]) + " SET role"
	var logged string
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logged, marker) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		logged = readFrom(t, f.pg.LogFile, logStart)
	}
	if !strings.Contains(logged, marker) {
		t.Fatalf("the server log does not show Set's statements (%d bytes logged)", len(logged))
	}
	if strings.Contains(logged, pw2) || strings.Contains(logged, "SCRAM-SHA-256$") {
		t.Error("the server log holds the new password or its verifier")
	}
}

// TestApplyAfterRotation: once the source names NAME_b current and NAME_a
// is retired, apply changes nothing, NAME_a stays NOLOGIN without a
// password, and verify logs in as NAME_b.
func TestApplyAfterRotation(t *testing.T) {
	f := newFixture(t, "auth")
	r, ids, pw := f.rotatingRole("aft")
	db := f.db("aft")
	f.hold(r, ids[0], pw)
	cfg := f.config()
	cfg.Roles = []config.PGRole{r}
	cfg.Databases = []config.PGDatabase{{Name: db, Owner: r.Name, Schemas: []config.PGSchema{{Name: "app", Owner: r.Name}}}}
	applyAll(t, cfg, f.creds)

	ctx := context.Background()
	rot := newRotator(t, f, cfg, r.Name)
	pw2 := randomPassword()
	if err := rot.Set(ctx, ids[1], credential.New(pw2)); err != nil {
		t.Fatal(err)
	}
	f.hold(r, ids[1], pw2)
	if err := rot.Retire(ctx, ids[0], credential.New(pw)); err != nil {
		t.Fatal(err)
	}
	for _, c := range applyAll(t, cfg, f.creds) {
		if c.Action != reconcile.Noop {
			t.Errorf("apply after the rotation: %s %s (%s)", c.Action, c.Resource, c.Detail)
		}
	}
	wantAttrs(t, f, map[string][2]bool{r.Name: {false, false}, ids[0]: {false, false}, ids[1]: {true, true}})
	tgt := New(cfg, f.creds, nil)
	defer tgt.Close()
	connectTarget(t, tgt)
	checks, err := tgt.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(checks) != 1 || checks[0].Resource != "postgres/auth/login/"+ids[1] {
		t.Fatalf("verify checks: %+v", checks)
	}
	if err := checks[0].Apply(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestRotatingRoleNamesItsLogins: a username in the source that is none of
// the role's identities fails the plan naming the role, the secret and
// the username, before anything is read.
func TestRotatingRoleNamesItsLogins(t *testing.T) {
	r := config.PGRole{Name: "healthapi", Password: &config.SecretRef{Secret: "pg-healthapi"}, Rotation: &config.Rotation{}}
	creds := credential.Resolved{"pg-healthapi": credential.New("x"), credential.UsernameKey("pg-healthapi"): credential.New("someone")}
	cfg := config.Postgres{Name: "health", Roles: []config.PGRole{r}}
	_, err := New(cfg, creds, nil).rotatingRoles()
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"postgres/health/role/healthapi", "pg-healthapi", "someone", "healthapi_a", "healthapi_b"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}
	delete(creds, credential.UsernameKey("pg-healthapi"))
	rots, err := New(cfg, creds, nil).rotatingRoles()
	if err != nil || rots["healthapi"].current != "healthapi" {
		t.Errorf("a plain value: current %q, %v; want the declared role", rots["healthapi"].current, err)
	}
	if err := NewRotator(cfg, "other", creds, nil).Set(context.Background(), "other_a", credential.New("x")); err == nil || !strings.Contains(err.Error(), "other") {
		t.Errorf("a rotator of an undeclared role: %v", err)
	}
}
