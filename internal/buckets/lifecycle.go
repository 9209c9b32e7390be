package buckets

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/lifecycle"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// Lifecycle rules merge by id: a declared rule is added or brought to its
// declared prefix, days and status; every other field of a rule (a
// transition, a tag or size filter, a delete-marker action) and every
// undeclared rule are kept, unless the bucket lists lifecycle as exclusive,
// when undeclared rules are removed. S3 only reads and writes the whole
// document, so apply reads it again, changes what the plan said and writes
// it once.

// exclusive reports whether the bucket declares setting's entries as the
// whole set.
func exclusive(b config.Bucket, setting string) bool {
	return slices.Contains(b.Exclusive, setting)
}

// newRule is a declared rule as written when the server has none with its
// id. When abort is false (MinIO), the abort action is left out: MinIO does
// not implement it and would drop it.
func newRule(d config.LifecycleRule, abort bool) lifecycle.Rule {
	r := lifecycle.Rule{ID: d.ID}
	mergeRule(&r, d, abort)
	return r
}

// mergeRule sets the fields bootstrap manages on a rule and leaves the
// others as they are.
func mergeRule(r *lifecycle.Rule, d config.LifecycleRule, abort bool) {
	setPrefix(r, d.Prefix)
	r.Status = "Enabled"
	r.Expiration.Days = lifecycle.ExpirationDays(d.ExpireDays)
	if d.ExpireDays > 0 {
		// S3 refuses days beside a date or the delete-marker flag in one
		// Expiration; the declared days replace them.
		r.Expiration.Date = lifecycle.ExpirationDate{}
		r.Expiration.DeleteMarker = false
	}
	r.NoncurrentVersionExpiration.NoncurrentDays = lifecycle.ExpirationDays(d.NoncurrentExpireDays)
	if abort {
		r.AbortIncompleteMultipartUpload.DaysAfterInitiation = lifecycle.ExpirationDays(d.AbortIncompleteUploadDays)
	}
}

// rulePrefix is the prefix a rule filters on: a filter holds it alone or,
// beside tags or sizes, in its And; old rules hold it outside any filter.
func rulePrefix(r lifecycle.Rule) string {
	switch {
	case r.RuleFilter.Prefix != "":
		return r.RuleFilter.Prefix
	case r.RuleFilter.And.Prefix != "":
		return r.RuleFilter.And.Prefix
	}
	return r.Prefix
}

// setPrefix changes a rule's prefix and keeps its other filter conditions.
func setPrefix(r *lifecycle.Rule, p string) {
	if rulePrefix(*r) == p {
		return
	}
	f := &r.RuleFilter
	// The filter is where the other conditions live; an old rule's
	// top-level prefix moves into it.
	r.Prefix = ""
	switch {
	case !f.And.IsEmpty():
		f.And.Prefix = p
		if p == "" && len(f.And.Tags) == 1 && f.And.ObjectSizeLessThan == 0 && f.And.ObjectSizeGreaterThan == 0 {
			// One condition is written without And.
			f.Tag, f.And = f.And.Tags[0], lifecycle.And{}
		}
	case p != "" && (!f.Tag.IsEmpty() || f.ObjectSizeLessThan > 0 || f.ObjectSizeGreaterThan > 0):
		// A prefix beside another condition needs an And.
		f.And = lifecycle.And{Prefix: p, ObjectSizeLessThan: f.ObjectSizeLessThan, ObjectSizeGreaterThan: f.ObjectSizeGreaterThan}
		if !f.Tag.IsEmpty() {
			f.And.Tags = []lifecycle.Tag{f.Tag}
		}
		f.Prefix, f.Tag, f.ObjectSizeLessThan, f.ObjectSizeGreaterThan = "", lifecycle.Tag{}, 0, 0
	default:
		f.Prefix = p
	}
}

