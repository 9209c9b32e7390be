package postgres

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// TestDatabasesCreatedAtOnce: through the engine, new databases are created
// on several admin sessions at once, no more than createSessions of them
// though Concurrency allows more, the report keeps plan order, and the next plan has nothing to write. The
// sessions are counted on the server (pg_stat_activity), not in our code.
func TestDatabasesCreatedAtOnce(t *testing.T) {
	f := newFixture(t, "health")
	cfg := f.config()
	owner := f.role("parowner")
	cfg.Roles = []config.PGRole{{Name: owner}}
	prefix := f.db("par")
	for range 12 {
		name := f.db(prefix + "_")
		cfg.Databases = append(cfg.Databases, config.PGDatabase{Name: name, Owner: owner})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	watch := adminConn(t, f.pg, "postgres")
	defer watch.Close(context.Background())
	pids := map[int32]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			rows, err := watch.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE query LIKE 'CREATE DATABASE "' || $1 || '%'`, prefix)
			if err != nil {
				return
			}
			for rows.Next() {
				var pid int32
				if rows.Scan(&pid) == nil {
					pids[pid] = true
				}
			}
			rows.Close()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	rs := reconcile.Run(ctx, []reconcile.Target{New(cfg, f.creds, nil)}, reconcile.Options{Mode: reconcile.ModeApply, Concurrency: 3})
	close(stop)
	wg.Wait()

	next := 0
	for _, r := range rs {
		if r.Status == reconcile.Failed {
			t.Errorf("%s: %s", r.Resource, r.Error)
		}
		if next < len(cfg.Databases) && r.Resource == "postgres/health/database/"+cfg.Databases[next].Name {
			if r.Status != reconcile.Applied {
				t.Errorf("%s: %s, want applied", r.Resource, r.Status)
			}
			next++
		}
	}
	if next != len(cfg.Databases) {
		t.Fatalf("the report lists %d of the %d databases in plan order", next, len(cfg.Databases))
	}
	if n := len(pids); n != createSessions {
		t.Errorf("CREATE DATABASE ran on %d sessions, want %d (createSessions; Concurrency 3)", n, createSessions)
	}
	if w := writes(planOf(t, cfg, f.creds)); len(w) != 0 {
		t.Fatalf("plan after apply: %v", w)
	}
}

// A database declared with strategy file_copy is created with it: the
// server forces a checkpoint before and after such a copy (counted in its
// statistics), and the plan says so; once created, the strategy is no
// longer a difference.
func TestCreateStrategy(t *testing.T) {
	f := newFixture(t, "health")
	cfg := f.config()
	owner := f.role("strategyowner")
	name := f.db("strategy")
	cfg.Roles = []config.PGRole{{Name: owner}}
	cfg.Databases = []config.PGDatabase{{Name: name, Owner: owner, Strategy: "file_copy"}}

	watch := adminConn(t, f.pg, "postgres")
	defer watch.Close(context.Background())
	before := checkpointsRequested(t, watch)
	cs := applyAll(t, cfg, f.creds)
	if c, ok := find(cs, "postgres/health/database/"+name); !ok || c.Detail != "owner "+owner+", strategy file_copy" {
		t.Fatalf("plan of the database: %+v", c)
	}
	if n := checkpointsRequested(t, watch) - before; n < 2 {
		t.Errorf("the server counted %d requested checkpoints, want 2 or more (file_copy forces one before and one after)", n)
	}
	if w := writes(planOf(t, cfg, f.creds)); len(w) != 0 {
		t.Fatalf("plan after apply: %v", w)
	}
}

// checkpointsRequested reads the server's count of requested checkpoints
// (pg_stat_checkpointer from PostgreSQL 17, pg_stat_bgwriter before).
func checkpointsRequested(t *testing.T, c *pgx.Conn) int64 {
	t.Helper()
	q := `SELECT checkpoints_req FROM pg_stat_bgwriter`
	if serverMajor(c) >= 17 {
		q = `SELECT num_requested FROM pg_stat_checkpointer`
	}
	var n int64
	if err := c.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A strategy the server does not have fails the plan before anything is
// written, naming the database and the versions.
func TestStrategyNeedsPostgres15(t *testing.T) {
	tgt := New(config.Postgres{Name: "old", Databases: []config.PGDatabase{
		{Name: "kept", Strategy: "file_copy"},
		{Name: "fresh", Strategy: "file_copy"},
	}}, nil, nil)
	old := &state{major: 14, dbs: map[string]*dbState{"kept": {}}}
	err := tgt.checkStrategies(old)
	if err == nil || err.Error() != "plan postgres/old/database/fresh: strategy file_copy needs PostgreSQL 15 or later; the server is 14" {
		t.Fatalf("err = %v", err)
	}
	old.dbs["fresh"] = &dbState{}
	if err := tgt.checkStrategies(old); err != nil {
		t.Fatalf("existing databases: %v", err)
	}
	if err := tgt.checkStrategies(&state{major: 15}); err != nil {
		t.Fatalf("PostgreSQL 15: %v", err)
	}
}

// The advisory lock lives on the admin session: when the server ends that
// session mid-run, the target refuses to go on with a new one rather than
// write without the lock.
func TestLostLockStopsWrites(t *testing.T) {
	f := newFixture(t, "health")
	cfg := f.config()
	cfg.Roles = []config.PGRole{{Name: f.role("lostlock"), Login: ptr(false)}}
	tgt := New(cfg, f.creds, nil)
	defer tgt.Close()
	connectTarget(t, tgt)
	ctx := context.Background()
	if err := tgt.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	watch := adminConn(t, f.pg, "postgres")
	defer watch.Close(ctx)
	var ended bool
	err := watch.QueryRow(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1::bigint & x'ffffffff'::bigint AND granted`, advisoryLockKey).Scan(&ended)
	if err != nil || !ended {
		t.Fatalf("end the session holding the lock: %v (ended %v)", err, ended)
	}
	// The first use may find the session ended (and fail on it); the
	// next must refuse to open another.
	var errs []error
	for range 3 {
		_, err := tgt.Plan(ctx)
		if err != nil && strings.Contains(err.Error(), "advisory lock") {
			return
		}
		errs = append(errs, err)
	}
	t.Fatalf("plans after the lock's session ended: %v, want a refusal to go on without the lock", errs)
}
