package buckets

import (
	"context"
	"strings"
	"testing"

	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// TestRootRotationIsReportedWithTheRemedy: the source holds a new root
// password and keeps the previous one, which the running MinIO still
// takes. MinIO cannot change its root while running, so the target fails,
// permanently, saying so and what to do, rather than "wrong password".
func TestRootRotationIsReportedWithTheRemedy(t *testing.T) {
	e := newEnv(t)
	creds := e.creds()
	creds["minio-root-password"] = credential.New("a-new-root-password-0001")
	creds[credential.PreviousKey("minio-root-password")] = credential.New(e.srv.SecretKey)
	tgt := New(e.config(), creds, nil)
	defer tgt.Close()
	err := tgt.Connect(context.Background())
	if err == nil || !reconcile.IsPermanent(err) || !strings.Contains(err.Error(), "takes only the previous root credential") || !strings.Contains(err.Error(), "restart MinIO") {
		t.Fatalf("got %v, want a permanent failure naming the remedy", err)
	}
	if strings.Contains(err.Error(), e.srv.SecretKey) {
		t.Error("the error holds the secret key")
	}
}
