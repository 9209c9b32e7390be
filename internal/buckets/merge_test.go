package buckets

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/lifecycle"
	"github.com/minio/minio-go/v7/pkg/tags"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// rulesOut renders rules as apply would send them, one line per rule.
func rulesOut(t *testing.T, rules []lifecycle.Rule) string {
	t.Helper()
	var lines []string
	for _, r := range rules {
		b, err := xml.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b))
	}
	return strings.Join(lines, "\n")
}

// TestMergeLifecycle: a merge changes the managed fields of declared rules
// only, keeps every other field and every undeclared rule unless told to
// remove it, and its result is in sync with the declared rules.
func TestMergeLifecycle(t *testing.T) {
	tmp := config.LifecycleRule{ID: "expire-tmp", Prefix: "tmp/", ExpireDays: 7}
	tests := []struct {
		name    string
		current string
		desired []config.LifecycleRule
		remove  []string
		abort   bool
		want    string
	}{
		{
			name:    "empty server: the declared rules",
			desired: []config.LifecycleRule{tmp, {ID: "old-versions", NoncurrentExpireDays: 30, AbortIncompleteUploadDays: 2}},
			abort:   true,
			want: `<Rule><Expiration><Days>7</Days></Expiration><ID>expire-tmp</ID><Filter><Prefix>tmp/</Prefix></Filter><Status>Enabled</Status></Rule>` + "\n" +
				`<Rule><AbortIncompleteMultipartUpload><DaysAfterInitiation>2</DaysAfterInitiation></AbortIncompleteMultipartUpload><ID>old-versions</ID><NoncurrentVersionExpiration><NoncurrentDays>30</NoncurrentDays></NoncurrentVersionExpiration><Status>Enabled</Status><Filter><Prefix></Prefix></Filter></Rule>`,
		},
		{
			name: "undeclared rule kept in its place, declared one changed, missing one appended",
			current: `<Rule><ID>by-hand</ID><Status>Enabled</Status><Filter><Prefix>x/</Prefix></Filter><Expiration><Days>1</Days></Expiration></Rule>` +
				`<Rule><ID>expire-tmp</ID><Status>Disabled</Status><Filter><Prefix>temp/</Prefix></Filter><Expiration><Days>3</Days></Expiration></Rule>`,
			desired: []config.LifecycleRule{tmp, {ID: "old-versions", NoncurrentExpireDays: 30}},
			want: `<Rule><Expiration><Days>1</Days></Expiration><ID>by-hand</ID><Filter><Prefix>x/</Prefix></Filter><Status>Enabled</Status></Rule>` + "\n" +
				`<Rule><Expiration><Days>7</Days></Expiration><ID>expire-tmp</ID><Filter><Prefix>tmp/</Prefix></Filter><Status>Enabled</Status></Rule>` + "\n" +
				`<Rule><ID>old-versions</ID><NoncurrentVersionExpiration><NoncurrentDays>30</NoncurrentDays></NoncurrentVersionExpiration><Status>Enabled</Status><Filter><Prefix></Prefix></Filter></Rule>`,
		},
		{
			name: "remove drops only the rules named",
			current: `<Rule><ID>by-hand</ID><Status>Enabled</Status><Filter><Prefix>x/</Prefix></Filter><Expiration><Days>1</Days></Expiration></Rule>` +
				`<Rule><ID>expire-tmp</ID><Status>Enabled</Status><Filter><Prefix>tmp/</Prefix></Filter><Expiration><Days>7</Days></Expiration></Rule>`,
			desired: []config.LifecycleRule{tmp},
			remove:  []string{"by-hand"},
			want:    `<Rule><Expiration><Days>7</Days></Expiration><ID>expire-tmp</ID><Filter><Prefix>tmp/</Prefix></Filter><Status>Enabled</Status></Rule>`,
		},
		{
			name:    "removing the last rule leaves none",
			current: `<Rule><ID>by-hand</ID><Status>Enabled</Status><Filter><Prefix>x/</Prefix></Filter><Expiration><Days>1</Days></Expiration></Rule>`,
			desired: []config.LifecycleRule{},
			remove:  []string{"by-hand"},
		},
		{
			name:    "And filter: prefix changed there, tags and transition kept",
			current: `<Rule><ID>expire-tmp</ID><Status>Enabled</Status><Filter><And><Prefix>temp/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></And></Filter><Expiration><Days>3</Days></Expiration><Transition><Days>1</Days><StorageClass>COLD</StorageClass></Transition></Rule>`,
			desired: []config.LifecycleRule{tmp},
			want:    `<Rule><Expiration><Days>7</Days></Expiration><ID>expire-tmp</ID><Filter><And><Prefix>tmp/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></And></Filter><Status>Enabled</Status><Transition><StorageClass>COLD</StorageClass><Days>1</Days></Transition></Rule>`,
		},
		{
			name:    "a tag filter gains the declared prefix in an And",
			current: `<Rule><ID>expire-tmp</ID><Status>Enabled</Status><Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter><Expiration><Days>7</Days></Expiration></Rule>`,
			desired: []config.LifecycleRule{tmp},
			want:    `<Rule><Expiration><Days>7</Days></Expiration><ID>expire-tmp</ID><Filter><And><Prefix>tmp/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></And></Filter><Status>Enabled</Status></Rule>`,
		},
		{
			name:    "a size filter gains the declared prefix in an And",
			current: `<Rule><ID>expire-tmp</ID><Status>Enabled</Status><Filter><ObjectSizeGreaterThan>1024</ObjectSizeGreaterThan></Filter><Expiration><Days>7</Days></Expiration></Rule>`,
			desired: []config.LifecycleRule{tmp},
			want:    `<Rule><Expiration><Days>7</Days></Expiration><ID>expire-tmp</ID><Filter><And><Prefix>tmp/</Prefix><ObjectSizeGreaterThan>1024</ObjectSizeGreaterThan></And></Filter><Status>Enabled</Status></Rule>`,
		},
		{
			name:    "no prefix declared: an And of prefix and one tag becomes the tag",
			current: `<Rule><ID>a</ID><Status>Enabled</Status><Filter><And><Prefix>tmp/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></And></Filter><Expiration><Days>7</Days></Expiration></Rule>`,
			desired: []config.LifecycleRule{{ID: "a", ExpireDays: 7}},
			want:    `<Rule><Expiration><Days>7</Days></Expiration><ID>a</ID><Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter><Status>Enabled</Status></Rule>`,
		},
		{
			name:    "legacy top-level prefix moves into the filter",
			current: `<Rule><ID>expire-tmp</ID><Status>Enabled</Status><Prefix>temp/</Prefix><Expiration><Days>7</Days></Expiration></Rule>`,
			desired: []config.LifecycleRule{tmp},
			want:    `<Rule><Expiration><Days>7</Days></Expiration><ID>expire-tmp</ID><Filter><Prefix>tmp/</Prefix></Filter><Status>Enabled</Status></Rule>`,
		},
		{
			name:    "noncurrent days changed, delete-marker removal and newer versions kept",
			current: `<Rule><ID>old-versions</ID><Status>Enabled</Status><Filter><Prefix></Prefix></Filter><Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration><NoncurrentVersionExpiration><NoncurrentDays>30</NoncurrentDays><NewerNoncurrentVersions>3</NewerNoncurrentVersions></NoncurrentVersionExpiration></Rule>`,
			desired: []config.LifecycleRule{{ID: "old-versions", NoncurrentExpireDays: 60}},
			want:    `<Rule><Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration><ID>old-versions</ID><NoncurrentVersionExpiration><NoncurrentDays>60</NoncurrentDays><NewerNoncurrentVersions>3</NewerNoncurrentVersions></NoncurrentVersionExpiration><Status>Enabled</Status><Filter><Prefix></Prefix></Filter></Rule>`,
		},
		{
			name:    "declared days replace a date, which S3 refuses beside days",
			current: `<Rule><ID>expire-tmp</ID><Status>Enabled</Status><Filter><Prefix>tmp/</Prefix></Filter><Expiration><Date>2030-01-01T00:00:00Z</Date></Expiration></Rule>`,
			desired: []config.LifecycleRule{tmp},
			want:    `<Rule><Expiration><Days>7</Days></Expiration><ID>expire-tmp</ID><Filter><Prefix>tmp/</Prefix></Filter><Status>Enabled</Status></Rule>`,
		},
		{
			name:    "MinIO: the abort days on the server are left as they are",
			current: `<Rule><ID>a</ID><Status>Enabled</Status><Filter><Prefix></Prefix></Filter><Expiration><Days>3</Days></Expiration><AbortIncompleteMultipartUpload><DaysAfterInitiation>5</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>`,
			desired: []config.LifecycleRule{{ID: "a", ExpireDays: 7, AbortIncompleteUploadDays: 1}},
			want:    `<Rule><AbortIncompleteMultipartUpload><DaysAfterInitiation>5</DaysAfterInitiation></AbortIncompleteMultipartUpload><Expiration><Days>7</Days></Expiration><ID>a</ID><Status>Enabled</Status><Filter><Prefix></Prefix></Filter></Rule>`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			current := rulesXML(t, tt.current)
			before := rulesOut(t, current)
			got := mergeLifecycle(current, tt.desired, tt.remove, tt.abort)
			if out := rulesOut(t, got); out != tt.want {
				t.Errorf("merged:\n%s\nwant:\n%s", out, tt.want)
			}
			if after := rulesOut(t, current); after != before {
				t.Errorf("merge modified the current rules:\n%s", after)
			}
			if d := lifecycleDiff(got, tt.desired, tt.abort); len(d) != 0 {
				t.Errorf("merged rules still differ: %q", d)
			}
			for _, id := range tt.remove {
				for _, r := range got {
					if r.ID == id {
						t.Errorf("rule %s not removed", id)
					}
				}
			}
		})
	}
}

