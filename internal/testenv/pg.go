package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PGMajor is BOOTSTRAP_TEST_PG_MAJOR: the PostgreSQL major version (16, 17)
// whose instances, started by scripts/testenv.d/pgmajors.sh, Postgres
// returns; empty for the default instances (Debian's PostgreSQL 15).
// `make test` runs the PostgreSQL suites once per major.
func PGMajor() string { return os.Getenv("BOOTSTRAP_TEST_PG_MAJOR") }

var (
	majorMu   sync.Mutex
	majorSeen = map[string]int{}
)

// checkMajor fails the test when BOOTSTRAP_TEST_PG_MAJOR names a major the
// server does not run, so a pass meant for 16 never silently tests another
// version. The server is asked once per address and process.
func (p PG) checkMajor(t testing.TB) {
	t.Helper()
	want := PGMajor()
	if want == "" {
		return
	}
	addr := net.JoinHostPort(p.Host, strconv.Itoa(p.Port))
	majorMu.Lock()
	defer majorMu.Unlock()
	got, ok := majorSeen[addr]
	if !ok {
		var err error
		if got, err = p.major(); err != nil {
			t.Fatalf("testenv: PostgreSQL at %s: server version: %v", addr, err)
		}
		majorSeen[addr] = got
	}
	if strconv.Itoa(got) != want {
		t.Fatalf("testenv: BOOTSTRAP_TEST_PG_MAJOR=%s but PostgreSQL at %s runs %d", want, addr, got)
	}
}

// major is the server's major version, from server_version_num.
func (p PG) major() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cc, err := pgx.ParseConfig("")
	if err != nil {
		return 0, err
	}
	cc.Host, cc.Port, cc.User, cc.Password, cc.Database = p.Host, uint16(p.Port), p.User, p.Password, "postgres"
	cc.TLSConfig, cc.Fallbacks = nil, nil
	c, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return 0, err
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&n); err != nil {
		return 0, fmt.Errorf("server_version_num: %w", err)
	}
	return n / 10000, nil
}

// Connect opens a plain-text connection to database db as user, closed when
// the test ends; the error is the server's (a failed login is a result some
// tests want).
func (p PG) Connect(t testing.TB, user, password, db string) (*pgx.Conn, error) {
	t.Helper()
	cc, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cc.Host, cc.Port, cc.User, cc.Password, cc.Database = p.Host, uint16(p.Port), user, password, db
	cc.TLSConfig, cc.Fallbacks = nil, nil
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c, nil
}

// Admin is a superuser connection to db for test setup and inspection,
// closed when the test ends.
func (p PG) Admin(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	c, err := p.Connect(t, p.User, p.Password, db)
	if err != nil {
		t.Fatalf("admin connection to %s: %v", db, err)
	}
	return c
}
