package postgres

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

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
	sessions := func(when string) {
		t.Helper()
		var open int
		if err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = ANY($1)`, dbs).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open != maxDBSessions {
			t.Errorf("%s %d databases the target holds %d sessions in them, want maxDBSessions = %d", when, len(dbs), open, maxDBSessions)
		}
	}

	for _, run := range []string{"apply", "no-op"} {
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
		if run == "no-op" && len(w) != 0 {
			t.Fatalf("plan after apply: %v", w)
		}
		for _, ch := range changes {
			if ch.Apply != nil && ch.Action != reconcile.Check {
				if err := ch.Apply(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		sessions(map[string]string{"apply": "after applying", "no-op": "after a no-op over"}[run])
		tgt.Close()
	}
}
