package ocivault

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/secrets"
	"github.com/health-data-ai/bootstrap/internal/secrets/ocivault/ocitest"
)

// TestRotationStages walks a rotation through OCI's version stages: the
// staged value is a PENDING version while CURRENT stays, a second Stage
// replaces it, Promote makes it CURRENT and the old one PREVIOUS, records
// the time in the secret's metadata (keeping other keys), and a second
// Promote does nothing. The stand-in keeps the secret UPDATING for a while
// after each update, so the 409s and the waits are exercised too.
func TestRotationStages(t *testing.T) {
	s, f, logs := newTest(t, 10*time.Second)
	ctx := context.Background()
	f.Put("app-login", "first-Value-0001")
	f.SetMetadata("app-login", map[string]any{"owner": "team-health"})
	f.Do(func(f2 *ocitest.Server) { f2.UpdatingPolls = 2 })

	if _, err := s.Pending(ctx, "app-login"); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("nothing staged: %v, want ErrNotFound", err)
	}
	created, err := s.Promoted(ctx, "app-login")
	if err != nil || time.Since(created) > time.Minute {
		t.Fatalf("never promoted: %v, %v; want the version's creation time", created, err)
	}
	for _, v := range []string{"second-Value-0002", "third-Value-0003"} {
		if err := s.Stage(ctx, "app-login", credential.New(v)); err != nil {
			t.Fatal(err)
		}
		if p, err := s.Pending(ctx, "app-login"); err != nil || p.Reveal() != v {
			t.Fatalf("pending after staging: %v", err)
		}
		if c, err := s.Get(ctx, "app-login"); err != nil || c.Reveal() != "first-Value-0001" {
			t.Fatalf("staging changed CURRENT: %v", err)
		}
	}
	want := [][]string{{"CURRENT"}, {"DEPRECATED"}, {"LATEST", "PENDING"}}
	if got := f.Stages("app-login"); !equalStages(got, want) {
		t.Fatalf("stages after two stagings %v, want %v", got, want)
	}

	before := time.Now()
	if err := s.Promote(ctx, "app-login"); err != nil {
		t.Fatal(err)
	}
	want = [][]string{{"PREVIOUS"}, {"DEPRECATED"}, {"CURRENT", "LATEST"}}
	if got := f.Stages("app-login"); !equalStages(got, want) {
		t.Fatalf("stages after promotion %v, want %v", got, want)
	}
	if c, err := s.Get(ctx, "app-login"); err != nil || c.Reveal() != "third-Value-0003" {
		t.Fatalf("current after promotion: %v", err)
	}
	if p, err := s.Previous(ctx, "app-login"); err != nil || p.Reveal() != "first-Value-0001" {
		t.Fatalf("previous after promotion: %v", err)
	}
	if _, err := s.Pending(ctx, "app-login"); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("pending after promotion: %v, want ErrNotFound", err)
	}
	at, err := s.Promoted(ctx, "app-login")
	if err != nil || at.Before(before) || at.After(time.Now()) {
		t.Fatalf("promoted at %v (%v), want between %v and now", at, err, before)
	}
	if md := f.Metadata("app-login"); md["owner"] != "team-health" {
		t.Fatalf("metadata %v lost the key it had", md)
	}

	updates := f.Updates
	if err := s.Promote(ctx, "app-login"); err != nil {
		t.Fatal(err)
	}
	if f.Updates != updates {
		t.Fatalf("a second Promote updated the secret %d more times", f.Updates-updates)
	}
	assertNoLeak(t, "Value-000", logs.String())
}

// TestPromotedIgnoresAnotherVersionsTime: a run killed between recording
// the promotion time and promoting leaves metadata naming the pending
// version. Until that version is CURRENT the time is not the current
// one's; the next Promote writes it again and promotes.
func TestPromotedIgnoresAnotherVersionsTime(t *testing.T) {
	s, f, _ := newTest(t, 10*time.Second)
	ctx := context.Background()
	f.Put("app-login", "first-Value-0001")
	created, err := s.Promoted(ctx, "app-login")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Stage(ctx, "app-login", credential.New("second-Value-0002")); err != nil {
		t.Fatal(err)
	}
	stale := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	f.SetMetadata("app-login", map[string]any{metaPromotedVersion: "2", metaPromotedAt: stale})
	if at, err := s.Promoted(ctx, "app-login"); err != nil || !at.Equal(created) {
		t.Fatalf("promoted %v (%v), want version 1's creation %v", at, err, created)
	}
	before := time.Now()
	if err := s.Promote(ctx, "app-login"); err != nil {
		t.Fatal(err)
	}
	if at, err := s.Promoted(ctx, "app-login"); err != nil || at.Before(before) {
		t.Fatalf("promoted %v (%v), want after %v", at, err, before)
	}
}