func TestUndeclaredRules(t *testing.T) {
	current := rulesXML(t, `<Rule><ID>z</ID><Status>Enabled</Status><Filter><Prefix></Prefix></Filter><Expiration><Days>1</Days></Expiration></Rule>`+
		`<Rule><ID>keep</ID><Status>Enabled</Status><Filter><Prefix></Prefix></Filter><Expiration><Days>1</Days></Expiration></Rule>`+
		`<Rule><ID>a</ID><Status>Enabled</Status><Filter><Prefix></Prefix></Filter><Expiration><Days>1</Days></Expiration></Rule>`)
	got := undeclaredRules(current, []config.LifecycleRule{{ID: "keep"}, {ID: "absent"}})
	if want := []string{"a", "z"}; !reflect.DeepEqual(got, want) {
		t.Errorf("undeclaredRules = %q, want %q", got, want)
	}
	if got := undeclaredRules(current[1:2], []config.LifecycleRule{{ID: "keep"}}); got != nil {
		t.Errorf("undeclaredRules = %q, want none", got)
	}
}

func TestMergeTags(t *testing.T) {
	tests := []struct {
		name       string
		have, want map[string]string
		remove     []string
		out        map[string]string
	}{
		{"undeclared kept", map[string]string{"owner": "ops", "app": "x"}, map[string]string{"app": "health"}, nil, map[string]string{"owner": "ops", "app": "health"}},
		{"undeclared removed when named", map[string]string{"owner": "ops", "cost": "1", "app": "x"}, map[string]string{"app": "health"}, []string{"owner"}, map[string]string{"cost": "1", "app": "health"}},
		{"nothing on the server", nil, map[string]string{"app": "health"}, nil, map[string]string{"app": "health"}},
		{"removing the last key leaves none", map[string]string{"owner": "ops"}, map[string]string{}, []string{"owner"}, map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := maps.Clone(tt.have)
			if got := mergeTags(tt.have, tt.want, tt.remove); !maps.Equal(got, tt.out) {
				t.Errorf("mergeTags = %v, want %v", got, tt.out)
			}
			if !maps.Equal(before, tt.have) {
				t.Errorf("mergeTags modified its input: %v", tt.have)
			}
		})
	}
}

