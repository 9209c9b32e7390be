package buckets

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/tags"
	"golang.org/x/sync/errgroup"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// Plan reads every declared bucket and returns, bucket by bucket in config
// order, the bucket change followed by its versioning, lifecycle, policy and
// tags changes, so a setting is always applied after its bucket exists.
// Reads: one ListBuckets (Connect's), then per existing bucket its location, object
// lock and each declared setting, for up to planWorkers buckets at once.
func (t *Target) Plan(ctx context.Context) ([]reconcile.Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: plan: %w", t.name, err)
	}
	c, err := t.client(t.region())
	if err != nil {
		return nil, err
	}
	list, err := t.list(ctx, c)
	if err != nil {
		return nil, err
	}
	existing := make(map[string]bool, len(list))
	for _, b := range list {
		existing[b.Name] = true
	}

	region, err := t.serverRegion(ctx, existing)
	if err != nil {
		return nil, err
	}
	states := make([]*bucketState, len(t.cfg.Buckets))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(planWorkers)
	for i, b := range t.cfg.Buckets {
		if !existing[b.Name] {
			continue
		}
		g.Go(func() error {
			st, err := t.read(gctx, b, region)
			states[i] = st
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	var changes []reconcile.Change
	for i, b := range t.cfg.Buckets {
		cs, err := t.bucketChanges(b, states[i])
		if err != nil {
			return nil, err
		}
		changes = append(changes, cs...)
	}
	return changes, nil
}

// bucketChanges returns the changes of one bucket; st is nil when the
// bucket does not exist yet.
func (t *Target) bucketChanges(b config.Bucket, st *bucketState) ([]reconcile.Change, error) {
	region := t.bucketRegion(b)
	if st != nil {
		region = st.region
	}
	c, err := t.client(region)
	if err != nil {
		return nil, err
	}
	changes := []reconcile.Change{t.bucketChange(c, b, st)}
	if b.Versioning != nil {
		changes = append(changes, t.versioningChange(c, b, st))
	}
	if b.Lifecycle != nil {
		changes = append(changes, t.lifecycleChanges(c, b, st)...)
	}
	if !b.Policy.IsZero() {
		ch, err := t.policyChange(c, b, st)
		if err != nil {
			return nil, err
		}
		changes = append(changes, ch)
	}
	if b.Tags != nil {
		cs, err := t.tagsChanges(c, b, st)
		if err != nil {
			return nil, err
		}
		changes = append(changes, cs...)
	}
	// A bucket and its settings depend on each other, not on other
	// buckets: one failing bucket does not hold up the rest.
	for i := range changes {
		changes[i].Group = "bucket/" + b.Name
	}
	return changes, nil
}

// resource names a bucket setting, or with entry one rule or tag of it.
func (t *Target) resource(kind, bucket string, entry ...string) string {
	return reconcile.Resource(t.name, append([]string{kind, bucket}, entry...)...)
}

func onOff(b bool) string {
	if b {
		return "enabled"
	}
	return "disabled"
}

func (t *Target) bucketChange(c *minio.Client, b config.Bucket, st *bucketState) reconcile.Change {
	ch := reconcile.Change{Resource: t.resource("bucket", b.Name), Action: reconcile.Noop}
	region := t.bucketRegion(b)
	if st == nil {
		ch.Action = reconcile.Create
		ch.Detail = "create in region " + region
		if b.ObjectLock {
			ch.Detail += " with object lock"
		}
		ch.Apply = func(ctx context.Context) error { return createBucket(ctx, c, b, region) }
		return ch
	}
	var drift, detail []string
	if st.region != region {
		detail = append(detail, fmt.Sprintf("region %s, declared %s", st.region, region))
		drift = append(drift, fmt.Sprintf("region is %s, declared %s: a bucket cannot move between regions; "+
			"declare region: %s, or create a bucket in %s and copy the objects into it", st.region, region, st.region, region))
	}
	if st.objectLock != b.ObjectLock {
		detail = append(detail, fmt.Sprintf("object lock %s, declared %s", onOff(st.objectLock), onOff(b.ObjectLock)))
		if b.ObjectLock {
			drift = append(drift, "object lock is disabled, declared enabled: object lock can only be turned on when a bucket is created; "+
				"create a new bucket with objectLock: true and copy the objects into it, or declare objectLock: false")
		} else {
			drift = append(drift, "object lock is enabled, declared disabled: object lock can never be turned off; "+
				"declare objectLock: true, or create a new bucket without it and copy the objects into it")
		}
	}
	if len(drift) > 0 {
		ch.Action = reconcile.Update
		ch.Detail = strings.Join(detail, "; ")
		ch.Drift = strings.Join(drift, "; ")
	}
	return ch
}

// createBucket makes the bucket; a bucket that a concurrent run made first
// counts as made, provided it has the object lock setting asked for.
func createBucket(ctx context.Context, c *minio.Client, b config.Bucket, region string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("create bucket %s: %w", b.Name, err)
	}
	err := c.MakeBucket(ctx, b.Name, minio.MakeBucketOptions{Region: region, ObjectLocking: b.ObjectLock})
	if err == nil {
		return nil
	}
	switch errCode(err) {
	case "BucketAlreadyOwnedByYou":
		if !b.ObjectLock {
			return nil
		}
		lock, _, _, _, lerr := c.GetObjectLockConfig(ctx, b.Name)
		if lerr == nil && lock == "Enabled" {
			return nil
		}
		return fmt.Errorf("create bucket %s: it was created meanwhile without object lock; create a new bucket with objectLock: true", b.Name)
	case "BucketAlreadyExists":
		return fmt.Errorf("create bucket %s: the name belongs to another account (bucket names are global on this endpoint): choose another name", b.Name)
	}
	return fmt.Errorf("create bucket %s: %w", b.Name, err)
}

func versioningWord(status string) string {
	switch status {
	case minio.Enabled:
		return "enabled"
	case minio.Suspended:
		return "suspended"
	}
	return "never enabled"
}

func (t *Target) versioningChange(c *minio.Client, b config.Bucket, st *bucketState) reconcile.Change {
	ch := reconcile.Change{Resource: t.resource("versioning", b.Name), Action: reconcile.Noop}
	want := *b.Versioning
	if b.ObjectLock && !want {
		ch.Action = reconcile.Update
		ch.Detail = "versioning declared disabled on a bucket with object lock"
		ch.Drift = "versioning: false conflicts with objectLock: true (object lock keeps versions, so it requires versioning); " +
			"declare versioning: true or leave it out"
		return ch
	}
	if st == nil {
		if !want {
			ch.Detail = "a new bucket starts unversioned"
			return ch
		}
		ch.Action = reconcile.Create
		ch.Detail = "enable versioning"
		cfg := minio.BucketVersioningConfiguration{Status: minio.Enabled}
		ch.Apply = func(ctx context.Context) error { return setVersioning(ctx, c, b.Name, cfg) }
		return ch
	}
	have := st.versioning.Status
	if want == (have == minio.Enabled) {
		return ch
	}
	if !want && st.objectLock {
		ch.Action = reconcile.Update
		ch.Detail = "versioning enabled, declared suspended"
		ch.Drift = "versioning cannot be suspended on a bucket with object lock; declare versioning: true"
		return ch
	}
	// Keep MinIO's versioning extensions (excluded prefixes, which MinIO
	// accepts only while versioning is enabled) and drop MFA delete, which
	// cannot be set without an MFA token and stays as it is when omitted.
	cfg := st.versioning
	cfg.MFADelete = ""
	if want {
		cfg.Status = minio.Enabled
	} else {
		cfg.Status = minio.Suspended
		cfg.ExcludedPrefixes, cfg.ExcludeFolders = nil, false
	}
	ch.Action = reconcile.Update
	ch.Detail = fmt.Sprintf("versioning %s -> %s", versioningWord(have), versioningWord(cfg.Status))
	ch.Apply = func(ctx context.Context) error { return setVersioning(ctx, c, b.Name, cfg) }
	return ch
}

func setVersioning(ctx context.Context, c *minio.Client, bucket string, cfg minio.BucketVersioningConfiguration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set versioning of bucket %s: %w", bucket, err)
	}
	if err := c.SetBucketVersioning(ctx, bucket, cfg); err != nil {
		return fmt.Errorf("set versioning of bucket %s: %w", bucket, err)
	}
	return nil
}

