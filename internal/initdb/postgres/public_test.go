package postgres

import (
	"context"
	"testing"

	"github.com/health-data-ai/bootstrap/internal/config"
)

// TestGrantsToPublicConverge: grants to PUBLIC (in any spelling) are read
// back from the catalogs, where PUBLIC is grantee 0 and not a role, so a
// second plan is empty and verify passes — before, every apply granted
// again, verify always failed, and "PUBLIC" became a missing role.
func TestGrantsToPublicConverge(t *testing.T) {
	f := newFixture(t, "health")
	cfg := f.config()
	owner, _ := f.loginRole("pubown")
	db, other := f.db("pub"), f.db("pubrpc")
	cfg.Roles = []config.PGRole{owner}
	cfg.Databases = []config.PGDatabase{
		{Name: db, Owner: owner.Name, Schemas: []config.PGSchema{{Name: "shared", Owner: owner.Name}}},
		// With revokePublicConnect, a schema grant to PUBLIC must not
		// make the plan hand CONNECT back to PUBLIC.
		{Name: other, Owner: owner.Name, RevokePublicConnect: true},
	}
	cfg.Grants = []config.PGGrant{
		{Role: "public", Database: db, On: "database", Privileges: []string{"TEMPORARY"}},
		{Role: "PUBLIC", Database: db, Schema: "shared", On: "schema", Privileges: []string{"USAGE"}},
		{Role: "Public", Database: db, Schema: "shared", On: "tables", Privileges: []string{"SELECT"}},
		{Role: "public", Database: other, Schema: "public", On: "schema", Privileges: []string{"USAGE"}},
	}
	applyAll(t, cfg, f.creds)
	for i := range 2 {
		if w := writes(planOf(t, cfg, f.creds)); len(w) != 0 {
			t.Fatalf("plan %d after apply: %v", i+1, w)
		}
	}
	if errs := runVerify(t, cfg, f.creds); len(errs) != 0 {
		t.Fatalf("verify: %v", errs)
	}
	// What the server holds: PUBLIC has the privileges, and CONNECT on the
	// revoked database stays revoked.
	admin := adminConn(t, f.pg, "postgres")
	var temp, connect bool
	if err := admin.QueryRow(context.Background(),
		`SELECT has_database_privilege('public', $1, 'TEMPORARY'), has_database_privilege('public', $2, 'CONNECT')`, db, other).Scan(&temp, &connect); err != nil {
		t.Fatal(err)
	}
	if !temp || connect {
		t.Errorf("PUBLIC TEMPORARY on %s = %v (want true), CONNECT on %s = %v (want false)", db, temp, other, connect)
	}
}