// TestExclusiveValidation: exclusive takes lifecycle and tags only, once
// each, and only for a declared setting; each problem names its path, and
// Load returns them as Problems, which the CLI exits 2 on.
func TestExclusiveValidation(t *testing.T) {
	const head = "version: 1\nminio:\n  - {name: m, endpoint: 'h:9000', accessKey: {secret: a}, secretKey: {secret: b}, buckets: [{name: health-raw, "
	tests := []struct {
		name, bucket string
		want         []string
	}{
		{"both declared", "lifecycle: [], tags: {}, exclusive: [lifecycle, tags]", nil},
		{"unknown member", "tags: {}, exclusive: [tags, policy]",
			[]string{`minio[0].buckets[0].exclusive[1]: must be one of lifecycle, tags, got "policy"`}},
		{"duplicate", "tags: {a: b}, exclusive: [tags, tags]",
			[]string{`minio[0].buckets[0].exclusive[1]: duplicate exclusive setting "tags" (first at minio[0].buckets[0].exclusive[0])`}},
		{"setting not declared", "exclusive: [lifecycle, tags]",
			[]string{
				"minio[0].buckets[0].exclusive[0]: lifecycle is not declared: declare the rules to keep (lifecycle: [] removes every rule)",
				"minio[0].buckets[0].exclusive[1]: tags are not declared: declare the tags to keep (tags: {} removes every tag)",
			}},
		{"not a list", "tags: {}, exclusive: tags", []string{"minio[0].buckets[0].exclusive: want a list"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load([]byte(head+tt.bucket+"}]}\n"), func(string) (string, bool) { return "", false })
			if tt.want == nil {
				if err != nil {
					t.Fatalf("load: %v", err)
				}
				if got := cfg.MinIO[0].Buckets[0].Exclusive; !reflect.DeepEqual(got, []string{"lifecycle", "tags"}) {
					t.Errorf("exclusive = %q", got)
				}
				return
			}
			var ps config.Problems
			if !errors.As(err, &ps) {
				t.Fatalf("load: %v, want Problems", err)
			}
			if len(ps) != len(tt.want) {
				t.Errorf("problems:\n%v\nwant:\n%s", err, strings.Join(tt.want, "\n"))
			}
			for i := range min(len(ps), len(tt.want)) {
				if !strings.HasPrefix(ps[i].String(), tt.want[i]) {
					t.Errorf("problem %d = %q, want %q", i, ps[i].String(), tt.want[i])
				}
			}
		})
	}
}