// desiredPolicy returns the document to write (nil: no policy) and how to
// name it in a Detail.
func desiredPolicy(b config.Bucket) ([]byte, string, error) {
	if b.Policy.Canned != "" {
		doc, err := CannedPolicy(b.Policy.Canned, b.Name)
		return doc, b.Policy.Canned, err
	}
	// Compact the document; UseNumber keeps numbers as written.
	dec := json.NewDecoder(bytes.NewReader(b.Policy.Document))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, "", fmt.Errorf("not JSON: %w", err)
	}
	doc, err := json.Marshal(v)
	return doc, "the declared document", err
}

func (t *Target) policyChange(c *minio.Client, b config.Bucket, st *bucketState) (reconcile.Change, error) {
	ch := reconcile.Change{Resource: t.resource("policy", b.Name), Action: reconcile.Noop}
	doc, label, err := desiredPolicy(b)
	if err != nil {
		return ch, fmt.Errorf("%s: policy of bucket %s: %w", t.name, b.Name, err)
	}
	want, err := normalizePolicy(doc)
	if err != nil {
		return ch, fmt.Errorf("%s: policy of bucket %s: %w", t.name, b.Name, err)
	}
	apply := func(ctx context.Context) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("set policy of bucket %s: %w", b.Name, err)
		}
		// An empty policy removes the bucket's policy.
		if err := c.SetBucketPolicy(ctx, b.Name, string(doc)); err != nil {
			return fmt.Errorf("set policy of bucket %s: %w", b.Name, err)
		}
		return nil
	}
	var have normalPolicy
	if st != nil {
		have = st.policy
	}
	if have.Canonical == want.Canonical {
		if st == nil {
			ch.Detail = "a new bucket has no policy"
		}
		return ch, nil
	}
	ch.Apply = apply
	switch {
	case have.Canonical == "":
		ch.Action = reconcile.Create
		ch.Detail = "set policy " + label
	case want.Canonical == "":
		ch.Action = reconcile.Update
		ch.Detail = "remove policy (declared " + label + "): " + policyDiff(have, want)
	default:
		ch.Action = reconcile.Update
		ch.Detail = "policy differs from " + label + ": " + policyDiff(have, want)
	}
	return ch, nil
}

