// Package postgres is the PostgreSQL backend (target "postgres/<instance>"):
// it brings one server's roles (login, connection limit, password,
// memberships), databases (owner, PUBLIC connect), extensions, schemas,
// grants (including default privileges) and goose SQL migrations to the
// desired state, and verifies that every login role can log in. A role with
// rotation is a group with two logins that take turns (rotation.go); the
// plan never changes the LOGIN or password of the login not in use, which
// belong to the rotation, whose PostgreSQL side is Rotator.
//
// It owns only what the config names: it never drops or revokes anything it
// was not asked to (the one revoke is revokePublicConnect), never touches
// undeclared roles or databases, and never sends a password to the server —
// passwords travel as SCRAM-SHA-256 verifiers computed here, inside a
// transaction that first turns statement logging off.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// advisoryLockKey serialises bootstrap runs against one server: the bytes
// of "bootstrp" as a bigint, taken in the admin database (advisory locks are
// per database, and every run uses the same admin database).
const advisoryLockKey int64 = 0x626f6f7473747270

// Target reconciles one PostgreSQL instance.
type Target struct {
	cfg   config.Postgres
	creds credential.Resolved
	log   *slog.Logger
	name  string

	// mu guards the connections below; pgx connections are not safe for
	// concurrent use, so every Apply holds it for its duration.
	mu    sync.Mutex
	admin *pgx.Conn
	// adminStale: the server takes only the previous admin password
	// (admin.go); set by Connect, cleared once the new one is set.
	adminStale atomic.Bool
	// locked: the admin session holds the advisory lock (Lock).
	locked    bool
	dbConns   dbSessions
	migrators map[string]*migrator

	// spare holds idle admin sessions of the changes that run beside
	// each other (withSpareConn); spareMu guards it, not t.mu, which
	// those changes do not take.
	spareMu sync.Mutex
	spare   []*pgx.Conn
	// creating holds a slot per CREATE DATABASE running (createSessions).
	creating chan struct{}
}

var (
	_ reconcile.Target        = (*Target)(nil)
	_ reconcile.Verifier      = (*Target)(nil)
	_ reconcile.Locker        = (*Target)(nil)
	_ reconcile.WaitDescriber = (*Target)(nil)
)

// New returns the target for one config.postgres entry. creds must hold
// every secret the entry references; log may be nil.
func New(cfg config.Postgres, creds credential.Resolved, log *slog.Logger) *Target {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Port, admin user and database, sslmode and schema owners are
	// config.ApplyDefaults's: a config reaches New loaded.
	name := cfg.Target()
	return &Target{
		cfg:       cfg,
		creds:     creds,
		log:       log.With("target", name),
		name:      name,
		migrators: map[string]*migrator{},
		creating:  make(chan struct{}, createSessions),
	}
}

// Name is postgres/<instance>.
func (t *Target) Name() string { return t.name }

func (t *Target) addr() string {
	return net.JoinHostPort(t.cfg.Host, strconv.Itoa(t.cfg.Port))
}

// WaitingFor says what Connect waits for.
func (t *Target) WaitingFor() string {
	return fmt.Sprintf("PostgreSQL at %s (database %s, user %s)", t.addr(), t.cfg.Admin.Database, t.cfg.Admin.User)
}

func (t *Target) res(parts ...string) string { return reconcile.Resource(t.name, parts...) }

// Connect opens the admin connection and checks the admin is a superuser
// (reading pg_authid and acting on any role needs one). Bad credentials, a
// missing admin database, TLS failures and a non-superuser admin are
// Permanent; a refused connection or a server still starting is retried by
// the engine.
func (t *Target) Connect(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("connect %s: %w", t.name, err)
	}
	conn, err := t.dialAdmin(ctx, t.cfg.Admin.Database)
	if err != nil {
		return err
	}
	var super bool
	err = conn.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super)
	if err != nil {
		conn.Close(context.Background())
		return fmt.Errorf("connect %s: read admin role %s: %w", t.name, t.cfg.Admin.User, err)
	}
	if !super {
		conn.Close(context.Background())
		return reconcile.Permanent(fmt.Errorf("connect %s: admin user %s is not a superuser (needed to read pg_authid and manage roles)", t.name, t.cfg.Admin.User))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.admin != nil {
		t.admin.Close(context.Background())
	}
	t.admin, t.locked = conn, false
	return nil
}

