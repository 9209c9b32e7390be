package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ident quotes an identifier.
func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// public is how grants name the PUBLIC pseudo-role (every role, grantee 0
// in the catalogs); the config's public, in any case, is normalised to it.
const public = "PUBLIC"

// grantee spells a grant's role: PUBLIC is a keyword, not a role name (a
// quoted "PUBLIC" would be a role that does not exist).
func grantee(role string) string {
	if role == public {
		return public
	}
	return ident(role)
}

// literal quotes a string constant for utility statements, which take no
// bind parameters.
func literal(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func identList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = ident(n)
	}
	return strings.Join(q, ", ")
}

// sqlState returns the SQLSTATE of a server error, or "".
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// alreadyExists reports the errors a CREATE that lost a race returns:
// duplicate_object (roles), duplicate_database, or the catalog's unique
// index when both inserts got that far.
func alreadyExists(err error) bool {
	switch sqlState(err) {
	case "42710", "42P04", "23505":
		return true
	}
	return false
}

// transient reports conflicts with a concurrent writer that succeed when
// retried: two GRANTs updating the same catalog row ("tuple concurrently
// updated"), a catalog unique index hit by two IF NOT EXISTS creates,
// serialisation failures and deadlocks, and CREATE DATABASE finding
// another session in the template.
func transient(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "40001", "40P01", "23505", "55006":
		return true
	case "XX000":
		return strings.Contains(pgErr.Message, "concurrently")
	}
	return false
}