// mergeLifecycle returns the rules to write: the current ones in their
// order less the ids in remove, declared ones changed in place, then the
// declared rules the server does not have, in config order. current is not
// modified.
func mergeLifecycle(current []lifecycle.Rule, desired []config.LifecycleRule, remove []string, abort bool) []lifecycle.Rule {
	want := make(map[string]config.LifecycleRule, len(desired))
	for _, d := range desired {
		want[d.ID] = d
	}
	have := map[string]bool{}
	var out []lifecycle.Rule
	for _, r := range current {
		if slices.Contains(remove, r.ID) {
			continue
		}
		have[r.ID] = true
		if d, ok := want[r.ID]; ok {
			mergeRule(&r, d, abort)
		}
		out = append(out, r)
	}
	for _, d := range desired {
		if !have[d.ID] {
			out = append(out, newRule(d, abort))
		}
	}
	return out
}

// observedRule is a server rule in our terms, plus what it holds that
// bootstrap does not manage (a transition, a tag filter, ...), which a
// merge keeps.
type observedRule struct {
	rule      config.LifecycleRule
	disabled  bool
	unmanaged []string
}

func observeRule(r lifecycle.Rule) observedRule {
	o := observedRule{
		rule: config.LifecycleRule{
			ID:                        r.ID,
			Prefix:                    rulePrefix(r),
			ExpireDays:                int(r.Expiration.Days),
			NoncurrentExpireDays:      int(r.NoncurrentVersionExpiration.NoncurrentDays),
			AbortIncompleteUploadDays: int(r.AbortIncompleteMultipartUpload.DaysAfterInitiation),
		},
		disabled: !strings.EqualFold(r.Status, "Enabled"),
	}
	f := r.RuleFilter
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
	add(!f.Tag.IsEmpty() || len(f.And.Tags) > 0, "tag filter")
	add(f.ObjectSizeLessThan > 0 || f.ObjectSizeGreaterThan > 0 || f.And.ObjectSizeLessThan > 0 || f.And.ObjectSizeGreaterThan > 0, "size filter")
	add(r.Compression != nil || r.NoncurrentVersionCompression != nil, "compression")
	return o
}

// lifecycleDiff compares the declared rules with the server's rules of the
// same id and returns one phrase per difference, empty when in sync. Rules
// that are not declared are not compared (undeclaredRules lists them). When
// abort is false (MinIO) abortIncompleteUploadDays is not compared.
func lifecycleDiff(current []lifecycle.Rule, desired []config.LifecycleRule, abort bool) []string {
	have := map[string]lifecycle.Rule{}
	for _, r := range current {
		have[r.ID] = r
	}
	var diffs []string
	for _, d := range desired {
		r, ok := have[d.ID]
		if !ok {
			diffs = append(diffs, "add rule "+d.ID)
			continue
		}
		o := observeRule(r)
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
		if len(ch) == 0 {
			continue
		}
		keep := o.unmanaged
		if d.ExpireDays > 0 && o.rule.ExpireDays != d.ExpireDays {
			var replaced []string
			keep = slices.DeleteFunc(slices.Clone(keep), func(s string) bool {
				if s == "expiration date" || s == "expired delete marker removal" {
					replaced = append(replaced, s)
					return true
				}
				return false
			})
			if len(replaced) > 0 {
				ch = append(ch, "expireDays replaces "+strings.Join(replaced, " and "))
			}
		}
		if len(keep) > 0 {
			ch = append(ch, "keeps "+strings.Join(keep, ", "))
		}
		diffs = append(diffs, "rule "+d.ID+": "+strings.Join(ch, ", "))
	}
	return diffs
}