// TestStageLosesToAnotherWriter: another writer staging between our read
// of the secret and our update makes OCI refuse ours (412, If-Match);
// the run fails saying so, instead of going on with a value the vault
// does not hold as PENDING.
func TestStageLosesToAnotherWriter(t *testing.T) {
	s, f, _ := newTest(t, 5*time.Second)
	ctx := context.Background()
	f.Put("app-login", "first-Value-0001")
	f.Do(func(f2 *ocitest.Server) { f2.OtherStager["app-login"] = "their-Value-0009" })
	err := s.Stage(ctx, "app-login", credential.New("our-Value-0002"))
	if err == nil || !strings.Contains(err.Error(), "another bootstrap") || !strings.Contains(err.Error(), `"app-login"`) {
		t.Fatalf("err = %v, want one naming the secret and the other writer", err)
	}
	if p, err := s.Pending(ctx, "app-login"); err != nil || p.Reveal() != "their-Value-0009" {
		t.Fatalf("pending: %v, want the other writer's", err)
	}
}

// TestStageSurvivesLostAnswer: OCI applied our update but its answer was
// lost; the SDK's retry, carrying the same If-Match, gets 412 while the
// version is still CREATING. Stage waits for the secret to settle and
// finds its own value PENDING, instead of blaming another writer.
func TestStageSurvivesLostAnswer(t *testing.T) {
	s, f, _ := newTest(t, 10*time.Second)
	ctx := context.Background()
	f.Put("app-login", "first-Value-0001")
	f.Do(func(f2 *ocitest.Server) { f2.LoseUpdateAnswers, f2.UnreadableReads = 1, 3 })
	if err := s.Stage(ctx, "app-login", credential.New("second-Value-0002")); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Pending(ctx, "app-login"); err != nil || p.Reveal() != "second-Value-0002" {
		t.Fatalf("pending: %v, want the staged value", err)
	}
	if want := [][]string{{"CURRENT"}, {"LATEST", "PENDING"}}; !equalStages(f.Stages("app-login"), want) {
		t.Fatalf("stages %v, want %v (one version staged, not two)", f.Stages("app-login"), want)
	}
	if f.Updates < 2 {
		t.Fatalf("%d updates: the lost answer was not retried", f.Updates)
	}
}

// TestSnapshot: one Snapshot says what Get, Pending, Previous and
// Promoted say one by one, in at most three reads once a promotion is
// recorded (the stages at once, no second read of CURRENT), and a
// never-promoted secret's time is its version's creation.
func TestSnapshot(t *testing.T) {
	s, f, _ := newTest(t, 10*time.Second)
	ctx := context.Background()
	f.Put("app-login", "first-Value-0001")
	snap, err := s.Snapshot(ctx, "app-login")
	created, perr := s.Promoted(ctx, "app-login")
	if err != nil || perr != nil || snap.Current.Reveal() != "first-Value-0001" || snap.HasPending || snap.HasPrevious || !snap.Promoted.Equal(created) {
		t.Fatalf("fresh secret: %+v, %v; want current only, promoted %v (%v)", snap, err, created, perr)
	}
	for _, step := range []func() error{
		func() error { return s.Stage(ctx, "app-login", credential.New("second-Value-0002")) },
		func() error { return s.Promote(ctx, "app-login") },
		func() error { return s.Stage(ctx, "app-login", credential.New("third-Value-0003")) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
		var reads int
		f.Do(func(f2 *ocitest.Server) { reads = f2.Reads })
		snap, err := s.Snapshot(ctx, "app-login")
		if err != nil {
			t.Fatal(err)
		}
		f.Do(func(f2 *ocitest.Server) { reads = f2.Reads - reads })
		cur, _ := s.Get(ctx, "app-login")
		pend, perr := s.Pending(ctx, "app-login")
		prev, qerr := s.Previous(ctx, "app-login")
		at, _ := s.Promoted(ctx, "app-login")
		if !snap.Current.Equal(cur) || snap.HasPending != (perr == nil) || snap.HasPending && !snap.Pending.Equal(pend) ||
			snap.HasPrevious != (qerr == nil) || snap.HasPrevious && !snap.Previous.Equal(prev) || !snap.Promoted.Equal(at) {
			t.Fatalf("snapshot %+v differs from the reads one by one", snap)
		}
		if f.Metadata("app-login")[metaPromotedVersion] != nil && reads > 3 {
			t.Errorf("snapshot took %d reads, want 3", reads)
		}
	}
}

func equalStages(a, b [][]string) bool {
	return slices.EqualFunc(a, b, func(x, y []string) bool { return slices.Equal(x, y) })
}