func TestSharedWrite(t *testing.T) {
	calls, fail := 0, true
	w := &sharedWrite{write: func(context.Context) error {
		calls++
		if fail {
			return errors.New("refused")
		}
		return nil
	}}
	ctx := context.Background()
	if err := w.apply(ctx); err == nil {
		t.Fatal("a failed write reported success")
	}
	fail = false
	for range 3 {
		if err := w.apply(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 2 {
		t.Errorf("write ran %d times, want 2: the failed one, then one for every later change", calls)
	}
}

// rulesOf reads a bucket's lifecycle rules.
func rulesOf(t *testing.T, e env, bucket string) []lifecycle.Rule {
	t.Helper()
	lc, err := e.admin.GetBucketLifecycle(context.Background(), bucket)
	switch {
	case err == nil:
		return lc.Rules
	case errCode(err) != "NoSuchLifecycleConfiguration":
		t.Fatalf("get lifecycle of %s: %v", bucket, err)
	}
	return nil
}

// rulesOn reads a bucket's lifecycle rules by id.
func rulesOn(t *testing.T, e env, bucket string) map[string]lifecycle.Rule {
	t.Helper()
	out := map[string]lifecycle.Rule{}
	for _, r := range rulesOf(t, e, bucket) {
		out[r.ID] = r
	}
	return out
}

func ruleIDsOn(t *testing.T, e env, bucket string) []string {
	t.Helper()
	return slices.Sorted(maps.Keys(rulesOn(t, e, bucket)))
}

func tagsOn(t *testing.T, e env, bucket string) map[string]string {
	t.Helper()
	tg, err := e.admin.GetBucketTagging(context.Background(), bucket)
	switch {
	case err == nil:
		return tg.ToMap()
	case noTags(err):
		return map[string]string{}
	}
	t.Fatalf("get tags of %s: %v", bucket, err)
	return nil
}

// TestUnmanagedRuleFieldsKept: another tool adds to our rules what
// bootstrap does not model (a tag filter beside the prefix, a delete-marker
// action, a count of noncurrent versions) and a rule of its own, and changes
// days we manage. Apply puts our days and prefix back and keeps the rest.
func TestUnmanagedRuleFieldsKept(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	name := testenv.Unique("bt-merge-")
	e.removeBuckets(t, name)
	b := config.Bucket{Name: name, Versioning: ptr(true), Lifecycle: []config.LifecycleRule{
		{ID: "expire-tmp", Prefix: "tmp/", ExpireDays: 7},
		{ID: "old-versions", NoncurrentExpireDays: 30},
	}}
	apply(t, e.target(b))

	lc := lifecycle.NewConfiguration()
	lc.Rules = []lifecycle.Rule{
		{ID: "expire-tmp", Status: "Enabled", Expiration: lifecycle.Expiration{Days: 3},
			RuleFilter: lifecycle.Filter{And: lifecycle.And{Prefix: "scratch/", Tags: []lifecycle.Tag{{Key: "class", Value: "scratch"}}}}},
		{ID: "old-versions", Status: "Enabled", Expiration: lifecycle.Expiration{DeleteMarker: true},
			NoncurrentVersionExpiration: lifecycle.NoncurrentVersionExpiration{NoncurrentDays: 10, NewerNoncurrentVersions: 2}},
		{ID: "by-other-tool", Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "logs/"}, Expiration: lifecycle.Expiration{Days: 90}},
	}
	if err := e.admin.SetBucketLifecycle(ctx, name, lc); err != nil {
		t.Fatal(err)
	}
	c := find(t, plan(t, e.target(b)), "minio/test/lifecycle/"+name)
	want := `rule expire-tmp: prefix "scratch/" -> "tmp/", expireDays 3 -> 7, keeps tag filter; ` +
		"rule old-versions: noncurrentExpireDays 10 -> 30, keeps expired delete marker removal, newer noncurrent versions"
	if c.Action != reconcile.Update || c.Detail != want {
		t.Errorf("plan: %s %q\nwant update %q", c.Action, c.Detail, want)
	}
	apply(t, e.target(b))

	rules := rulesOn(t, e, name)
	tmp := rules["expire-tmp"]
	tf := tmp.RuleFilter.And.Tags
	if tmp.Expiration.Days != 7 || tmp.RuleFilter.And.Prefix != "tmp/" || len(tf) != 1 || tf[0].Key != "class" || tf[0].Value != "scratch" {
		t.Errorf("expire-tmp after apply = %+v, want 7 days on tmp/ and the tag filter kept", tmp)
	}
	old := rules["old-versions"]
	if old.NoncurrentVersionExpiration.NoncurrentDays != 30 || !old.Expiration.DeleteMarker.IsEnabled() ||
		old.NoncurrentVersionExpiration.NewerNoncurrentVersions != 2 {
		t.Errorf("old-versions after apply = %+v, want 30 days and the delete-marker action and version count kept", old)
	}
	if r, ok := rules["by-other-tool"]; !ok || r.Expiration.Days != 90 {
		t.Errorf("the other tool's rule after apply = %+v, %v", r, ok)
	}
	for _, c := range plan(t, e.target(b)) {
		if c.Action != reconcile.Noop {
			t.Errorf("after apply: %s %s (%s)", c.Action, c.Resource, c.Detail)
		}
	}
}

// writeCounter counts the lifecycle and tagging requests by method.
type writeCounter struct {
	next http.RoundTripper
	mu   sync.Mutex
	n    map[string]int // "GET lifecycle", "PUT tagging", ...
}

func (w *writeCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	for _, q := range []string{"lifecycle", "tagging"} {
		if r.URL.Query().Has(q) {
			w.mu.Lock()
			w.n[r.Method+" "+q]++
			w.mu.Unlock()
		}
	}
	return w.next.RoundTrip(r)
}

func (w *writeCounter) counts() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.n)
}

