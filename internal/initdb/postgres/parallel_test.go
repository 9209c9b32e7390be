package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// TestDatabasesCreatedAtOnce: through the engine, new databases are created
// on several admin sessions at once, no more than Concurrency of them, the
// report keeps plan order, and the next plan has nothing to write. The
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
	if n := len(pids); n < 2 || n > 3 {
		t.Errorf("CREATE DATABASE ran on %d sessions, want 2 to 3 (Concurrency 3)", n)
	}
	if w := writes(planOf(t, cfg, f.creds)); len(w) != 0 {
		t.Fatalf("plan after apply: %v", w)
	}
}
