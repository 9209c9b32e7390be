package buckets

import (
	"fmt"
	"sort"
	"strings"

	"github.com/minio/minio-go/v7/pkg/lifecycle"

	"github.com/health-data-ai/bootstrap/internal/config"
)

// lifecycleConfig builds the configuration apply writes: every declared rule
// enabled, filtered by prefix only. When abort is false (MinIO), the abort
// action is left out: MinIO does not implement it and would drop it.
func lifecycleConfig(rules []config.LifecycleRule, abort bool) *lifecycle.Configuration {
	cfg := lifecycle.NewConfiguration()
	for _, r := range rules {
		lr := lifecycle.Rule{
			ID:         r.ID,
			Status:     "Enabled",
			RuleFilter: lifecycle.Filter{Prefix: r.Prefix},
		}
		if r.ExpireDays > 0 {
			lr.Expiration.Days = lifecycle.ExpirationDays(r.ExpireDays)
		}
		if r.NoncurrentExpireDays > 0 {
			lr.NoncurrentVersionExpiration.NoncurrentDays = lifecycle.ExpirationDays(r.NoncurrentExpireDays)
		}
		if abort && r.AbortIncompleteUploadDays > 0 {
			lr.AbortIncompleteMultipartUpload.DaysAfterInitiation = lifecycle.ExpirationDays(r.AbortIncompleteUploadDays)
		}
		cfg.Rules = append(cfg.Rules, lr)
	}
	return cfg
}

// observedRule is a server rule in our terms, plus what it holds that
// bootstrap does not manage (a transition, a tag filter, ...), which makes
// it differ from any declared rule.
type observedRule struct {
	rule      config.LifecycleRule
	disabled  bool
	unmanaged []string
}

func observeRule(r lifecycle.Rule) observedRule {
	o := observedRule{
		rule: config.LifecycleRule{
			ID:                        r.ID,
			Prefix:                    r.RuleFilter.Prefix,
			ExpireDays:                int(r.Expiration.Days),
			NoncurrentExpireDays:      int(r.NoncurrentVersionExpiration.NoncurrentDays),
			AbortIncompleteUploadDays: int(r.AbortIncompleteMultipartUpload.DaysAfterInitiation),
		},
		disabled: !strings.EqualFold(r.Status, "Enabled"),
	}
	// The legacy top-level Prefix (no Filter) means the same as a filter
	// prefix.
	if o.rule.Prefix == "" {
		o.rule.Prefix = r.Prefix
	}
	add := func(cond bool, what string) {
		if cond {
			o.unmanaged = append(o.unmanaged, what)
		}
	}
	add(!r.Expiration.IsDateNull(), "expiration date")
	add(r.Expiration.DeleteMarker.IsEnabled(), "expired delete marker removal")
	add(r.Expiration.DeleteAll.IsEnabled(), "all-versions expiration (MinIO)")
	add(!r.DelMarkerExpiration.IsNull(), "delete marker expiration (MinIO)")
	add(!r.AllVersionsExpiration.IsNull(), "all-versions expiration")
	add(r.NoncurrentVersionExpiration.NewerNoncurrentVersions > 0, "newer noncurrent versions")
	add(!r.Transition.IsNull(), "transition")
	add(r.NoncurrentVersionTransition.NoncurrentDays > 0 || r.NoncurrentVersionTransition.StorageClass != "", "noncurrent version transition")
	add(!r.RuleFilter.Tag.IsEmpty() || !r.RuleFilter.And.IsEmpty(), "tag filter")
	add(r.RuleFilter.ObjectSizeLessThan > 0 || r.RuleFilter.ObjectSizeGreaterThan > 0, "size filter")
	add(r.Compression != nil || r.NoncurrentVersionCompression != nil, "compression")
	return o
}

// lifecycleDiff compares the server's rules with the declared ones as a set
// keyed by id and returns one phrase per difference, empty when in sync.
// When abort is false (MinIO) abortIncompleteUploadDays is not compared.
func lifecycleDiff(current []lifecycle.Rule, desired []config.LifecycleRule, abort bool) []string {
	have := map[string]observedRule{}
	for _, r := range current {
		have[r.ID] = observeRule(r)
	}
	var diffs []string
	want := map[string]bool{}
	for _, d := range desired {
		want[d.ID] = true
		o, ok := have[d.ID]
		if !ok {
			diffs = append(diffs, "add rule "+d.ID)
			continue
		}
		var ch []string
		if o.disabled {
			ch = append(ch, "status disabled -> enabled")
		}
		ch = append(ch, fieldDiff("prefix", o.rule.Prefix, d.Prefix)...)
		ch = append(ch, intDiff("expireDays", o.rule.ExpireDays, d.ExpireDays)...)
		ch = append(ch, intDiff("noncurrentExpireDays", o.rule.NoncurrentExpireDays, d.NoncurrentExpireDays)...)
		if abort {
			ch = append(ch, intDiff("abortIncompleteUploadDays", o.rule.AbortIncompleteUploadDays, d.AbortIncompleteUploadDays)...)
		}
		if len(o.unmanaged) > 0 {
			ch = append(ch, "drop "+strings.Join(o.unmanaged, ", "))
		}
		if len(ch) > 0 {
			diffs = append(diffs, "rule "+d.ID+": "+strings.Join(ch, ", "))
		}
	}
	var extra []string
	for id := range have {
		if !want[id] {
			extra = append(extra, id)
		}
	}
	sort.Strings(extra)
	for _, id := range extra {
		diffs = append(diffs, "remove undeclared rule "+id)
	}
	return diffs
}

func fieldDiff(name, have, want string) []string {
	if have == want {
		return nil
	}
	return []string{fmt.Sprintf("%s %q -> %q", name, have, want)}
}

func intDiff(name string, have, want int) []string {
	if have == want {
		return nil
	}
	return []string{fmt.Sprintf("%s %s -> %s", name, days(have), days(want))}
}

func days(n int) string {
	if n == 0 {
		return "unset"
	}
	return fmt.Sprint(n)
}

// ruleIDs lists the declared rule ids for a Detail line.
func ruleIDs(rules []config.LifecycleRule) string {
	ids := make([]string, len(rules))
	for i, r := range rules {
		ids[i] = r.ID
	}
	return strings.Join(ids, ", ")
}
