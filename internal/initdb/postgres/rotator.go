package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/rotate"
)

// Rotator is the PostgreSQL side of one rotating role for the rotation
// flow (internal/rotate): it sets, proves and retires the passwords of the
// role's logins, NAME_a and NAME_b, as the admin, over the connection code
// of the Target (timeouts, TLS, a pending admin rotation). It takes no
// advisory lock: an apply running meanwhile never touches the login the
// rotation works on (rotation.go), and the creates it shares with one
// tolerate losing the race.
//
// Which login holds the current password is read, at each call, from the
// resolved credentials it was given (the NAME/username key, which the
// rotation updates when it promotes): Set refuses to change that login's
// password and Retire to retire it, so no step locks the apps out.
type Rotator struct {
	t  *Target
	rr rotatingRole
	// err says the config declares no such rotating role; every method
	// returns it.
	err error

	mu        sync.Mutex
	connected bool
}

var _ rotate.Server = (*Rotator)(nil)

// NewRotator returns the rotate.Server of role, a role of cfg with
// rotation. creds must hold the admin's secret; the role's own secret is
// not read (the flow passes each password). log may be nil. It connects on
// first use; a role cfg does not declare with rotation makes every method
// fail naming it.
func NewRotator(cfg config.Postgres, role string, creds credential.Resolved, log *slog.Logger) *Rotator {
	r := &Rotator{t: New(cfg, creds, log)}
	for _, rc := range cfg.Roles {
		if rc.Name == role && rotates(rc) {
			r.rr = rotatingRole{PGRole: rc, ids: identities(role)}
			return r
		}
	}
	r.err = fmt.Errorf("%s: the config declares no such role with rotation", r.t.res("role", role))
	return r
}

// current is the login the resolved credentials say holds the password
// now: the username stored beside it, or the declared role for a plain
// value.
func (r *Rotator) current() string {
	if u := r.t.creds[credential.UsernameKey(r.rr.Password.Secret)]; !u.IsZero() {
		return u.Reveal()
	}
	return r.rr.Name
}

// notCurrent refuses a change to the login apps use now.
func (r *Rotator) notCurrent(username string) error {
	if username == r.current() {
		return fmt.Errorf("%s holds the current password of secret %q, which apps use; the rotation changes only the other login", username, r.rr.Password.Secret)
	}
	return nil
}

