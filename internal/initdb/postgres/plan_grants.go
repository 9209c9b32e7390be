package postgres

import (
	"fmt"
	"slices"
	"strings"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// privilegesByKind lists, per grant kind, every privilege PostgreSQL knows
// for that object type on every supported major, in aclexplode's spelling;
// ALL expands to it, and to privilegesSince on the majors that have them.
var privilegesByKind = map[string][]string{
	"database":  {"CONNECT", "CREATE", "TEMPORARY"},
	"schema":    {"USAGE", "CREATE"},
	"tables":    {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"},
	"sequences": {"USAGE", "SELECT", "UPDATE"},
}

// privilegesSince lists, per grant kind, the privileges a later major
// added: the server's own GRANT ALL includes them there, and so does ALL
// here (forServer).
var privilegesSince = map[string][]struct {
	major     int
	privilege string
}{
	"tables": {{17, "MAINTAIN"}},
}

// grantSpec is one normalised grant: kind lower case, schema defaulted,
// privileges upper case, expanded and sorted in catalog order. All records
// that the config said ALL, which forServer widens on later majors.
type grantSpec struct {
	Role, Database, Schema, Kind string
	Privileges                   []string
	All                          bool
}

func (g grantSpec) resourceParts() []string {
	p := []string{"grant", g.Database, g.Role, g.Kind}
	if g.Kind != "database" {
		p = append(p, g.Schema)
	}
	return p
}

// normaliseGrants validates and merges the configured grants; two entries
// for the same role, database, kind and schema become one change.
func normaliseGrants(target string, in []config.PGGrant) ([]grantSpec, error) {
	var out []grantSpec
	index := map[string]int{}
	for _, g := range in {
		kind := strings.ToLower(strings.TrimSpace(g.On))
		known, ok := privilegesByKind[kind]
		if !ok {
			return nil, fmt.Errorf("grant to %s on %q in database %s: on must be database, schema, tables or sequences", g.Role, g.On, g.Database)
		}
		schema, err := grantSchema(g, kind)
		if err != nil {
			return nil, err
		}
		role := g.Role
		if strings.EqualFold(role, public) {
			role = public
		}
		spec := grantSpec{Role: role, Database: g.Database, Schema: schema, Kind: kind}
		res := reconcile.Resource(target, spec.resourceParts()...)
		want, all, err := grantPrivileges(res, kind, known, g.Privileges)
		if err != nil {
			return nil, err
		}
		if i, dup := index[res]; dup {
			for _, p := range out[i].Privileges {
				want[p] = true
			}
			out[i].Privileges = ordered(known, want)
			out[i].All = out[i].All || all
			continue
		}
		spec.Privileges, spec.All = ordered(known, want), all
		index[res] = len(out)
		out = append(out, spec)
	}
	return out, nil
}

// grantSchema is the schema a grant of kind applies in: none for a
// database; for tables and sequences, public unless given, since that is
// where unqualified names put them.
func grantSchema(g config.PGGrant, kind string) (string, error) {
	switch kind {
	case "database":
		return "", nil
	case "tables", "sequences":
		if g.Schema == "" {
			return "public", nil
		}
	case "schema":
		if g.Schema == "" {
			return "", fmt.Errorf("grant to %s on schema in database %s: schema is required", g.Role, g.Database)
		}
	}
	return g.Schema, nil
}

// grantPrivileges spells the configured privileges the way aclexplode
// does, so they compare with what the catalogs hold, and says whether they
// include ALL.
func grantPrivileges(res, kind string, known, privileges []string) (want map[string]bool, all bool, err error) {
	want = map[string]bool{}
	for _, p := range privileges {
		p = strings.ToUpper(strings.Join(strings.Fields(p), " "))
		switch p {
		case "ALL", "ALL PRIVILEGES":
			for _, k := range known {
				want[k] = true
			}
			all = true
			continue
		case "TEMP":
			p = "TEMPORARY"
		}
		if !slices.Contains(known, p) {
			return nil, false, fmt.Errorf("%s: privilege %q does not apply to %s (one of %s, or ALL)", res, p, kind, strings.Join(known, ", "))
		}
		want[p] = true
	}
	if len(want) == 0 {
		return nil, false, fmt.Errorf("%s: no privileges", res)
	}
	return want, all, nil
}

// forServer returns grants as a server of major spells them: ALL gains the
// privileges that major added (MAINTAIN on tables from 17), so it grants,
// and plan checks, what the server's GRANT ALL would. grants is not
// modified.
func forServer(grants []grantSpec, major int) []grantSpec {
	out := slices.Clone(grants)
	for i, g := range out {
		if !g.All {
			continue
		}
		for _, p := range privilegesSince[g.Kind] {
			if major >= p.major && !slices.Contains(out[i].Privileges, p.privilege) {
				out[i].Privileges = append(slices.Clip(out[i].Privileges), p.privilege)
			}
		}
	}
	return out
}

func ordered(known []string, set map[string]bool) []string {
	var out []string
	for _, k := range known {
		if set[k] {
			out = append(out, k)
		}
	}
	return out
}

// planGrant compares grant i with what the server holds. A grant that has
// nothing in place yet, or whose role does not exist, is a create; one
// partly in place is an update.
func (t *Target) planGrant(i int, g grantSpec, owner string, st *state) reconcile.Change {
	c := reconcile.Change{Resource: t.res(g.resourceParts()...), Action: reconcile.Noop}
	// The owner already holds every privilege on what it creates, so it
	// needs no default privileges.
	withDefaults := g.Role != owner
	var diffs []string
	var some bool
	switch g.Kind {
	case "database":
		var have map[string]bool
		if db := st.dbs[g.Database]; db != nil {
			have = db.acl[g.Role]
		}
		var missing []string
		missing, some = lacking(g.Privileges, have)
		if len(missing) > 0 {
			diffs = append(diffs, "missing "+strings.Join(missing, ", "))
		}
	case "schema":
		var have map[string]bool
		if det := st.details[g.Database]; det != nil {
			have = det.grants[i].have
		}
		var missing []string
		missing, some = lacking(g.Privileges, have)
		if len(missing) > 0 {
			diffs = append(diffs, "missing "+strings.Join(missing, ", ")+" on schema "+g.Schema)
		}
	case "tables", "sequences":
		diffs, some = objectGrantDiffs(g, owner, withDefaults, st.details[g.Database], i)
	}
	if len(diffs) == 0 {
		return c
	}
	_, roleExists := st.roles[g.Role]
	roleExists = roleExists || g.Role == public
	c.Action = reconcile.Update
	if !some || !roleExists {
		c.Action = reconcile.Create
	}
	c.Detail = strings.Join(diffs, "; ")
	c.Apply = t.applyGrant(g, owner, withDefaults)
	return c
}

// objectGrantDiffs says what a tables or sequences grant lacks, on the
// objects there now and in the owner's default privileges for those to
// come, and whether any of it is in place. det is nil when the database
// does not exist yet.
func objectGrantDiffs(g grantSpec, owner string, withDefaults bool, det *dbDetail, i int) (diffs []string, some bool) {
	if det == nil {
		diffs = append(diffs, fmt.Sprintf("grant %s on all %s in schema %s", strings.Join(g.Privileges, ", "), g.Kind, g.Schema))
		if withDefaults {
			diffs = append(diffs, "default privileges for "+owner)
		}
		return diffs, false
	}
	gs := det.grants[i]
	for _, p := range g.Privileges {
		if n, ok := gs.missing[p]; ok {
			diffs = append(diffs, fmt.Sprintf("%s missing on %d of %d %s", p, n, gs.objects, g.Kind))
			if n < gs.objects {
				some = true
			}
		} else if gs.objects > 0 {
			some = true
		}
	}
	if withDefaults {
		missing, held := lacking(g.Privileges, gs.defaults)
		some = some || held
		if len(missing) > 0 {
			diffs = append(diffs, fmt.Sprintf("default privileges for %s lack %s", owner, strings.Join(missing, ", ")))
		}
	}
	return diffs, some
}

// lacking returns the privileges of want that have does not hold, and
// whether have holds any of them.
func lacking(want []string, have map[string]bool) (missing []string, held bool) {
	for _, p := range want {
		if have[p] {
			held = true
		} else {
			missing = append(missing, p)
		}
	}
	return missing, held
}