// counted connects tgt and counts its lifecycle and tagging requests from
// then on.
func counted(t *testing.T, tgt *Target) *writeCounter {
	t.Helper()
	connect(t, tgt)
	w := &writeCounter{next: tgt.rt.next, n: map[string]int{}}
	tgt.rt.next = w
	return w
}

// runEngine runs one target through the engine, as the CLI does.
func runEngine(tgt reconcile.Target, mode reconcile.Mode) map[string]reconcile.Result {
	out := map[string]reconcile.Result{}
	for _, r := range reconcile.Run(context.Background(), []reconcile.Target{tgt}, reconcile.Options{Mode: mode, WaitTimeout: 30 * time.Second}) {
		out[r.Resource] = r
	}
	return out
}

// TestExclusiveRemovalsShareOneWrite: an exclusive bucket's removals are
// one Delete each in the plan, yet apply writes each setting once; removing
// the last rule and the last tag deletes the document. Verify accepts
// undeclared rules and tags unless the setting is exclusive.
func TestExclusiveRemovalsShareOneWrite(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	name := testenv.Unique("bt-excl-")
	e.removeBuckets(t, name)
	if err := e.admin.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	lc := lifecycle.NewConfiguration()
	for _, id := range []string{"keep", "x1", "x2", "x3"} {
		lc.Rules = append(lc.Rules, lifecycle.Rule{ID: id, Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: id + "/"}, Expiration: lifecycle.Expiration{Days: 3}})
	}
	if err := e.admin.SetBucketLifecycle(ctx, name, lc); err != nil {
		t.Fatal(err)
	}
	set, _ := tags.NewTags(map[string]string{"app": "old", "a": "1", "b": "2"}, false)
	if err := e.admin.SetBucketTagging(ctx, name, set); err != nil {
		t.Fatal(err)
	}
	b := config.Bucket{Name: name, Lifecycle: []config.LifecycleRule{{ID: "keep", Prefix: "keep/", ExpireDays: 7}}, Tags: map[string]string{"app": "health"}}

	b.Exclusive = []string{"lifecycle", "tags"}
	var got []string
	for _, c := range plan(t, e.target(b)) {
		got = append(got, string(c.Action)+" "+strings.TrimPrefix(c.Resource, "minio/test/"))
	}
	want := []string{
		"noop bucket/" + name,
		"update lifecycle/" + name, "delete lifecycle/" + name + "/x1", "delete lifecycle/" + name + "/x2", "delete lifecycle/" + name + "/x3",
		"update tags/" + name, "delete tags/" + name + "/a", "delete tags/" + name + "/b",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("plan:\n got %q\nwant %q", got, want)
	}

	tgt := e.target(b)
	w := counted(t, tgt)
	for res, r := range runEngine(tgt, reconcile.ModeApply) {
		if r.Status != reconcile.Applied && r.Action != reconcile.Noop {
			t.Errorf("apply: %s %s %s %s", res, r.Action, r.Status, r.Error)
		}
	}
	// One read by the plan, one by the write before it changes the
	// document, one write: not one read and write per change.
	if n := w.counts(); !maps.Equal(n, map[string]int{"GET lifecycle": 2, "PUT lifecycle": 1, "GET tagging": 2, "PUT tagging": 1}) {
		t.Errorf("apply sent %v, want the plan's GET, then one GET and one PUT of each document", n)
	}
	if r := rulesOn(t, e, name); len(r) != 1 || r["keep"].Expiration.Days != 7 {
		t.Errorf("rules after apply = %+v", r)
	}
	if tg := tagsOn(t, e, name); !maps.Equal(tg, b.Tags) {
		t.Errorf("tags after apply = %v", tg)
	}

	// Another rule and tag by hand: verify accepts them unless exclusive.
	lc.Rules = append(rulesOf(t, e, name), lifecycle.Rule{ID: "x4", Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "x4/"}, Expiration: lifecycle.Expiration{Days: 1}})
	if err := e.admin.SetBucketLifecycle(ctx, name, lc); err != nil {
		t.Fatal(err)
	}
	set, _ = tags.NewTags(map[string]string{"app": "health", "c": "3"}, false)
	if err := e.admin.SetBucketTagging(ctx, name, set); err != nil {
		t.Fatal(err)
	}
	open := b
	open.Exclusive = nil
	for res, r := range runEngine(e.target(open), reconcile.ModeVerify) {
		if r.Status != reconcile.OK {
			t.Errorf("verify, not exclusive: %s %+v", res, r)
		}
	}
	for res, r := range runEngine(e.target(b), reconcile.ModeVerify) {
		extra := res == "minio/test/lifecycle/"+name+"/x4" || res == "minio/test/tags/"+name+"/c"
		if extra && (r.Status != reconcile.Failed || r.Error != "drift: delete needed") || !extra && r.Status != reconcile.OK {
			t.Errorf("verify, exclusive: %s %+v", res, r)
		}
	}

	// Nothing declared, still exclusive: the last rule and tag go, and with
	// them the documents, which S3 will not store empty.
	b.Lifecycle, b.Tags = []config.LifecycleRule{}, map[string]string{}
	tgt = e.target(b)
	w = counted(t, tgt)
	res := runEngine(tgt, reconcile.ModeApply)
	for _, r := range []string{"minio/test/lifecycle/" + name + "/keep", "minio/test/tags/" + name + "/app"} {
		if res[r].Action != reconcile.Delete || res[r].Status != reconcile.Applied {
			t.Errorf("%s: %+v", r, res[r])
		}
	}
	if n := w.counts(); !maps.Equal(n, map[string]int{"GET lifecycle": 2, "DELETE lifecycle": 1, "GET tagging": 2, "DELETE tagging": 1}) {
		t.Errorf("apply sent %v, want the plan's GET, then one GET and one DELETE of each document", n)
	}
	if len(rulesOn(t, e, name)) != 0 || len(tagsOn(t, e, name)) != 0 {
		t.Errorf("after removing the last: rules %v, tags %v", rulesOn(t, e, name), tagsOn(t, e, name))
	}
	for res, r := range runEngine(e.target(b), reconcile.ModeVerify) {
		if r.Status != reconcile.OK {
			t.Errorf("verify after apply: %s %+v", res, r)
		}
	}
}

