package postgres

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// strategySince is the first major whose CREATE DATABASE takes STRATEGY.
const strategySince = 15

// checkStrategies fails the plan, before anything is written, when a
// database to create asks for a strategy the server does not have.
func (t *Target) checkStrategies(st *state) error {
	if st.major >= strategySince {
		return nil
	}
	for _, d := range t.cfg.Databases {
		if d.Strategy != "" && st.dbs[d.Name] == nil {
			return fmt.Errorf("plan %s: strategy %s needs PostgreSQL %d or later; the server is %d", t.res("database", d.Name), d.Strategy, strategySince, st.major)
		}
	}
	return nil
}

func (t *Target) planDatabases(st *state, owners map[string]string) []reconcile.Change {
	out := make([]reconcile.Change, 0, len(t.cfg.Databases))
	for _, d := range t.cfg.Databases {
		out = append(out, t.planDatabase(d, owners[d.Name], st.dbs[d.Name]))
	}
	return out
}

func (t *Target) planDatabase(d config.PGDatabase, owner string, cur *dbState) reconcile.Change {
	// Databases are independent of each other: their changes run at once
	// (reconcile.Change.Parallel), the creations on sessions of their own.
	c := reconcile.Change{Resource: t.res("database", d.Name), Action: reconcile.Noop, Parallel: "databases"}
	switch {
	case cur == nil:
		c.Action = reconcile.Create
		c.Detail = "owner " + owner
		if d.Strategy != "" {
			c.Detail += ", strategy " + d.Strategy
		}
		c.Apply = t.applyCreateDatabase(d.Name, owner, d.Strategy)
	case cur.owner != owner:
		c.Action = reconcile.Update
		c.Detail = fmt.Sprintf("owner %s -> %s", cur.owner, owner)
		c.Apply = t.applyDatabaseOwner(d.Name, owner)
	}
	return c
}

func (t *Target) planPublicConnects(st *state, owners map[string]string, grants []grantSpec) []reconcile.Change {
	var out []reconcile.Change
	for _, d := range t.cfg.Databases {
		if d.RevokePublicConnect {
			out = append(out, t.planPublicConnect(d, owners[d.Name], st.dbs[d.Name], grants))
		}
	}
	return out
}

// planPublicConnect revokes CONNECT from PUBLIC and keeps it, explicitly,
// for the owner and every role the config grants anything in the database
// (they could not use those grants without connecting).
func (t *Target) planPublicConnect(d config.PGDatabase, owner string, cur *dbState, grants []grantSpec) reconcile.Change {
	c := reconcile.Change{Resource: t.res("revokePublicConnect", d.Name), Action: reconcile.Noop}
	keep := []string{owner}
	for _, g := range grants {
		// PUBLIC is what loses CONNECT here: validation refuses a grant
		// of it to PUBLIC, and keeping it would undo the revoke.
		if g.Database == d.Name && g.Role != public && !slices.Contains(keep, g.Role) {
			keep = append(keep, g.Role)
		}
	}
	var lacking []string
	for _, r := range keep {
		if cur == nil || !cur.acl[r]["CONNECT"] {
			lacking = append(lacking, r)
		}
	}
	public := cur == nil || cur.publicConnect
	if !public && len(lacking) == 0 {
		return c
	}
	var d1 []string
	if public {
		d1 = append(d1, "revoke CONNECT from PUBLIC")
	}
	if len(lacking) > 0 {
		d1 = append(d1, "grant CONNECT to "+strings.Join(lacking, ", "))
	}
	c.Action = reconcile.Update
	if cur == nil {
		c.Action = reconcile.Create
	}
	c.Detail = strings.Join(d1, "; ")
	c.Apply = t.applyPublicConnect(d.Name, lacking, public)
	return c
}

func (t *Target) planExtensions(st *state) []reconcile.Change {
	var out []reconcile.Change
	for _, d := range t.cfg.Databases {
		det := st.details[d.Name]
		for _, e := range d.Extensions {
			c := reconcile.Change{Resource: t.res("extension", d.Name, e), Action: reconcile.Noop}
			if det == nil || !det.extensions[e] {
				c.Action = reconcile.Create
				c.Detail = "create extension " + e
				c.Apply = t.applyExtension(d.Name, e)
			}
			out = append(out, c)
		}
	}
	return out
}

func (t *Target) planSchemas(st *state) []reconcile.Change {
	var out []reconcile.Change
	for _, d := range t.cfg.Databases {
		det := st.details[d.Name]
		for _, s := range d.Schemas {
			out = append(out, t.planSchema(d.Name, s, det))
		}
	}
	return out
}

// planSchema takes s.Owner as given: config.ApplyDefaults has already
// made an unset owner the database's.
func (t *Target) planSchema(db string, s config.PGSchema, det *dbDetail) reconcile.Change {
	c := reconcile.Change{Resource: t.res("schema", db, s.Name), Action: reconcile.Noop}
	cur, exists := "", false
	if det != nil {
		cur, exists = det.schemas[s.Name]
	}
	switch {
	case !exists:
		c.Action = reconcile.Create
		c.Detail = "owner " + s.Owner
		c.Apply = t.applySchema(db, s.Name, s.Owner, true)
	case cur != s.Owner:
		c.Action = reconcile.Update
		c.Detail = fmt.Sprintf("owner %s -> %s", cur, s.Owner)
		c.Apply = t.applySchema(db, s.Name, s.Owner, false)
	}
	return c
}

// planMigrations has one change per migration file, so a plan lists the
// ones a run would apply.
func (t *Target) planMigrations(st *state, owners map[string]string) []reconcile.Change {
	var out []reconcile.Change
	for _, d := range t.cfg.Databases {
		if d.Migrations == "" {
			continue
		}
		det := st.details[d.Name]
		pending := func(v int64) bool { return det == nil || !det.applied[v] }
		sources := t.migrators[d.Name].sources
		// The last pending version's change closes the migrator's pool.
		last := int64(-1)
		for _, src := range sources {
			if pending(src.Version) {
				last = src.Version
			}
		}
		for _, src := range sources {
			c := reconcile.Change{Resource: t.res("migration", d.Name, strconv.FormatInt(src.Version, 10)), Action: reconcile.Noop}
			if pending(src.Version) {
				c.Action = reconcile.Create
				c.Detail = "apply " + filepath.Base(src.Path)
				c.Apply = t.applyMigration(d.Name, owners[d.Name], d.Migrations, src.Version, src.Version == last)
			}
			out = append(out, c)
		}
	}
	return out
}
