package ocivault

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// Off OCI, instance principal auth fails at once with a hint, instead of
// the SDK's two minutes of retries; on OCI (the metadata service answers
// with the v2 header) the probe passes.
func TestInstancePrincipalProbe(t *testing.T) {
	var sawHeader bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawHeader = r.Header.Get("Authorization") == "Bearer Oracle"
		if strings.HasSuffix(r.URL.Path, "/ok") {
			_, _ = w.Write([]byte("eu-frankfurt-1"))
			return
		}
		http.Error(w, "denied", http.StatusForbidden)
	}))
	defer srv.Close()
	old := instanceMetadata
	t.Cleanup(func() { instanceMetadata = old })

	instanceMetadata = srv.URL + "/ok"
	if err := probeInstanceMetadata(context.Background()); err != nil || !sawHeader {
		t.Fatalf("probe on OCI: %v (v2 header sent: %v)", err, sawHeader)
	}

	instanceMetadata = srv.URL + "/denied"
	src := New(config.OCIVaultSource{VaultID: "ocid1.vault.oc1..x", Auth: "instance_principal"}, time.Minute, nil)
	start := time.Now()
	err := src.Connect(context.Background())
	if err == nil || !reconcile.IsPermanent(err) {
		t.Fatalf("want a permanent error, got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	for _, want := range []string{"ocid1.vault.oc1..x", "instance_principal", "hint:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}
