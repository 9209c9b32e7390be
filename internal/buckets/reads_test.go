package buckets

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// The Plan right after Connect reads Connect's ListBuckets instead of
// asking again, and asks MinIO for one bucket's location, not each one's
// (MinIO's is its own region, whatever the bucket); a later Plan (serve's
// next cycle) asks the server again. Counted at a proxy in front of the
// real MinIO.
func TestPlanReadsOnce(t *testing.T) {
	e := newEnv(t)
	up, err := url.Parse("http://" + e.srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var lists, locations atomic.Int32
	rp := httputil.NewSingleHostReverseProxy(up)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/":
			lists.Add(1)
		case r.Method == http.MethodGet && r.URL.Query().Has("location"):
			locations.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()

	var names []string
	var declared []config.Bucket
	for i := range 3 {
		names = append(names, testenv.Unique("list")+string(rune('a'+i)))
		declared = append(declared, config.Bucket{Name: names[i]})
	}
	e.removeBuckets(t, names...)
	for _, n := range names[:2] {
		if err := e.admin.MakeBucket(context.Background(), n, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := e.config(declared...)
	cfg.Endpoint = strings.TrimPrefix(proxy.URL, "http://")
	tgt := New(cfg, e.creds(), nil)
	defer tgt.Close()
	ctx := context.Background()
	if err := tgt.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tgt.Plan(ctx); err != nil {
		t.Fatal(err)
	}
	if n := lists.Load(); n != 1 {
		t.Fatalf("Connect then Plan sent %d ListBuckets, want 1", n)
	}
	if n := locations.Load(); n != 1 {
		t.Fatalf("a Plan of 2 existing buckets on MinIO sent %d GetBucketLocation, want 1", n)
	}
	if _, err := tgt.Plan(ctx); err != nil {
		t.Fatal(err)
	}
	if n := lists.Load(); n != 2 {
		t.Fatalf("a second Plan sent %d ListBuckets in all, want 2 (it must read the server again)", n)
	}
}
