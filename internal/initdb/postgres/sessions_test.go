package postgres

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// More databases with contents than the sessions a target keeps: before
// the bound, a target kept one session per database, and a migrations
// pool per database, for the whole run, and the server's max_connections
// (100) refused the 98th database (the 90th with migrations). The
// databases and their schemas declare no owner, so both are the admin's
// (the default config.ApplyDefaults gives a schema; an empty one was
// AUTHORIZATION ""). Apply writes in databases whose plan session was
// closed since; a plan or an apply holds at most maxDBSessions open.
func TestManyDatabasesFewSessions(t *testing.T) {
	f := newFixture(t, "health")
	prefix := f.db("many")
	migrations := t.TempDir()
	if err := os.WriteFile(filepath.Join(migrations, "00001_t.sql"), []byte("-- +goose Up\nCREATE TABLE t (id int);\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &config.Config{Postgres: []config.Postgres{f.config()}}
	var dbs []string
	for range 2*maxDBSessions + 3 {
		name := f.db(prefix + "_")
		dbs = append(dbs, name)
		c.Postgres[0].Databases = append(c.Postgres[0].Databases, config.PGDatabase{Name: name, Schemas: []config.PGSchema{{Name: "s1"}}, Migrations: migrations})
	}
	config.ApplyDefaults(c)
	cfg := c.Postgres[0]
	if got := cfg.Databases[0].Schemas[0].Owner; got != f.pg.User {
		t.Fatalf("schema owner defaulted to %q, want the admin %q", got, f.pg.User)
	}
	watch := adminConn(t, f.pg, "postgres")
	defer watch.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A closed session's backend leaves pg_stat_activity a moment after
	// the client hangs up: wait for the count to settle.
	settled := func(when string) {
		t.Helper()
		var open int
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			open = sessionsIn(ctx, t, watch, dbs)
			if open <= maxDBSessions || time.Now().After(deadline) {
				break
			}
		}
		if open != maxDBSessions {
			t.Errorf("%s %d databases the target holds %d sessions in them, want maxDBSessions = %d", when, len(dbs), open, maxDBSessions)
		}
	}

	peak := watchSessions(ctx, t, f, dbs)
	for _, run := range []struct {
		noop bool
		when string
	}{{false, "after applying"}, {true, "after a no-op over"}} {
		tgt := New(cfg, f.creds, nil)
		connectTarget(t, tgt)
		if err := tgt.Lock(ctx); err != nil {
			t.Fatal(err)
		}
		changes, err := tgt.Plan(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w := writes(changes)
		if run.noop && len(w) != 0 {
			t.Fatalf("plan after apply: %v", w)
		}
		for _, ch := range changes {
			if ch.Apply != nil && ch.Action != reconcile.Check {
				if err := ch.Apply(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		settled(run.when)
		tgt.Close()
	}
	// Beside the kept ones: the migrations' pool of two (changes applied
	// one at a time here), and closed sessions' backends on their way out
	// (10 at most here; unbounded, the count passes 19).
	n, most := peak(), maxDBSessions+5
	t.Logf("at most %d sessions open in the %d databases at once", n, len(dbs))
	if n > most || n < maxDBSessions {
		t.Errorf("at most %d sessions were open in the databases at once, want between %d and %d", n, maxDBSessions, most)
	}
}

// watchSessions counts the sessions open in dbs every few milliseconds
// until the returned func, which says the most it saw.
func watchSessions(ctx context.Context, t *testing.T, f *fixture, dbs []string) func() int {
	watch := adminConn(t, f.pg, "postgres")
	most, stop, done := 0, make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			most = max(most, sessionsIn(ctx, t, watch, dbs))
		}
	}()
	return func() int {
		close(stop)
		<-done
		watch.Close(context.Background())
		return most
	}
}

// sessionsIn counts the server's sessions in dbs.
func sessionsIn(ctx context.Context, t *testing.T, c *pgx.Conn, dbs []string) int {
	var n int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = ANY($1)`, dbs).Scan(&n); err != nil {
		t.Error(err)
	}
	return n
}