// withConn runs fn on a superuser connection to db (the admin database when
// db is ""), holding the target's lock, retrying transient conflicts a few
// times with jittered backoff. It fails before touching the server when
// ctx has ended.
func (t *Target) withConn(ctx context.Context, db string, fn func(*pgx.Conn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if db == "" {
		db = t.cfg.Admin.Database
	}
	const attempts = 6
	delay := 20 * time.Millisecond
	for i := 1; ; i++ {
		conn, err := t.dbConnLocked(ctx, db)
		if err != nil {
			return err
		}
		err = fn(conn)
		if err == nil {
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return wrapCtx(ctx, err)
		}
		if !transient(err) || i == attempts {
			return err
		}
		t.log.Debug("retrying after a concurrent update", "database", db, "attempt", i, "error", err)
		timer := time.NewTimer(delay + rand.N(delay))
		select {
		case <-ctx.Done():
			timer.Stop()
			return wrapCtx(ctx, err)
		case <-timer.C:
		}
		delay *= 2
	}
}

// execSecret runs stmt, which holds a password verifier, in a transaction
// whose first act is to stop the server logging statements: the verifier
// must not reach the server log even with log_statement=all, nor be echoed
// as the STATEMENT of an error, nor logged with its duration.
//
// The statements go as one extended-protocol pipeline (a Parse/Bind/Execute
// per statement, one Sync): one round trip, yet the server still handles
// the messages in order, so the SET LOCALs have run before it even parses
// stmt, and under the extended protocol the decision to log is taken per
// Execute. (A single simple-protocol string would not do: the server logs
// the whole string when it arrives, before any SET in it runs.)
func execSecret(ctx context.Context, conn *pgx.Conn, stmt string) error {
	b := &pgconn.Batch{}
	for _, q := range []string{
		"BEGIN",
		"SET LOCAL log_statement = 'none'",
		"SET LOCAL log_min_error_statement = 'panic'",
		"SET LOCAL log_min_duration_statement = -1",
		stmt,
		"COMMIT",
	} {
		b.ExecParams(q, nil, nil, nil, nil)
	}
	if _, err := conn.PgConn().ExecBatch(ctx, b).ReadAll(); err != nil {
		rollback(ctx, conn)
		return err
	}
	return nil
}

func rollback(ctx context.Context, conn *pgx.Conn) {
	if conn.IsClosed() {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, _ = conn.Exec(rctx, "ROLLBACK")
}

// applyCreateRole creates the role; verifier, when set, is its SCRAM
// verifier (never the password itself).
func (t *Target) applyCreateRole(name, options string, verifier *credential.Credential) func(context.Context) error {
	res := t.res("role", name)
	return func(ctx context.Context) error {
		err := t.withConn(ctx, "", func(c *pgx.Conn) error {
			stmt := "CREATE ROLE " + ident(name) + " WITH " + options
			if verifier == nil {
				_, err := c.Exec(ctx, stmt)
				return err
			}
			return execSecret(ctx, c, stmt+" PASSWORD "+literal(verifier.Reveal()))
		})
		if err != nil && !alreadyExists(err) {
			return fmt.Errorf("create %s: %w", res, err)
		}
		return nil
	}
}

func (t *Target) applyAlterRole(name, options string, verifier *credential.Credential) func(context.Context) error {
	res := t.res("role", name)
	return func(ctx context.Context) error {
		err := t.withConn(ctx, "", func(c *pgx.Conn) error {
			stmt := "ALTER ROLE " + ident(name)
			if options != "" {
				stmt += " WITH " + options
			}
			if verifier == nil {
				_, err := c.Exec(ctx, stmt)
				return err
			}
			if options == "" {
				stmt += " WITH"
			}
			return execSecret(ctx, c, stmt+" PASSWORD "+literal(verifier.Reveal()))
		})
		if err != nil {
			return fmt.Errorf("update %s: %w", res, err)
		}
		return nil
	}
}

// applyMembership grants role membership in in; options is
// membershipOptions' WITH clause.
func (t *Target) applyMembership(role, in, options string) func(context.Context) error {
	res := t.res("membership", role, in)
	return func(ctx context.Context) error {
		err := t.withConn(ctx, "", func(c *pgx.Conn) error {
			_, err := c.Exec(ctx, "GRANT "+ident(in)+" TO "+ident(role)+options)
			return err
		})
		if err != nil {
			return fmt.Errorf("create %s: %w", res, err)
		}
		return nil
	}
}

// createSessions bounds the CREATE DATABASEs one target runs at once.
// Copying the template is the server's work, bound by its cores and disk:
// on 2 cores, 24 creations of the 7.5 MB template took 51 ms each one
// after another, 42 two at a time, 48 three, 54 four and 69 six
// (wal_log; file_copy 21, 16, 25, 28). The chart gives each PostgreSQL
// less than one core, where more sessions only share it.
const createSessions = 2

// applyCreateDatabase sends CREATE DATABASE alone: it cannot run inside a
// transaction, and several statements in one Exec would make one. The
// creations run beside each other (Change.Parallel), each on an admin
// session of its own, at most createSessions at once.
func (t *Target) applyCreateDatabase(name, owner, strategy string) func(context.Context) error {
	res := t.res("database", name)
	stmt := "CREATE DATABASE " + ident(name) + " OWNER " + ident(owner)
	if strategy != "" {
		// Validated: wal_log or file_copy, keywords the server takes as they are.
		stmt += " STRATEGY " + strategy
	}
	return func(ctx context.Context) error {
		select {
		case t.creating <- struct{}{}:
			defer func() { <-t.creating }()
		case <-ctx.Done():
			return fmt.Errorf("create %s: %w", res, ctx.Err())
		}
		err := t.withSpareConn(ctx, func(c *pgx.Conn) error {
			_, err := c.Exec(ctx, stmt)
			return err
		})
		if err != nil && !alreadyExists(err) {
			return fmt.Errorf("create %s: %w", res, err)
		}
		return nil
	}
}

// withSpareConn runs fn on an idle admin session of its own, opening one
// when none is idle; at most as many are open as changes run at once.
// The target's advisory lock stays held by the admin session for the
// whole run, so another bootstrap still waits: these sessions only add
// work inside it.
func (t *Target) withSpareConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var c *pgx.Conn
	t.spareMu.Lock()
	if n := len(t.spare); n > 0 {
		c, t.spare = t.spare[n-1], t.spare[:n-1]
	}
	t.spareMu.Unlock()
	if c == nil || c.IsClosed() {
		var err error
		if c, err = t.dialAdmin(ctx, t.cfg.Admin.Database); err != nil {
			return err
		}
	}
	err := fn(c)
	if c.IsClosed() {
		return err
	}
	t.spareMu.Lock()
	t.spare = append(t.spare, c)
	t.spareMu.Unlock()
	return err
}

func (t *Target) applyDatabaseOwner(name, owner string) func(context.Context) error {
	res := t.res("database", name)
	return func(ctx context.Context) error {
		err := t.withConn(ctx, "", func(c *pgx.Conn) error {
			_, err := c.Exec(ctx, "ALTER DATABASE "+ident(name)+" OWNER TO "+ident(owner))
			return err
		})
		if err != nil {
			return fmt.Errorf("update %s: %w", res, err)
		}
		return nil
	}
}

// applyPublicConnect grants CONNECT to the roles that keep it before
// revoking it from PUBLIC, in one transaction, so no keeper is ever locked
// out.
func (t *Target) applyPublicConnect(db string, keep []string, revoke bool) func(context.Context) error {
	res := t.res("revokePublicConnect", db)
	return func(ctx context.Context) error {
		var stmts []string
		if len(keep) > 0 {
			stmts = append(stmts, "GRANT CONNECT ON DATABASE "+ident(db)+" TO "+identList(keep))
		}
		if revoke {
			stmts = append(stmts, "REVOKE CONNECT ON DATABASE "+ident(db)+" FROM PUBLIC")
		}
		err := t.withConn(ctx, "", func(c *pgx.Conn) error {
			_, err := c.Exec(ctx, strings.Join(stmts, "; "))
			return err
		})
		if err != nil {
			return fmt.Errorf("update %s: %w", res, err)
		}
		return nil
	}
}

func (t *Target) applyExtension(db, ext string) func(context.Context) error {
	res := t.res("extension", db, ext)
	return func(ctx context.Context) error {
		err := t.withConn(ctx, db, func(c *pgx.Conn) error {
			_, err := c.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS "+ident(ext)+" CASCADE")
			return err
		})
		if err != nil {
			return fmt.Errorf("create %s: %w", res, err)
		}
		return nil
	}
}

// applySchema creates the schema if missing and sets its owner either way
// (a schema created meanwhile by someone else gets the right owner too).
func (t *Target) applySchema(db, schema, owner string, create bool) func(context.Context) error {
	res := t.res("schema", db, schema)
	verb := "update"
	if create {
		verb = "create"
	}
	return func(ctx context.Context) error {
		stmt := "ALTER SCHEMA " + ident(schema) + " OWNER TO " + ident(owner)
		if create {
			stmt = "CREATE SCHEMA IF NOT EXISTS " + ident(schema) + " AUTHORIZATION " + ident(owner) + "; " + stmt
		}
		err := t.withConn(ctx, db, func(c *pgx.Conn) error {
			_, err := c.Exec(ctx, stmt)
			return err
		})
		if err != nil {
			return fmt.Errorf("%s %s: %w", verb, res, err)
		}
		return nil
	}
}

// applyGrant grants the privileges; for tables and sequences on every
// existing object of the schema and, through the database owner's default
// privileges, on every object the owner (and so every migration) creates
// there later.
func (t *Target) applyGrant(g grantSpec, owner string, withDefaults bool) func(context.Context) error {
	res := t.res(g.resourceParts()...)
	privs := strings.Join(g.Privileges, ", ")
	var stmt, db string
	switch g.Kind {
	case "database":
		stmt = "GRANT " + privs + " ON DATABASE " + ident(g.Database) + " TO " + grantee(g.Role)
	case "schema":
		db = g.Database
		stmt = "GRANT " + privs + " ON SCHEMA " + ident(g.Schema) + " TO " + grantee(g.Role)
	case "tables", "sequences":
		db = g.Database
		objects := strings.ToUpper(g.Kind)
		stmt = "GRANT " + privs + " ON ALL " + objects + " IN SCHEMA " + ident(g.Schema) + " TO " + grantee(g.Role)
		if withDefaults {
			stmt += "; ALTER DEFAULT PRIVILEGES FOR ROLE " + ident(owner) + " IN SCHEMA " + ident(g.Schema) +
				" GRANT " + privs + " ON " + objects + " TO " + grantee(g.Role)
		}
	}
	return func(ctx context.Context) error {
		err := t.withConn(ctx, db, func(c *pgx.Conn) error {
			_, err := c.Exec(ctx, stmt)
			return err
		})
		if err != nil && sqlState(err) == "3F000" && g.Schema != "" {
			// Grants run before migrations, so a schema only a migration
			// creates would fail every run: say how to break the cycle.
			return fmt.Errorf("grant %s: %w; declare schema %s in database %s's schemas so it exists before grants and migrations run", res, err, g.Schema, g.Database)
		}
		if err != nil {
			return fmt.Errorf("grant %s: %w", res, err)
		}
		return nil
	}
}

// applyMigration runs goose up to version, as the database owner. The
// last pending version closes the migrator: each holds a pool of its own,
// and one per database kept open for the run exhausted the server's
// max_connections at the 90th database with migrations here. A later plan
// builds it again.
func (t *Target) applyMigration(db, owner, dir string, version int64, last bool) func(context.Context) error {
	res := t.res("migration", db, fmt.Sprint(version))
	return func(ctx context.Context) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("apply %s: %w", res, err)
		}
		t.mu.Lock()
		m, err := t.migratorLocked(db, owner, dir)
		t.mu.Unlock()
		if err == nil {
			err = m.upTo(ctx, version)
		}
		if err != nil {
			return fmt.Errorf("apply %s: %w", res, wrapCtx(ctx, err))
		}
		if last {
			t.mu.Lock()
			defer t.mu.Unlock()
			if t.migrators[db] == m {
				delete(t.migrators, db)
				if err := m.close(); err != nil {
					t.log.Warn("closing the migrations' sessions", "resource", res, "error", err)
				}
			}
		}
		return nil
	}
}
