package buckets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/lifecycle"
	"github.com/minio/minio-go/v7/pkg/tags"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/reconcile/reconciletest"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

func ptr[T any](v T) *T { return &v }

// env is one test's view of the real MinIO server.
type env struct {
	srv   testenv.MinIOServer
	admin *minio.Client
}

func newEnv(t testing.TB) env {
	t.Helper()
	srv := testenv.MinIO(t)
	c, err := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	return env{srv: srv, admin: c}
}

func (e env) config(buckets ...config.Bucket) config.MinIO {
	return config.MinIO{
		Name:      "test",
		Endpoint:  e.srv.Endpoint,
		Region:    "us-east-1",
		AccessKey: config.SecretRef{Secret: "minio-root-user"},
		SecretKey: config.SecretRef{Secret: "minio-root-password"},
		Buckets:   buckets,
	}
}

func (e env) creds() credential.Resolved {
	return credential.Resolved{
		"minio-root-user":     credential.New(e.srv.AccessKey),
		"minio-root-password": credential.New(e.srv.SecretKey),
	}
}

func (e env) target(buckets ...config.Bucket) *Target {
	return New(e.config(buckets...), e.creds(), slog.New(slog.DiscardHandler))
}

// removeBuckets deletes the test's own buckets and everything in them when
// the test ends; bootstrap itself never deletes anything.
func (e env) removeBuckets(t testing.TB, names ...string) {
	t.Cleanup(func() {
		ctx := context.Background()
		for _, n := range names {
			for o := range e.admin.ListObjects(ctx, n, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
				if o.Err != nil {
					break
				}
				_ = e.admin.RemoveObject(ctx, n, o.Key, minio.RemoveObjectOptions{VersionID: o.VersionID, GovernanceBypass: true})
			}
			if err := e.admin.RemoveBucket(ctx, n); err != nil && errCode(err) != "NoSuchBucket" {
				t.Errorf("cleanup: remove bucket %s: %v", n, err)
			}
		}
	})
}

// snapshot renders the server state of the named buckets.
func (e env) snapshot(ctx context.Context, names ...string) (string, error) {
	var sb strings.Builder
	for _, n := range names {
		ok, err := e.admin.BucketExists(ctx, n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&sb, "%s exists=%v", n, ok)
		if !ok {
			sb.WriteString("\n")
			continue
		}
		v, err := e.admin.GetBucketVersioning(ctx, n)
		if err != nil {
			return "", err
		}
		lock, _, _, _, err := e.admin.GetObjectLockConfig(ctx, n)
		if err != nil && errCode(err) != "ObjectLockConfigurationNotFoundError" {
			return "", err
		}
		var rules []string
		lc, err := e.admin.GetBucketLifecycle(ctx, n)
		switch {
		case err == nil:
			for _, r := range lc.Rules {
				o := observeRule(r)
				rules = append(rules, fmt.Sprintf("%+v", o))
			}
			slices.Sort(rules)
		case errCode(err) != "NoSuchLifecycleConfiguration":
			return "", err
		}
		raw, err := e.admin.GetBucketPolicy(ctx, n)
		if err != nil {
			return "", err
		}
		// MinIO returns the actions of a statement in a different order
		// from one GET to the next: only the normalised form is stable.
		pol, err := normalizePolicy([]byte(raw))
		if err != nil {
			return "", err
		}
		var tags map[string]string
		tg, err := e.admin.GetBucketTagging(ctx, n)
		switch {
		case err == nil:
			tags = tg.ToMap()
		case errCode(err) != "NoSuchTagSet":
			return "", err
		}
		fmt.Fprintf(&sb, " versioning=%q lock=%q lifecycle=%v policy=%s tags=%v\n", v.Status, lock, rules, pol.Canonical, tags)
	}
	return sb.String(), nil
}