// Tags merge by key: declared keys are added or set, undeclared ones are
// kept unless the bucket lists tags as exclusive, when each is removed by a
// Delete. Like lifecycle rules, S3 writes the tag set whole: the changes
// share one read-modify-write.
func (t *Target) tagsChanges(c *minio.Client, b config.Bucket, st *bucketState) ([]reconcile.Change, error) {
	ch := reconcile.Change{Resource: t.resource("tags", b.Name), Action: reconcile.Noop}
	// The config checks lengths; minio-go also refuses some characters,
	// better said by the plan than by the write.
	if _, err := tags.NewTags(b.Tags, false); err != nil {
		return nil, fmt.Errorf("%s: tags of bucket %s: %w", t.name, b.Name, err)
	}
	var current map[string]string
	if st != nil {
		current = st.tags
	}
	var remove []string
	if exclusive(b, "tags") {
		remove = undeclaredTags(current, b.Tags)
	}
	w := &sharedWrite{write: func(ctx context.Context) error { return writeTags(ctx, c, b.Name, b.Tags, remove) }}
	diffs := tagsDiff(current, b.Tags)
	switch {
	case st == nil && len(b.Tags) == 0:
		ch.Detail = "a new bucket has no tags"
	case st == nil:
		ch.Action, ch.Detail = reconcile.Create, "set "+tagList(b.Tags)
	case len(diffs) > 0:
		ch.Action, ch.Detail = reconcile.Update, strings.Join(diffs, ", ")
		if len(current) == 0 {
			ch.Action = reconcile.Create
		}
	}
	if ch.Action != reconcile.Noop {
		ch.Apply = w.apply
	}
	changes := []reconcile.Change{ch}
	for _, k := range remove {
		changes = append(changes, reconcile.Change{
			Resource: t.resource("tags", b.Name, k),
			Action:   reconcile.Delete,
			Detail:   fmt.Sprintf("remove undeclared tag %s=%s (tags are exclusive)", k, current[k]),
			Apply:    w.apply,
		})
	}
	return changes, nil
}