// dial connects as user to database, classifying failures for the engine.
// The error names instance, address, user and database, never the password.
func (t *Target) dial(ctx context.Context, database, user string, password credential.Credential) (*pgx.Conn, error) {
	cc, err := t.connConfig(database, user, password)
	if err != nil {
		return nil, reconcile.Permanent(fmt.Errorf("connect %s at %s as %s: %w", t.name, t.addr(), user, err))
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err == nil {
		return conn, nil
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w (%w)", cerr, err)
	}
	if config.IsCertificateError(err) {
		return nil, reconcile.Permanent(fmt.Errorf("connect %s at %s as %s to database %s: server certificate not trusted, nothing sent: %w", t.name, t.addr(), user, database, err))
	}
	if authRefused(err) {
		// pgx refused before sending anything: the server (or whoever
		// answered) asked for the password in clear, as md5, or for SCRAM
		// without binding it to this TLS channel.
		return nil, reconcile.Permanent(fmt.Errorf("connect %s at %s as %s to database %s: the server asked for the password in a way that could give it away; with TLS on, bootstrap sends it only in SCRAM bound to the TLS channel, and sent nothing (check pg_hba.conf: scram-sha-256 for this user, and password_encryption): %w",
			t.name, t.addr(), user, database, err))
	}
	err = fmt.Errorf("connect %s at %s as %s to database %s: %w", t.name, t.addr(), user, database, err)
	if permanentConnectError(err) {
		return nil, reconcile.Permanent(err)
	}
	return nil, err
}

// authRefused reports pgx's refusal of the server's authentication request
// under RequireAuth and ChannelBinding; pgx says so only in words.
func authRefused(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "channel binding check failed") || strings.Contains(msg, "require_auth check failed")
}

// permanentConnectError reports failures that waiting cannot fix.
func permanentConnectError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01", // invalid_password
			"28000", // invalid_authorization_specification (no pg_hba entry, no such role)
			"3D000": // invalid_catalog_name: the database does not exist
			return true
		}
		// 57P03 cannot_connect_now (starting up, shutting down,
		// recovering), 53300 too_many_connections and the rest: retry.
		return false
	}
	if config.IsCertificateError(err) || errors.As(err, new(*pgconn.NotPreferredError)) {
		return true
	}
	return strings.Contains(err.Error(), "server refused TLS connection")
}

// connConfig builds the connection config field by field: the password is
// set on the struct and never goes through a connection string. Starting
// from ParseConfig("") is required by pgx (it fills dialers and defaults);
// every field that matters is then overwritten so no PG* environment
// variable changes where or how we connect.
func (t *Target) connConfig(database, user string, password credential.Credential) (*pgx.ConnConfig, error) {
	cc, err := pgx.ParseConfig("")
	if err != nil {
		return nil, fmt.Errorf("base config: %w", err)
	}
	cc.Host = t.cfg.Host
	cc.Port = uint16(t.cfg.Port)
	cc.Database = database
	cc.User = user
	cc.Password = password.Reveal()
	to := t.cfg.Timeouts
	cc.ConnectTimeout = to.Connect.Duration
	cc.ValidateConnect = nil
	// Per session, so a statement stuck behind another session's lock (or a
	// server that stops answering mid-statement) fails naming what it ran.
	cc.RuntimeParams = map[string]string{
		"application_name":  "bootstrap",
		"statement_timeout": fmt.Sprint(to.Statement.Milliseconds()),
		"lock_timeout":      fmt.Sprint(to.Lock.Milliseconds()),
	}
	cc.Fallbacks = nil
	if t.cfg.SSLMode == "disable" {
		cc.TLSConfig = nil
		return cc, nil
	}
	tc, err := t.cfg.TLS.ClientConfig(t.cfg.Host)
	if err != nil {
		return nil, err
	}
	switch t.cfg.SSLMode {
	case "prefer":
		// libpq's prefer: try TLS without verifying, fall back to plain. It
		// protects nothing against someone in between; verify-full does.
		tc.InsecureSkipVerify = true
		cc.Fallbacks = []*pgconn.FallbackConfig{{Host: cc.Host, Port: cc.Port, TLSConfig: nil}}
	case "require":
		// libpq's require without a root certificate: encrypted,
		// unverified (warned on every run).
		tc.InsecureSkipVerify = true
	case "verify-full":
	default:
		return nil, fmt.Errorf("sslmode %q is not one of disable, prefer, require, verify-full", t.cfg.SSLMode)
	}
	cc.TLSConfig = tc
	if t.cfg.SSLMode != "prefer" {
		// TLS is required: the password goes only into a SCRAM exchange
		// bound to this TLS channel. A server (or someone in between) that
		// asks for it in clear, as md5, or without channel binding is
		// refused before anything is sent; with require, a relay with its
		// own certificate cannot complete the bound exchange either.
		cc.RequireAuth = "scram-sha-256"
		cc.ChannelBinding = "require"
	}
	return cc, nil
}