// begin checks that username is the role or one of its logins and opens
// the admin connection once; a failed attempt is retried by the next call.
func (r *Rotator) begin(ctx context.Context, username string, connect bool) error {
	if r.err != nil {
		return r.err
	}
	if !r.rr.owns(username) {
		return fmt.Errorf("%q is none of role %s's identities (%s, %s, %s)", username, r.rr.Name, r.rr.Name, r.rr.ids[0], r.rr.ids[1])
	}
	if !connect {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.connected {
		return nil
	}
	if err := r.t.Connect(ctx); err != nil {
		return err
	}
	r.connected = true
	return nil
}

// Set lets username log in with password: for a login, it is first made
// what the plan makes it (created NOLOGIN when missing, a member of the
// group, its role setting and default privileges), then given LOGIN and
// the password's SCRAM verifier. The declared role itself (a value from
// before rotation) only gets LOGIN and the password.
func (r *Rotator) Set(ctx context.Context, username string, password credential.Credential) error {
	res := r.t.res("role", username)
	if err := r.begin(ctx, username, true); err != nil {
		return fmt.Errorf("set %s: %w", res, err)
	}
	if err := r.notCurrent(username); err != nil {
		return fmt.Errorf("set %s: %w", res, err)
	}
	if password.IsZero() {
		return fmt.Errorf("set %s: the password is empty", res)
	}
	start := time.Now()
	if username != r.rr.Name {
		if err := r.setUp(ctx, username); err != nil {
			return fmt.Errorf("set %s: %w", res, err)
		}
	}
	v, err := newSCRAMVerifier(password.Reveal())
	if err != nil {
		return fmt.Errorf("set %s: %w", res, err)
	}
	verifier := credential.New(v)
	if err := r.t.applyAlterRole(username, "LOGIN", &verifier)(ctx); err != nil {
		return err
	}
	r.t.log.Info("login and password set", "resource", res, "durationMs", time.Since(start).Milliseconds())
	return nil
}

// setUp brings login to what the plan wants of a standby login, reading
// and planning only what concerns it.
func (r *Rotator) setUp(ctx context.Context, login string) error {
	t, group := r.t, r.rr.Name
	grants, err := normaliseGrants(t.name, t.cfg.Grants)
	if err != nil {
		return err
	}
	dbs := t.rotationDatabases(group, grants)
	logins := map[string][]loginOf{}
	for _, db := range dbs {
		logins[db] = []loginOf{{login: login, group: group}}
	}
	st, err := r.read(ctx, []string{group, login}, dbs, logins)
	if err != nil {
		return err
	}
	changes := []reconcile.Change{
		t.planGroup(r.rr, st.roles[group]),
		t.planLogin(r.rr, login, st.roles[login], passwordPlan{}, false),
		t.planMembership(st, login, group),
		t.planRoleSetting(st, login, group),
	}
	for _, db := range dbs {
		// A database still to be created gets them from the apply that
		// creates it.
		if st.dbs[db] != nil {
			changes = append(changes, t.planLoginDefaults(st, db, login, group))
		}
	}
	for _, c := range changes {
		if c.Action == reconcile.Noop || c.Apply == nil {
			continue
		}
		start := time.Now()
		if err := c.Apply(ctx); err != nil {
			return err
		}
		t.log.Info("applied", "resource", c.Resource, "action", c.Action, "detail", c.Detail, "durationMs", time.Since(start).Milliseconds())
	}
	return nil
}

// read reads roles, databases and the logins' default privileges.
func (r *Rotator) read(ctx context.Context, roles, dbs []string, logins map[string][]loginOf) (*state, error) {
	t := r.t
	t.mu.Lock()
	defer t.mu.Unlock()
	conn, err := t.adminConnLocked(ctx)
	if err != nil {
		return nil, err
	}
	st, err := t.readState(ctx, conn, roles, dbs)
	if err != nil {
		return nil, wrapCtx(ctx, err)
	}
	if err := t.readDetailsLocked(ctx, st, dbs, nil, nil, nil, logins); err != nil {
		return nil, err
	}
	return st, nil
}

// Prove opens a new session as username with password, to the database
// Verify logs the role in to, runs SELECT 1 and closes it.
func (r *Rotator) Prove(ctx context.Context, username string, password credential.Credential) error {
	if err := r.begin(ctx, username, false); err != nil {
		return fmt.Errorf("prove %s: %w", r.t.res("login", username), err)
	}
	grants, err := normaliseGrants(r.t.name, r.t.cfg.Grants)
	if err != nil {
		return fmt.Errorf("prove %s: %w", r.t.res("login", username), err)
	}
	return r.t.checkLogin(username, r.t.loginDatabase(r.rr.Name, grants), password)(ctx)
}

// Sessions lists username's sessions from pg_stat_activity, other than
// this one: "client_addr application_name (backend pid N)", with local for
// a Unix socket and - for no application name.
func (r *Rotator) Sessions(ctx context.Context, username string) ([]string, error) {
	res := r.t.res("login", username)
	if err := r.begin(ctx, username, true); err != nil {
		return nil, fmt.Errorf("sessions of %s: %w", res, err)
	}
	var out []string
	err := r.t.withConn(ctx, "", func(c *pgx.Conn) error {
		out = nil
		rows, err := c.Query(ctx, `SELECT coalesce(host(client_addr), 'local'), coalesce(nullif(application_name, ''), '-'), pid
			FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid() ORDER BY pid`, username)
		if err != nil {
			return err
		}
		var addr, app string
		var pid int32
		_, err = pgx.ForEachRow(rows, []any{&addr, &app, &pid}, func() error {
			out = append(out, fmt.Sprintf("%s %s (backend pid %d)", addr, app, pid))
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sessions of %s: %w", res, err)
	}
	return out, nil
}

// Active reports whether username can still log in with password: the
// role exists with LOGIN and its stored verifier (or legacy md5 hash) is
// password's. No session is opened as username.
func (r *Rotator) Active(ctx context.Context, username string, password credential.Credential) (bool, error) {
	res := r.t.res("role", username)
	if err := r.begin(ctx, username, true); err != nil {
		return false, fmt.Errorf("check %s: %w", res, err)
	}
	var login bool
	var stored *string
	err := r.t.withConn(ctx, "", func(c *pgx.Conn) error {
		err := c.QueryRow(ctx, `SELECT rolcanlogin, rolpassword FROM pg_authid WHERE rolname = $1`, username).Scan(&login, &stored)
		if errors.Is(err, pgx.ErrNoRows) {
			login, stored = false, nil
			return nil
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("check %s: %w", res, err)
	}
	return login && stored != nil && passwordMatches(username, password, *stored), nil
}

// Retire stops username logging in: NOLOGIN, PASSWORD NULL. Its live
// sessions go on (PostgreSQL does not end them). A login already retired,
// or missing, is left as it is. It refuses the current login and, as a
// last guard, the only one of the role's identities that can still log in
// with a password: either would lock every app out.
func (r *Rotator) Retire(ctx context.Context, username string, _ credential.Credential) error {
	res := r.t.res("role", username)
	if err := r.begin(ctx, username, true); err != nil {
		return fmt.Errorf("retire %s: %w", res, err)
	}
	if err := r.notCurrent(username); err != nil {
		return fmt.Errorf("retire %s: %w", res, err)
	}
	retired := false
	err := r.t.withConn(ctx, "", func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, `SELECT rolname::text, rolcanlogin, rolpassword IS NOT NULL
			FROM pg_authid WHERE rolname = ANY($1::text[])`, []string{r.rr.Name, r.rr.ids[0], r.rr.ids[1]})
		if err != nil {
			return err
		}
		var name string
		var login, password bool
		exists, active, others := false, false, 0
		_, err = pgx.ForEachRow(rows, []any{&name, &login, &password}, func() error {
			switch {
			case name == username:
				exists, active = true, login || password
			case login && password:
				others++
			}
			return nil
		})
		switch {
		case err != nil:
			return err
		case !exists || !active:
			return nil
		case others == 0:
			return fmt.Errorf("it is the only identity of role %s that can log in; set and promote another first", r.rr.Name)
		}
		_, err = c.Exec(ctx, "ALTER ROLE "+ident(username)+" WITH NOLOGIN PASSWORD NULL")
		retired = err == nil
		return err
	})
	if err != nil {
		return fmt.Errorf("retire %s: %w", res, err)
	}
	if retired {
		r.t.log.Info("login retired: NOLOGIN, PASSWORD NULL", "resource", res)
	}
	return nil
}

// Close releases the admin connection.
func (r *Rotator) Close() error {
	return r.t.Close()
}
