package buckets

import (
	"context"
	"fmt"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// takesPrevious reports whether the server accepts the previous values of
// the keys after refusing the current ones. MinIO reads its root
// credential from the environment at start and cannot change it while
// running, so unlike the other servers bootstrap cannot rotate it: it can
// only say so, with the remedy.
func (t *Target) takesPrevious(ctx context.Context) bool {
	ak, akOK := t.creds.Previous(t.cfg.AccessKey.Secret)
	sk, skOK := t.creds.Previous(t.cfg.SecretKey.Secret)
	if !akOK && !skOK {
		return false
	}
	if !akOK {
		ak, _ = t.creds.Get(t.cfg.AccessKey.Secret)
	}
	if !skOK {
		sk, _ = t.creds.Get(t.cfg.SecretKey.Secret)
	}
	c, err := minio.New(t.endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(ak.Reveal(), sk.Reveal(), ""), Secure: t.secure,
		Transport: t.transport, Region: t.region(), BucketLookup: minio.BucketLookupAuto, MaxRetries: 1,
	})
	if err != nil {
		return false
	}
	_, err = c.ListBuckets(ctx)
	return err == nil
}

// rootNotRotated is the failure when the server takes only the previous
// root credential.
func (t *Target) rootNotRotated() error {
	return fmt.Errorf("%s: %s takes only the previous root credential (secrets %q, %q): MinIO cannot change its root user on a running server; "+
		"restart MinIO with the new MINIO_ROOT_USER/MINIO_ROOT_PASSWORD (the chart's pods read them from the Secret bootstrap delivers once this target succeeds; "+
		"update that Secret by hand and restart), or put the previous value back in the source", t.name, t.endpoint, t.cfg.AccessKey.Secret, t.cfg.SecretKey.Secret)
}