// designBuckets is DESIGN.md's example bucket, plus one with object lock.
func designBuckets(raw, locked string) []config.Bucket {
	return []config.Bucket{
		{
			Name:       raw,
			Versioning: ptr(true),
			ObjectLock: false,
			Lifecycle: []config.LifecycleRule{
				{ID: "expire-tmp", Prefix: "tmp/", ExpireDays: 7},
				{ID: "old-versions", NoncurrentExpireDays: 30},
			},
			Policy: config.BucketPolicy{Canned: CannedDownload},
			Tags:   map[string]string{"app": "health"},
		},
		{
			Name:       locked,
			Versioning: ptr(true),
			ObjectLock: true,
			Policy:     config.BucketPolicy{Canned: CannedPrivate},
			Tags:       map[string]string{"app": "health", "retention": "legal"},
		},
	}
}

func connect(t testing.TB, tgt *Target) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tgt.Connect(ctx); err != nil {
		t.Fatalf("connect: %v", err)
	}
}

func plan(t testing.TB, tgt *Target) []reconcile.Change {
	t.Helper()
	connect(t, tgt)
	cs, err := tgt.Plan(context.Background())
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	return cs
}

// apply runs every change with an Apply, in order, as the engine does, and
// returns how many it ran; drift fails the test unless allowed.
func apply(t testing.TB, tgt *Target) int {
	t.Helper()
	n := 0
	for _, c := range plan(t, tgt) {
		if c.Drift != "" {
			t.Fatalf("drift on %s: %s", c.Resource, c.Drift)
		}
		if c.Apply == nil {
			continue
		}
		if err := c.Apply(context.Background()); err != nil {
			t.Fatalf("apply %s %s: %v", c.Action, c.Resource, err)
		}
		n++
	}
	return n
}

func find(t testing.TB, cs []reconcile.Change, resource string) reconcile.Change {
	t.Helper()
	for _, c := range cs {
		if c.Resource == resource {
			return c
		}
	}
	t.Fatalf("no change for %s in %v", resource, cs)
	return reconcile.Change{}
}

func TestConformance(t *testing.T) {
	reconciletest.Run(t, func(t *testing.T) reconciletest.Env {
		e := newEnv(t)
		raw, locked := testenv.Unique("bt-raw-"), testenv.Unique("bt-lock-")
		e.removeBuckets(t, raw, locked)
		buckets := designBuckets(raw, locked)
		return reconciletest.Env{
			NewTarget: func() reconcile.Target { return e.target(buckets...) },
			Snapshot:  func(ctx context.Context) (string, error) { return e.snapshot(ctx, raw, locked) },
		}
	})
}