// undeclaredRules lists, sorted, the ids of server rules not declared.
func undeclaredRules(current []lifecycle.Rule, desired []config.LifecycleRule) []string {
	var out []string
	for _, r := range current {
		if !slices.ContainsFunc(desired, func(d config.LifecycleRule) bool { return d.ID == r.ID }) {
			out = append(out, r.ID)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// writeLifecycle reads the bucket's lifecycle again, merges the declared
// rules into it, removes the rules in remove and writes the result if it
// differs: what another tool added since the plan is kept.
func writeLifecycle(ctx context.Context, c *minio.Client, bucket string, desired []config.LifecycleRule, remove []string, abort bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set lifecycle of bucket %s: %w", bucket, err)
	}
	cur, err := c.GetBucketLifecycle(ctx, bucket)
	switch {
	case err == nil:
	case errCode(err) == "NoSuchLifecycleConfiguration":
		cur = lifecycle.NewConfiguration()
	default:
		return fmt.Errorf("read lifecycle of bucket %s: %w", bucket, err)
	}
	next := lifecycle.NewConfiguration()
	next.Rules = mergeLifecycle(cur.Rules, desired, remove, abort)
	if len(next.Rules) == len(cur.Rules) && (len(next.Rules) == 0 || reflect.DeepEqual(next.Rules, cur.Rules)) {
		return nil
	}
	// minio-go deletes the lifecycle for an empty document, which S3
	// would refuse to store.
	if err := c.SetBucketLifecycle(ctx, bucket, next); err != nil {
		return fmt.Errorf("set lifecycle of bucket %s: %w", bucket, err)
	}
	return nil
}

// lifecycleChanges returns the change of the declared rules, then, when
// lifecycle is exclusive, one Delete per undeclared rule. They share one
// write of the whole document, done by whichever applies first.
func (t *Target) lifecycleChanges(c *minio.Client, b config.Bucket, st *bucketState) []reconcile.Change {
	ch := reconcile.Change{Resource: t.resource("lifecycle", b.Name), Action: reconcile.Noop}
	// MinIO-only: MinIO does not implement AbortIncompleteMultipartUpload
	// (it drops the element and removes stale uploads itself, after the
	// api stale_uploads_expiry setting). Comparing it would never settle,
	// and a rule with no other action is refused.
	abort := !t.isMinIO()
	if !abort {
		if id := t.abortOnly(ch.Resource, b.Lifecycle); id != "" {
			ch.Action = reconcile.Update
			ch.Detail = "rule " + id + " has only abortIncompleteUploadDays"
			ch.Drift = "rule " + id + ": abortIncompleteUploadDays is not supported by MinIO, which removes stale multipart uploads itself " +
				"(mc admin config set ALIAS api stale_uploads_expiry=DURATION); remove the rule or give it expireDays or noncurrentExpireDays"
			return []reconcile.Change{ch}
		}
	}
	var current []lifecycle.Rule
	if st != nil {
		current = st.lifecycle
	}
	var remove []string
	if exclusive(b, "lifecycle") {
		remove = undeclaredRules(current, b.Lifecycle)
	}
	w := &sharedWrite{write: func(ctx context.Context) error {
		return writeLifecycle(ctx, c, b.Name, b.Lifecycle, remove, abort)
	}}
	diffs := lifecycleDiff(current, b.Lifecycle, abort)
	switch {
	case st == nil && len(b.Lifecycle) == 0:
		ch.Detail = "a new bucket has no rules"
	case st == nil:
		ch.Action, ch.Detail = reconcile.Create, "set rules "+ruleIDs(b.Lifecycle)
	case len(diffs) > 0:
		ch.Action, ch.Detail = reconcile.Update, strings.Join(diffs, "; ")
		if len(current) == 0 {
			ch.Action = reconcile.Create
		}
	}
	if ch.Action != reconcile.Noop {
		ch.Apply = w.apply
	}
	changes := []reconcile.Change{ch}
	for _, id := range remove {
		changes = append(changes, reconcile.Change{
			Resource: t.resource("lifecycle", b.Name, id),
			Action:   reconcile.Delete,
			Detail:   "remove undeclared rule " + id + " (lifecycle is exclusive)",
			Apply:    w.apply,
		})
	}
	return changes
}

// abortOnly returns the id of a declared rule whose only action is the
// abort MinIO does not implement, and warns of rules that also have
// another action, whose abort days are ignored.
func (t *Target) abortOnly(resource string, rules []config.LifecycleRule) string {
	for _, r := range rules {
		if r.AbortIncompleteUploadDays == 0 {
			continue
		}
		if r.ExpireDays == 0 && r.NoncurrentExpireDays == 0 {
			return r.ID
		}
		t.log.Warn("abortIncompleteUploadDays is not supported by MinIO and is ignored; MinIO removes stale uploads itself (api stale_uploads_expiry)",
			"resource", resource, "rule", r.ID)
	}
	return ""
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
