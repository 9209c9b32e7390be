package buckets

import (
	"encoding/xml"
	"reflect"
	"testing"

	"github.com/minio/minio-go/v7/pkg/lifecycle"

	"github.com/health-data-ai/bootstrap/internal/config"
)

// rulesXML parses a server response the way minio-go does.
func rulesXML(t *testing.T, s string) []lifecycle.Rule {
	t.Helper()
	cfg := lifecycle.NewConfiguration()
	if err := xml.Unmarshal([]byte("<LifecycleConfiguration>"+s+"</LifecycleConfiguration>"), cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.Rules
}

func TestLifecycleDiff(t *testing.T) {
	design := []config.LifecycleRule{
		{ID: "expire-tmp", Prefix: "tmp/", ExpireDays: 7},
		{ID: "old-versions", NoncurrentExpireDays: 30},
	}
	tests := []struct {
		name    string
		current string
		desired []config.LifecycleRule
		abort   bool
		want    []string
	}{
		{
			name: "in sync, rules in another order, legacy top-level prefix",
			current: `<Rule><ID>old-versions</ID><Status>Enabled</Status><Filter><Prefix></Prefix></Filter><NoncurrentVersionExpiration><NoncurrentDays>30</NoncurrentDays></NoncurrentVersionExpiration></Rule>` +
				`<Rule><ID>expire-tmp</ID><Status>Enabled</Status><Prefix>tmp/</Prefix><Expiration><Days>7</Days></Expiration></Rule>`,
			desired: design,
			abort:   true,
		},
		{
			name:    "no rules on the server",
			desired: design,
			abort:   true,
			want:    []string{"add rule expire-tmp", "add rule old-versions"},
		},
		{
			name: "changed days and prefix, disabled; an undeclared rule is not compared",
			current: `<Rule><ID>expire-tmp</ID><Status>Disabled</Status><Filter><Prefix>temp/</Prefix></Filter><Expiration><Days>3</Days></Expiration></Rule>` +
				`<Rule><ID>old-versions</ID><Status>Enabled</Status><Filter><Prefix></Prefix></Filter><NoncurrentVersionExpiration><NoncurrentDays>30</NoncurrentDays></NoncurrentVersionExpiration></Rule>` +
				`<Rule><ID>by-hand</ID><Status>Enabled</Status><Filter><Prefix></Prefix></Filter><Expiration><Days>1</Days></Expiration></Rule>`,
			desired: design,
			abort:   true,
			want: []string{
				`rule expire-tmp: status disabled -> enabled, prefix "temp/" -> "tmp/", expireDays 3 -> 7`,
			},
		},
		{
			name:    "unmanaged elements are kept: the prefix in an And filter is seen, a transition is no difference",
			current: `<Rule><ID>expire-tmp</ID><Status>Enabled</Status><Filter><And><Prefix>tmp/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></And></Filter><Expiration><Days>7</Days></Expiration><Transition><Days>1</Days><StorageClass>COLD</StorageClass></Transition></Rule>`,
			desired: design[:1],
			abort:   true,
		},
		{
			name:    "a changed rule says what it keeps",
			current: `<Rule><ID>expire-tmp</ID><Status>Enabled</Status><Filter><And><Prefix>tmp/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></And></Filter><Expiration><Days>3</Days></Expiration><Transition><Days>1</Days><StorageClass>COLD</StorageClass></Transition></Rule>`,
			desired: design[:1],
			abort:   true,
			want:    []string{`rule expire-tmp: expireDays 3 -> 7, keeps transition, tag filter`},
		},
		{
			name:    "declared days replace an expiration date",
			current: `<Rule><ID>expire-tmp</ID><Status>Enabled</Status><Filter><Prefix>tmp/</Prefix></Filter><Expiration><Date>2030-01-01T00:00:00Z</Date></Expiration></Rule>`,
			desired: design[:1],
			abort:   true,
			want:    []string{`rule expire-tmp: expireDays unset -> 7, expireDays replaces expiration date`},
		},
		{
			name:    "abort days compared",
			current: `<Rule><ID>a</ID><Status>Enabled</Status><Filter><Prefix></Prefix></Filter><Expiration><Days>7</Days></Expiration></Rule>`,
			desired: []config.LifecycleRule{{ID: "a", ExpireDays: 7, AbortIncompleteUploadDays: 2}},
			abort:   true,
			want:    []string{"rule a: abortIncompleteUploadDays unset -> 2"},
		},
		{
			name:    "abort days ignored on MinIO",
			current: `<Rule><ID>a</ID><Status>Enabled</Status><Filter><Prefix></Prefix></Filter><Expiration><Days>7</Days></Expiration></Rule>`,
			desired: []config.LifecycleRule{{ID: "a", ExpireDays: 7, AbortIncompleteUploadDays: 2}},
		},
		{
			name:    "declared empty compares nothing",
			current: `<Rule><ID>a</ID><Status>Enabled</Status><Filter><Prefix></Prefix></Filter><Expiration><Days>7</Days></Expiration></Rule>`,
			desired: []config.LifecycleRule{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := lifecycleDiff(rulesXML(t, tt.current), tt.desired, tt.abort)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestLifecycleRoundTrip: what apply writes, read back, is in sync.
func TestLifecycleRoundTrip(t *testing.T) {
	rules := []config.LifecycleRule{
		{ID: "expire-tmp", Prefix: "tmp/", ExpireDays: 7},
		{ID: "old-versions", NoncurrentExpireDays: 30, AbortIncompleteUploadDays: 3},
	}
	cfg := lifecycle.NewConfiguration()
	cfg.Rules = mergeLifecycle(nil, rules, nil, true)
	b, err := xml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	back := lifecycle.NewConfiguration()
	if err := xml.Unmarshal(b, back); err != nil {
		t.Fatal(err)
	}
	if d := lifecycleDiff(back.Rules, rules, true); len(d) != 0 {
		t.Errorf("round trip differs: %q\n%s", d, b)
	}
}

func TestTagsDiff(t *testing.T) {
	tests := []struct {
		have, want map[string]string
		diff       []string
		undeclared []string
	}{
		{have: map[string]string{"app": "health"}, want: map[string]string{"app": "health"}},
		{have: map[string]string{}, want: map[string]string{"app": "health"}, diff: []string{"+app=health"}},
		{have: nil, want: map[string]string{"app": "health"}, diff: []string{"+app=health"}},
		{have: map[string]string{"app": "x", "owner": "me"}, want: map[string]string{"app": "health"}, diff: []string{"app: x -> health"}, undeclared: []string{"owner"}},
		{have: map[string]string{"b": "1", "a": "1"}, want: map[string]string{}, undeclared: []string{"a", "b"}},
	}
	for _, tt := range tests {
		if got := tagsDiff(tt.have, tt.want); !reflect.DeepEqual(got, tt.diff) {
			t.Errorf("tagsDiff(%v, %v) = %q, want %q", tt.have, tt.want, got, tt.diff)
		}
		if got := undeclaredTags(tt.have, tt.want); !reflect.DeepEqual(got, tt.undeclared) {
			t.Errorf("undeclaredTags(%v, %v) = %q, want %q", tt.have, tt.want, got, tt.undeclared)
		}
	}
}
