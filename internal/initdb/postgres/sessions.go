package postgres

import (
	"context"
	"slices"

	"github.com/jackc/pgx/v5"
)

// maxDBSessions bounds the superuser sessions a target keeps open in
// databases other than the admin one. A session is per database, and
// the server's max_connections (100 by default, in the Bitnami chart too)
// is shared with every client: keeping one per database for the whole run
// refused the 98th database with "too many clients". Plan and apply use one
// at a time (t.mu), so a few cover the usual config, where plan's reads and
// apply's writes in the same database share a login; past that, a database
// whose session was closed costs one login more when apply writes in it.
const maxDBSessions = 8

// dbSessions holds open sessions by database, least recently used first.
// Not safe for concurrent use: the Target's mu guards it.
type dbSessions struct {
	list []dbSession
}

type dbSession struct {
	db   string
	conn *pgx.Conn
}

// get returns db's open session, marking it used, or nil.
func (s *dbSessions) get(db string) *pgx.Conn {
	i := slices.IndexFunc(s.list, func(e dbSession) bool { return e.db == db })
	if i < 0 {
		return nil
	}
	e := s.list[i]
	s.list = slices.Delete(s.list, i, i+1)
	if e.conn.IsClosed() {
		return nil
	}
	s.list = append(s.list, e)
	return e.conn
}

// put keeps c as db's session, closing the least recently used one when
// maxDBSessions are open.
func (s *dbSessions) put(ctx context.Context, db string, c *pgx.Conn) {
	if len(s.list) >= maxDBSessions {
		_ = s.list[0].conn.Close(ctx)
		s.list = slices.Delete(s.list, 0, 1)
	}
	s.list = append(s.list, dbSession{db, c})
}

// closeAll closes every session.
func (s *dbSessions) closeAll(ctx context.Context) {
	for _, e := range s.list {
		_ = e.conn.Close(ctx)
	}
	s.list = nil
}
