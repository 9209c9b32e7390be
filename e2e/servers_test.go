package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// What the hooks made, read back from the servers with their own clients.

func s3Client(t *testing.T) *minio.Client {
	t.Helper()
	s := testenv.MinIO(t)
	cl, err := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func (p platform) checkBucket(t *testing.T, bucket string) {
	t.Helper()
	ok, err := s3Client(t).BucketExists(context.Background(), bucket)
	if err != nil {
		t.Fatalf("bucket %s: %v", bucket, err)
	}
	if !ok {
		t.Errorf("bucket %s does not exist", bucket)
	}
}

func (p platform) cleanupBuckets(t *testing.T) {
	cl := s3Client(t)
	ctx := context.Background()
	for _, b := range []string{p.bucket, p.bucket2} {
		for o := range cl.ListObjects(ctx, b, minio.ListObjectsOptions{WithVersions: true, Recursive: true}) {
			_ = cl.RemoveObject(ctx, b, o.Key, minio.RemoveObjectOptions{VersionID: o.VersionID})
		}
		_ = cl.RemoveBucket(ctx, b)
	}
}

// management sends one request to the RabbitMQ management API as its admin.
func management(t *testing.T, method, path string) int {
	t.Helper()
	mq := testenv.RabbitMQ(t)
	req, err := http.NewRequest(method, fmt.Sprintf("http://%s:%d/api/%s", mq.Host, mq.ManagementPort, path), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(mq.User, mq.Password)
	cl := http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (p platform) checkQueue(t *testing.T) {
	t.Helper()
	code := management(t, http.MethodGet, "queues/"+url.PathEscape(p.vhost)+"/"+url.PathEscape(p.queue))
	if code != http.StatusOK {
		t.Errorf("queue %s/%s: management API answers %d", p.vhost, p.queue, code)
	}
}

func (p platform) cleanupBroker(t *testing.T) {
	management(t, http.MethodDelete, "vhosts/"+url.PathEscape(p.vhost))
	management(t, http.MethodDelete, "users/"+url.PathEscape(p.user))
}