// writeTags reads the bucket's tags again, sets the declared ones, removes
// those in remove and writes the result if it differs: a tag another tool
// added since the plan is kept.
func writeTags(ctx context.Context, c *minio.Client, bucket string, want map[string]string, remove []string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set tags of bucket %s: %w", bucket, err)
	}
	cur := map[string]string{}
	tg, err := c.GetBucketTagging(ctx, bucket)
	switch {
	case err == nil:
		cur = tg.ToMap()
	case noTags(err):
	default:
		return fmt.Errorf("read tags of bucket %s: %w", bucket, err)
	}
	next := mergeTags(cur, want, remove)
	if maps.Equal(cur, next) {
		return nil
	}
	if len(next) == 0 {
		// S3 stores no empty tag set: removing the last tag removes the set.
		err = c.RemoveBucketTagging(ctx, bucket)
	} else {
		var set *tags.Tags
		if set, err = tags.NewTags(next, false); err != nil {
			return fmt.Errorf("set tags of bucket %s: %w", bucket, err)
		}
		err = c.SetBucketTagging(ctx, bucket, set)
	}
	if err != nil {
		return fmt.Errorf("set tags of bucket %s: %w", bucket, err)
	}
	return nil
}

func noTags(err error) bool {
	return errCode(err) == "NoSuchTagSet" || errCode(err) == "NoSuchTagSetError"
}

// mergeTags returns have with want's keys set and remove's keys removed;
// have is not modified.
func mergeTags(have, want map[string]string, remove []string) map[string]string {
	out := maps.Clone(have)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, want)
	for _, k := range remove {
		delete(out, k)
	}
	return out
}

func tagList(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + "=" + m[k]
	}
	return strings.Join(out, ", ")
}

// tagsDiff compares the declared tags with the server's: "+k=v" to add,
// "k: a -> b" to change. Undeclared keys are not compared (undeclaredTags
// lists them).
func tagsDiff(have, want map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		hv, ok := have[k]
		switch {
		case !ok:
			out = append(out, "+"+k+"="+want[k])
		case hv != want[k]:
			out = append(out, fmt.Sprintf("%s: %s -> %s", k, hv, want[k]))
		}
	}
	return out
}

// undeclaredTags lists, sorted, the server's keys that are not declared.
func undeclaredTags(have, want map[string]string) []string {
	var out []string
	for k := range have {
		if _, ok := want[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// sharedWrite is the one write behind the changes of one bucket setting:
// S3 replaces a lifecycle document or a tag set whole, so the first change
// applied writes the final state and the others find it done. A failed
// write is not remembered: the engine skips the rest of the bucket, and a
// retried Apply writes again.
type sharedWrite struct {
	mu    sync.Mutex
	done  bool
	write func(ctx context.Context) error
}

func (w *sharedWrite) apply(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return nil
	}
	if err := w.write(ctx); err != nil {
		return err
	}
	w.done = true
	return nil
}