// Lock takes the session advisory lock on the admin session Connect
// opened; it blocks until the lock is free or ctx ends. Close releases
// it. The admin session lives for the whole run, and adminConnLocked
// refuses to replace it once it holds the lock, so the lock cannot be
// lost silently; a session of its own would cost a login every run.
func (t *Target) Lock(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.locked {
		return nil
	}
	conn, err := t.adminConnLocked(ctx)
	if err != nil {
		return fmt.Errorf("lock %s: %w", t.name, err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, advisoryLockKey); err != nil {
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w (%w)", cerr, err)
		}
		return fmt.Errorf("lock %s: advisory lock: %w", t.name, err)
	}
	t.locked = true
	return nil
}

// Close releases the lock and every connection. It is safe to call more
// than once and after a failed Connect.
func (t *Target) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	if t.locked && t.admin != nil && !t.admin.IsClosed() {
		// Closing the session releases the lock too; unlocking first
		// keeps a pooled or slow-to-close session from holding it.
		if _, err := t.admin.Exec(ctx, `SELECT pg_advisory_unlock($1)`, advisoryLockKey); err != nil && !t.admin.IsClosed() {
			errs = append(errs, fmt.Errorf("unlock %s: %w", t.name, err))
		}
	}
	t.locked = false
	for db, m := range t.migrators {
		if err := m.close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s migrations for database %s: %w", t.name, db, err))
		}
		delete(t.migrators, db)
	}
	t.dbConns.closeAll(ctx)
	if t.admin != nil {
		_ = t.admin.Close(ctx)
		t.admin = nil
	}
	t.spareMu.Lock()
	for _, c := range t.spare {
		_ = c.Close(ctx)
	}
	t.spare = nil
	t.spareMu.Unlock()
	return errors.Join(errs...)
}

// adminConnLocked returns the admin connection, reopening it when an
// earlier cancelled query closed it, unless it held the advisory lock.
// t.mu must be held.
func (t *Target) adminConnLocked(ctx context.Context) (*pgx.Conn, error) {
	if t.admin != nil && !t.admin.IsClosed() {
		return t.admin, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if t.locked {
		// The lock went with the session: another run may be writing now.
		return nil, errors.New("the admin session that held the advisory lock closed; not writing without the lock")
	}
	pw, err := t.adminPassword()
	if err != nil {
		return nil, fmt.Errorf("admin password: %w", err)
	}
	c, err := t.dial(ctx, t.cfg.Admin.Database, t.cfg.Admin.User, pw)
	if err != nil {
		return nil, err
	}
	t.admin = c
	return c, nil
}

// dbConnLocked returns a superuser connection to database db, opened on
// first use and kept while it is among the last maxDBSessions used (plan
// reads and apply writes in the same database share it). The connection is
// only valid until the next call: that may close it. t.mu must be held.
func (t *Target) dbConnLocked(ctx context.Context, db string) (*pgx.Conn, error) {
	if db == t.cfg.Admin.Database {
		return t.adminConnLocked(ctx)
	}
	if c := t.dbConns.get(db); c != nil {
		return c, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pw, err := t.adminPassword()
	if err != nil {
		return nil, fmt.Errorf("admin password: %w", err)
	}
	c, err := t.dial(ctx, db, t.cfg.Admin.User, pw)
	if err != nil {
		return nil, err
	}
	t.dbConns.put(ctx, db, c)
	return c, nil
}

// migratorLocked returns the goose migrator of database db, built on first
// use. t.mu must be held.
func (t *Target) migratorLocked(db, owner, dir string) (*migrator, error) {
	if m := t.migrators[db]; m != nil {
		return m, nil
	}
	pw, err := t.adminPassword()
	if err != nil {
		return nil, fmt.Errorf("admin password: %w", err)
	}
	cc, err := t.connConfig(db, t.cfg.Admin.User, pw)
	if err != nil {
		return nil, err
	}
	m, err := newMigrator(cc, owner, dir)
	if err != nil {
		return nil, err
	}
	t.migrators[db] = m
	return m, nil
}
