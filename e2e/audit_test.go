package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// auditEvent is the part of a kube-apiserver audit event the comparison
// reads.
type auditEvent struct {
	Stage string `json:"stage"`
	Verb  string `json:"verb"`
	User  struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// grant is one verb a Role gives on a resource, maybe limited to names.
type grant struct {
	group, resource, verb, namespace string
	names                            []string
}

func (g grant) String() string {
	s := g.namespace + ": " + g.group + "/" + g.resource + " " + g.verb
	if len(g.names) > 0 {
		s += " " + strings.Join(g.names, ",")
	}
	return s
}

func (g grant) covers(e auditEvent) bool {
	res := e.ObjectRef.Resource
	if e.ObjectRef.Subresource != "" {
		res += "/" + e.ObjectRef.Subresource
	}
	return g.group == e.ObjectRef.APIGroup && g.resource == res && g.verb == e.Verb &&
		g.namespace == e.ObjectRef.Namespace && (len(g.names) == 0 || slices.Contains(g.names, e.ObjectRef.Name))
}

// checkAudit compares what the chart's identities did, from the API
// server's audit log of the run, with what their Roles allow: every request
// was allowed (a permission the binary lacks fails here), and every verb the
// Roles give was used by one of them (one held but never used fails too).
func checkAudit(t *testing.T, c *cluster, sas []string) {
	t.Helper()
	path := testenv.Getenv("BOOTSTRAP_TEST_KUBE_AUDIT_LOG")
	if path == "" {
		testenv.Missing(t, "the kube-apiserver audit log (BOOTSTRAP_TEST_KUBE_AUDIT_LOG)")
	}
	users := map[string]bool{}
	for _, sa := range sas {
		users["system:serviceaccount:"+c.ns+":"+sa] = true
	}

	// The grants: every Role bound to one of the identities.
	var grants []grant
	for _, rb := range c.items("rolebindings") {
		bound := false
		for _, s := range list(rb["subjects"]) {
			bound = bound || str(dig(s, "kind")) == "ServiceAccount" && slices.Contains(sas, str(dig(s, "name")))
		}
		if !bound || str(dig(rb, "roleRef", "kind")) != "Role" {
			continue
		}
		role := c.get("role", str(dig(rb, "roleRef", "name")))
		for _, r := range list(role["rules"]) {
			var names []string
			for _, n := range list(dig(r, "resourceNames")) {
				names = append(names, str(n))
			}
			for _, g := range list(dig(r, "apiGroups")) {
				for _, res := range list(dig(r, "resources")) {
					for _, v := range list(dig(r, "verbs")) {
						grants = append(grants, grant{str(g), str(res), str(v), c.ns, names})
					}
				}
			}
		}
	}
	if len(grants) == 0 {
		t.Fatal("no Role bound to the chart's identities")
	}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	used := map[string]bool{}
	var requests int
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e auditEvent
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Stage != "ResponseComplete" || !users[e.User.Username] {
			continue
		}
		requests++
		if e.ResponseStatus.Code == 403 {
			t.Errorf("%s was refused %s %s/%s %s/%s", e.User.Username, e.Verb, e.ObjectRef.APIGroup, e.ObjectRef.Resource, e.ObjectRef.Namespace, e.ObjectRef.Name)
		}
		for _, g := range grants {
			if g.covers(e) {
				used[g.String()] = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if requests == 0 {
		t.Fatalf("the audit log %s has no request of %v", path, sas)
	}
	var unused []string
	for _, g := range grants {
		if !used[g.String()] {
			unused = append(unused, g.String())
		}
	}
	sort.Strings(unused)
	unused = slices.Compact(unused)
	if len(unused) > 0 {
		t.Errorf("granted but never used in the run: %s", strings.Join(unused, "; "))
	}
	t.Logf("%d requests of %v against %d grants", requests, sas, len(grants))
}