// TestDesignExample applies DESIGN.md's bucket and checks each setting on
// the server the way a user would, anonymous download included.
func TestDesignExample(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	raw, locked := testenv.Unique("bt-raw-"), testenv.Unique("bt-lock-")
	e.removeBuckets(t, raw, locked)
	buckets := designBuckets(raw, locked)

	cs := plan(t, e.target(buckets...))
	var got []string
	for _, c := range cs {
		got = append(got, string(c.Action)+" "+c.Resource)
	}
	want := []string{
		"create minio/test/bucket/" + raw,
		"create minio/test/versioning/" + raw,
		"create minio/test/lifecycle/" + raw,
		"create minio/test/policy/" + raw,
		"create minio/test/tags/" + raw,
		"create minio/test/bucket/" + locked,
		"create minio/test/versioning/" + locked,
		"noop minio/test/policy/" + locked,
		"create minio/test/tags/" + locked,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("plan:\n got %q\nwant %q", got, want)
	}
	if n := apply(t, e.target(buckets...)); n != 8 {
		t.Errorf("first apply ran %d changes, want 8", n)
	}
	for _, c := range plan(t, e.target(buckets...)) {
		if c.Action != reconcile.Noop {
			t.Errorf("after apply: %s %s (%s)", c.Action, c.Resource, c.Detail)
		}
	}

	for _, b := range []string{raw, locked} {
		v, err := e.admin.GetBucketVersioning(ctx, b)
		if err != nil || v.Status != minio.Enabled {
			t.Errorf("%s versioning = %q, %v; want Enabled", b, v.Status, err)
		}
	}
	lock, _, _, _, err := e.admin.GetObjectLockConfig(ctx, locked)
	if err != nil || lock != "Enabled" {
		t.Errorf("object lock of %s = %q, %v; want Enabled", locked, lock, err)
	}
	if _, _, _, _, err := e.admin.GetObjectLockConfig(ctx, raw); errCode(err) != "ObjectLockConfigurationNotFoundError" {
		t.Errorf("object lock on %s: %v, want none", raw, err)
	}
	lc, err := e.admin.GetBucketLifecycle(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]lifecycle.Rule{}
	for _, r := range lc.Rules {
		rules[r.ID] = r
	}
	if r := rules["expire-tmp"]; r.RuleFilter.Prefix != "tmp/" || r.Expiration.Days != 7 || r.Status != "Enabled" {
		t.Errorf("rule expire-tmp = %+v", r)
	}
	if r := rules["old-versions"]; r.NoncurrentVersionExpiration.NoncurrentDays != 30 || r.Status != "Enabled" {
		t.Errorf("rule old-versions = %+v", r)
	}
	tg, err := e.admin.GetBucketTagging(ctx, raw)
	if err != nil || tg.ToMap()["app"] != "health" || len(tg.ToMap()) != 1 {
		t.Errorf("tags of %s = %v, %v", raw, tg, err)
	}

	// The download policy lets an anonymous GET through; the private
	// bucket does not.
	body := []byte("anonymous read works")
	for _, b := range []string{raw, locked} {
		if _, err := e.admin.PutObject(ctx, b, "public/hello.txt", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	status, got2 := anonymousGet(t, "http://"+e.srv.Endpoint+"/"+raw+"/public/hello.txt")
	if status != http.StatusOK || !bytes.Equal(got2, body) {
		t.Errorf("anonymous GET from the download bucket: %d %q", status, got2)
	}
	if status, _ := anonymousGet(t, "http://"+e.srv.Endpoint+"/"+locked+"/public/hello.txt"); status != http.StatusForbidden {
		t.Errorf("anonymous GET from the private bucket: %d, want 403", status)
	}
}

func anonymousGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestObjectLockDrift: a bucket made by hand without object lock, then
// declared with it, is drift with a remedy; the rest of the bucket still
// converges and the bucket is left as it was.
func TestObjectLockDrift(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	name := testenv.Unique("bt-drift-")
	e.removeBuckets(t, name)
	if err := e.admin.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	b := config.Bucket{Name: name, ObjectLock: true, Tags: map[string]string{"app": "health"}}
	cs := plan(t, e.target(b))
	c := find(t, cs, "minio/test/bucket/"+name)
	if c.Drift == "" || c.Apply != nil {
		t.Fatalf("bucket change = %+v, want drift without apply", c)
	}
	for _, want := range []string{"object lock", "disabled", "enabled", "objectLock: true", "copy the objects", "objectLock: false"} {
		if !strings.Contains(c.Drift, want) {
			t.Errorf("drift %q does not mention %q", c.Drift, want)
		}
	}
	if tc := find(t, cs, "minio/test/tags/"+name); tc.Action != reconcile.Create || tc.Apply == nil {
		t.Errorf("tags change = %+v, want create", tc)
	}
	for _, c := range cs {
		if c.Apply != nil {
			if err := c.Apply(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, _, _, _, err := e.admin.GetObjectLockConfig(ctx, name); errCode(err) != "ObjectLockConfigurationNotFoundError" {
		t.Errorf("object lock config after apply: %v, want none (never fixed)", err)
	}
	// Still drift on the next plan, and only that.
	for _, c := range plan(t, e.target(b)) {
		if c.Action != reconcile.Noop && c.Drift == "" {
			t.Errorf("second plan: %s %s (%s)", c.Action, c.Resource, c.Detail)
		}
	}

	// The other way round: a locked bucket declared without lock.
	locked := testenv.Unique("bt-drift-")
	e.removeBuckets(t, locked)
	if err := e.admin.MakeBucket(ctx, locked, minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
		t.Fatal(err)
	}
	c = find(t, plan(t, e.target(config.Bucket{Name: locked})), "minio/test/bucket/"+locked)
	if !strings.Contains(c.Drift, "can never be turned off") {
		t.Errorf("drift = %q", c.Drift)
	}
}

// TestHandWrittenPolicy: a policy set by hand that grants what the canned
// one grants, written in another order and shape, is in sync; so is mc's.
func TestHandWrittenPolicy(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	name := testenv.Unique("bt-pol-")
	e.removeBuckets(t, name)
	if err := e.admin.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	hand := `{"Statement":[
		{"Resource":"arn:aws:s3:::` + name + `/*","Principal":"*","Effect":"Allow","Action":"s3:GetObject"},
		{"Principal":{"AWS":"*"},"Effect":"Allow","Resource":"arn:aws:s3:::` + name + `","Action":["s3:ListBucket","s3:GetBucketLocation"]}
	],"Version":"2012-10-17"}`
	mc, _ := CannedPolicy(CannedDownload, name)
	for _, doc := range []string{hand, string(mc)} {
		if err := e.admin.SetBucketPolicy(ctx, name, doc); err != nil {
			t.Fatal(err)
		}
		c := find(t, plan(t, e.target(config.Bucket{Name: name, Policy: config.BucketPolicy{Canned: CannedDownload}})), "minio/test/policy/"+name)
		if c.Action != reconcile.Noop {
			t.Errorf("policy written as %s: %s %s", doc, c.Action, c.Detail)
		}
	}

	// The same document declared as JSON is in sync too; public is not, and
	// says what it would change.
	declared := config.Bucket{Name: name, Policy: config.BucketPolicy{Document: []byte(hand)}}
	if c := find(t, plan(t, e.target(declared)), "minio/test/policy/"+name); c.Action != reconcile.Noop {
		t.Errorf("declared document: %s %s", c.Action, c.Detail)
	}
	public := config.Bucket{Name: name, Policy: config.BucketPolicy{Canned: CannedPublic}}
	c := find(t, plan(t, e.target(public)), "minio/test/policy/"+name)
	if c.Action != reconcile.Update || !strings.Contains(c.Detail, "s3:PutObject") {
		t.Errorf("public over download: %s %s", c.Action, c.Detail)
	}

	// private removes the policy; anonymous access stops.
	private := config.Bucket{Name: name, Policy: config.BucketPolicy{Canned: CannedPrivate}}
	c = find(t, plan(t, e.target(private)), "minio/test/policy/"+name)
	if c.Action != reconcile.Update || !strings.Contains(c.Detail, "remove policy") {
		t.Fatalf("private over download: %s %s", c.Action, c.Detail)
	}
	apply(t, e.target(private))
	if p, err := e.admin.GetBucketPolicy(ctx, name); err != nil || p != "" {
		t.Errorf("policy after private = %q, %v", p, err)
	}
	if c := find(t, plan(t, e.target(private)), "minio/test/policy/"+name); c.Action != reconcile.Noop {
		t.Errorf("private again: %s %s", c.Action, c.Detail)
	}
}

// TestHandChangesAreRepaired: settings changed by hand are planned as
// updates that say what differs, and apply puts them back. A rule or a tag
// added by hand is not ours to remove: it stays, unless the bucket declares
// the setting exclusive, when each is its own Delete.
func TestHandChangesAreRepaired(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	raw, locked := testenv.Unique("bt-raw-"), testenv.Unique("bt-lock-")
	e.removeBuckets(t, raw, locked)
	buckets := designBuckets(raw, locked)
	apply(t, e.target(buckets...))

	if err := e.admin.SuspendVersioning(ctx, raw); err != nil {
		t.Fatal(err)
	}
	lc := lifecycle.NewConfiguration()
	lc.Rules = []lifecycle.Rule{
		{ID: "expire-tmp", Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "tmp/"}, Expiration: lifecycle.Expiration{Days: 1}},
		{ID: "by-hand", Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "x/"}, Expiration: lifecycle.Expiration{Days: 1}},
	}
	if err := e.admin.SetBucketLifecycle(ctx, raw, lc); err != nil {
		t.Fatal(err)
	}
	handTags, _ := tags.NewTags(map[string]string{"app": "health", "owner": "ops"}, false)
	if err := e.admin.SetBucketTagging(ctx, raw, handTags); err != nil {
		t.Fatal(err)
	}
	if err := e.admin.RemoveBucketTagging(ctx, locked); err != nil {
		t.Fatal(err)
	}
	cs := plan(t, e.target(buckets...))
	for res, want := range map[string]string{
		"minio/test/versioning/" + raw: "versioning suspended -> enabled",
		"minio/test/lifecycle/" + raw:  "rule expire-tmp: expireDays 1 -> 7; add rule old-versions",
		"minio/test/tags/" + raw:       "",
		"minio/test/tags/" + locked:    "+app=health, +retention=legal",
	} {
		if c := find(t, cs, res); c.Detail != want {
			t.Errorf("%s: %s %q, want %q", res, c.Action, c.Detail, want)
		}
	}
	for _, c := range cs {
		if c.Action == reconcile.Delete {
			t.Errorf("not exclusive, yet %s %s (%s)", c.Action, c.Resource, c.Detail)
		}
	}
	apply(t, e.target(buckets...))
	for _, c := range plan(t, e.target(buckets...)) {
		if c.Action != reconcile.Noop {
			t.Errorf("after repair: %s %s (%s)", c.Action, c.Resource, c.Detail)
		}
	}
	if ids := ruleIDsOn(t, e, raw); !slices.Equal(ids, []string{"by-hand", "expire-tmp", "old-versions"}) {
		t.Errorf("rules after repair = %q, want the hand-made one kept", ids)
	}
	if got := tagsOn(t, e, raw); got["owner"] != "ops" || got["app"] != "health" {
		t.Errorf("tags after repair = %v, want owner=ops kept", got)
	}

	// Exclusive: the hand-made rule and tag are each a Delete, and go.
	buckets[0].Exclusive = []string{"lifecycle", "tags"}
	cs = plan(t, e.target(buckets...))
	for res, want := range map[string]reconcile.Action{
		"minio/test/lifecycle/" + raw:              reconcile.Noop,
		"minio/test/lifecycle/" + raw + "/by-hand": reconcile.Delete,
		"minio/test/tags/" + raw:                   reconcile.Noop,
		"minio/test/tags/" + raw + "/owner":        reconcile.Delete,
	} {
		if c := find(t, cs, res); c.Action != want || (want == reconcile.Delete && c.Apply == nil) {
			t.Errorf("exclusive: %s %s (%s), want %s", res, c.Action, c.Detail, want)
		}
	}
	apply(t, e.target(buckets...))
	if ids := ruleIDsOn(t, e, raw); !slices.Equal(ids, []string{"expire-tmp", "old-versions"}) {
		t.Errorf("rules after exclusive apply = %q", ids)
	}
	if got := tagsOn(t, e, raw); len(got) != 1 || got["app"] != "health" {
		t.Errorf("tags after exclusive apply = %v", got)
	}
	for _, c := range plan(t, e.target(buckets...)) {
		if c.Action != reconcile.Noop {
			t.Errorf("after exclusive apply: %s %s (%s)", c.Action, c.Resource, c.Detail)
		}
	}

	// Suspending versioning on the locked bucket is drift, not an error.
	buckets[1].Versioning = ptr(false)
	c := find(t, plan(t, e.target(buckets...)), "minio/test/versioning/"+locked)
	if c.Drift == "" {
		t.Errorf("versioning false with object lock: %+v", c)
	}
}

// TestMinIOAbortIncompleteUploads: MinIO does not implement the abort
// action; a rule that also expires objects converges without it, a rule
// with nothing else is drift that says why.
func TestMinIOAbortIncompleteUploads(t *testing.T) {
	e := newEnv(t)
	name := testenv.Unique("bt-abort-")
	e.removeBuckets(t, name)
	b := config.Bucket{Name: name, Lifecycle: []config.LifecycleRule{{ID: "r", ExpireDays: 3, AbortIncompleteUploadDays: 1}}}
	apply(t, e.target(b))
	if c := find(t, plan(t, e.target(b)), "minio/test/lifecycle/"+name); c.Action != reconcile.Noop {
		t.Errorf("after apply: %s %s", c.Action, c.Detail)
	}
	b.Lifecycle = []config.LifecycleRule{{ID: "only-abort", AbortIncompleteUploadDays: 1}}
	c := find(t, plan(t, e.target(b)), "minio/test/lifecycle/"+name)
	if !strings.Contains(c.Drift, "not supported by MinIO") {
		t.Errorf("abort-only rule: %+v", c)
	}
}

// TestBadCredentials: a wrong secret key or an unknown access key is a
// Permanent error naming the instance and the endpoint and never a key;
// a closed port is retryable.
func TestBadCredentials(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const wrongSecret = "not-the-secret-key-5bd1c2"
	for _, tc := range []struct {
		name     string
		ak, sk   string
		wantCode string
	}{
		{"wrong secret key", e.srv.AccessKey, wrongSecret, "SignatureDoesNotMatch"},
		{"unknown access key", "unknown-access-key-77f1", wrongSecret, "InvalidAccessKeyId"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			creds := credential.Resolved{
				"minio-root-user":     credential.New(tc.ak),
				"minio-root-password": credential.New(tc.sk),
			}
			var logs bytes.Buffer
			tgt := New(e.config(), creds, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			defer tgt.Close()
			err := tgt.Connect(ctx)
			if err == nil {
				t.Fatal("connect succeeded")
			}
			if !reconcile.IsPermanent(err) {
				t.Errorf("error is not permanent: %v", err)
			}
			msg := err.Error()
			for _, want := range []string{"minio/test", e.srv.Endpoint, tc.wantCode} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not mention %q", msg, want)
				}
			}
			for _, secret := range []string{tc.ak, tc.sk, e.srv.SecretKey} {
				if strings.Contains(msg, secret) || strings.Contains(logs.String(), secret) {
					t.Errorf("a key leaked: %q / logs %q", msg, logs.String())
				}
			}
		})
	}

	t.Run("missing secret", func(t *testing.T) {
		tgt := New(e.config(), credential.Resolved{}, nil)
		err := tgt.Connect(ctx)
		if !reconcile.IsPermanent(err) || !strings.Contains(err.Error(), "minio-root-user") {
			t.Errorf("err = %v", err)
		}
	})

	t.Run("connection refused is retryable", func(t *testing.T) {
		cfg := e.config()
		cfg.Endpoint = "127.0.0.1:1"
		tgt := New(cfg, e.creds(), nil)
		defer tgt.Close()
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		err := tgt.Connect(cctx)
		if err == nil || reconcile.IsPermanent(err) {
			t.Fatalf("err = %v, want a retryable error", err)
		}
		if strings.Contains(err.Error(), e.srv.SecretKey) || strings.Contains(err.Error(), e.srv.AccessKey) {
			t.Errorf("a key leaked: %v", err)
		}
		if !strings.Contains(tgt.WaitingFor(), "127.0.0.1:1") {
			t.Errorf("WaitingFor = %q", tgt.WaitingFor())
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := e.target().Connect(cctx)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	})
}

// TestConcurrentApplies: two runs that planned on the same empty state and
// apply at the same time both succeed and leave one result.
func TestConcurrentApplies(t *testing.T) {
	e := newEnv(t)
	raw, locked := testenv.Unique("bt-raw-"), testenv.Unique("bt-lock-")
	e.removeBuckets(t, raw, locked)
	buckets := designBuckets(raw, locked)
	plans := [][]reconcile.Change{plan(t, e.target(buckets...)), plan(t, e.target(buckets...))}
	errs := make(chan error, 2)
	for _, cs := range plans {
		go func() {
			for _, c := range cs {
				if c.Apply == nil {
					continue
				}
				if err := c.Apply(context.Background()); err != nil {
					errs <- fmt.Errorf("%s: %w", c.Resource, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range plans {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for _, c := range plan(t, e.target(buckets...)) {
		if c.Action != reconcile.Noop {
			t.Errorf("after two concurrent applies: %s %s (%s)", c.Action, c.Resource, c.Detail)
		}
	}
}