// fixedPlan is a target whose plan is given.
type fixedPlan struct{ changes []reconcile.Change }

func (fixedPlan) Name() string                                       { return "minio/test" }
func (fixedPlan) Connect(context.Context) error                      { return nil }
func (p fixedPlan) Plan(context.Context) ([]reconcile.Change, error) { return p.changes, nil }
func (fixedPlan) Close() error                                       { return nil }

// TestSharedWriteFailure: when the one write of a setting fails, the change
// that ran it fails and the other changes of the bucket are skipped, not
// reported applied.
func TestSharedWriteFailure(t *testing.T) {
	deny := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>`))
	}))
	defer deny.Close()
	cfg := config.MinIO{Name: "test", Endpoint: strings.TrimPrefix(deny.URL, "http://"), Region: "us-east-1",
		AccessKey: config.SecretRef{Secret: "ak"}, SecretKey: config.SecretRef{Secret: "sk"}}
	tgt := New(cfg, credential.Resolved{"ak": credential.New("ak"), "sk": credential.New("sk")}, nil)
	if err := tgt.init(); err != nil {
		t.Fatal(err)
	}
	c, err := tgt.client("us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	b := config.Bucket{Name: "bt-fail", Lifecycle: []config.LifecycleRule{{ID: "keep", ExpireDays: 7}}, Exclusive: []string{"lifecycle"}}
	st := &bucketState{region: "us-east-1", lifecycle: rulesXML(t,
		`<Rule><ID>keep</ID><Status>Enabled</Status><Filter><Prefix></Prefix></Filter><Expiration><Days>3</Days></Expiration></Rule>`+
			`<Rule><ID>x1</ID><Status>Enabled</Status><Filter><Prefix></Prefix></Filter><Expiration><Days>1</Days></Expiration></Rule>`+
			`<Rule><ID>x2</ID><Status>Enabled</Status><Filter><Prefix></Prefix></Filter><Expiration><Days>1</Days></Expiration></Rule>`)}
	cs := tgt.lifecycleChanges(c, b, st)
	for i := range cs {
		cs[i].Group = "bucket/" + b.Name
	}
	var got []string
	for _, r := range reconcile.Run(context.Background(), []reconcile.Target{fixedPlan{cs}}, reconcile.Options{Mode: reconcile.ModeApply}) {
		got = append(got, fmt.Sprintf("%s %s %s", r.Action, r.Resource, r.Status))
		if r.Status == reconcile.Failed && !strings.Contains(r.Error, "read lifecycle of bucket bt-fail") {
			t.Errorf("error %q does not name the bucket", r.Error)
		}
	}
	want := []string{
		"update minio/test/lifecycle/bt-fail failed",
		"delete minio/test/lifecycle/bt-fail/x1 skipped",
		"delete minio/test/lifecycle/bt-fail/x2 skipped",
	}
	if !slices.Equal(got, want) {
		t.Errorf("results:\n got %q\nwant %q", got, want)
	}
}
