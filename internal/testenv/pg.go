package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

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
