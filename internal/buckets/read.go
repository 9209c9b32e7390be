package buckets

import (
	"context"
	"fmt"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/lifecycle"

	"github.com/health-data-ai/bootstrap/internal/config"
)

// bucketState is what Plan read of one existing bucket. Settings that are
// not declared are not read.
type bucketState struct {
	region     string
	objectLock bool
	versioning minio.BucketVersioningConfiguration
	lifecycle  []lifecycle.Rule
	policy     normalPolicy
	tags       map[string]string
}

// list returns the buckets on the server: Connect's answer when this Plan
// follows it, else a ListBuckets of its own.
func (t *Target) list(ctx context.Context, c *minio.Client) ([]minio.BucketInfo, error) {
	t.mu.Lock()
	list, ok := t.listed, t.haveListed
	t.listed, t.haveListed = nil, false
	t.mu.Unlock()
	if ok {
		return list, nil
	}
	list, err := c.ListBuckets(ctx)
	if err != nil {
		return nil, t.readError(ctx, "list buckets", err)
	}
	return list, nil
}

func (t *Target) readError(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %s: %w", t.name, what, ctx.Err())
	}
	return fmt.Errorf("%s: %s: %w", t.name, what, err)
}

func errCode(err error) string { return minio.ToErrorResponse(err).Code }

// serverRegion returns, for MinIO, the region every bucket on it has, read
// once: MinIO answers GetBucketLocation with its own region whatever the
// bucket (cmd/bucket-handlers.go, globalSite.Region()), so asking for each
// of 200 buckets would send 199 requests that cannot differ. For other S3
// servers, where each bucket has its own, it returns "" and read asks.
func (t *Target) serverRegion(ctx context.Context, existing map[string]bool) (string, error) {
	if !t.isMinIO() {
		return "", nil
	}
	for _, b := range t.cfg.Buckets {
		if existing[b.Name] {
			loc, err := t.locator.GetBucketLocation(ctx, b.Name)
			if err != nil {
				return "", t.readError(ctx, "get location of bucket "+b.Name, err)
			}
			return loc, nil
		}
	}
	return "", nil
}

// read fetches the state of one existing bucket; region, when not empty,
// is its location already known (serverRegion).
func (t *Target) read(ctx context.Context, b config.Bucket, region string) (*bucketState, error) {
	st := &bucketState{region: region}
	if region == "" {
		loc, err := t.locator.GetBucketLocation(ctx, b.Name)
		if err != nil {
			return nil, t.readError(ctx, "get location of bucket "+b.Name, err)
		}
		st.region = loc
	}
	loc := st.region
	// Read (and later write) with the bucket's actual region, so its
	// settings still converge when the region itself is drift.
	c, err := t.client(loc)
	if err != nil {
		return nil, err
	}

	lock, _, _, _, err := c.GetObjectLockConfig(ctx, b.Name)
	switch {
	case err == nil:
		st.objectLock = lock == "Enabled"
	case errCode(err) == "ObjectLockConfigurationNotFoundError":
	case errCode(err) == "NotImplemented" && !b.ObjectLock:
		// An endpoint without object lock (some S3 servers) has no lock
		// to report; that only matters if one was asked for.
	default:
		return nil, t.readError(ctx, "get object lock of bucket "+b.Name, err)
	}

	if b.Versioning != nil {
		st.versioning, err = c.GetBucketVersioning(ctx, b.Name)
		if err != nil {
			return nil, t.readError(ctx, "get versioning of bucket "+b.Name, err)
		}
	}
	if b.Lifecycle != nil {
		lc, err := c.GetBucketLifecycle(ctx, b.Name)
		switch {
		case err == nil:
			st.lifecycle = lc.Rules
		case errCode(err) == "NoSuchLifecycleConfiguration":
		default:
			return nil, t.readError(ctx, "get lifecycle of bucket "+b.Name, err)
		}
	}
	if !b.Policy.IsZero() {
		doc, err := c.GetBucketPolicy(ctx, b.Name) // "" when there is none
		if err != nil {
			return nil, t.readError(ctx, "get policy of bucket "+b.Name, err)
		}
		st.policy, err = normalizePolicy([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%s: policy of bucket %s on the server: %w", t.name, b.Name, err)
		}
	}
	if b.Tags != nil {
		tg, err := c.GetBucketTagging(ctx, b.Name)
		switch {
		case err == nil:
			st.tags = tg.ToMap()
		case noTags(err):
			st.tags = map[string]string{}
		default:
			return nil, t.readError(ctx, "get tags of bucket "+b.Name, err)
		}
	}
	return st, nil
}
