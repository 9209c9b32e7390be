package ocivault

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/health-data-ai/bootstrap/internal/secrets"
)

// TestPreviousVersion: after a new version became CURRENT, Previous reads
// the PREVIOUS stage (the admin credential a server may still take); a
// secret with one version has none, which is ErrNotFound, not a failure.
func TestPreviousVersion(t *testing.T) {
	s, f, logs := newTest(t, 5*time.Second)
	ctx := context.Background()
	f.Put("pg-admin", "first-Value-0001")
	if _, err := s.Previous(ctx, "pg-admin"); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("one version: %v, want ErrNotFound", err)
	}
	f.Rotate("pg-admin", "second-Value-0002")
	prev, err := s.Previous(ctx, "pg-admin")
	if err != nil || prev.Reveal() != "first-Value-0001" {
		t.Fatalf("previous = %v, want the first value", err)
	}
	cur, err := s.Get(ctx, "pg-admin")
	if err != nil || cur.Reveal() != "second-Value-0002" {
		t.Fatalf("current = %v, want the second value", err)
	}
	assertNoLeak(t, "first-Value-0001", logs.String())
}
