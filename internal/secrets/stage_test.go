package secrets

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/health-data-ai/bootstrap/internal/credential"
)

// TestFileSourceStaging: a staged value is invisible to Get until
// promoted; promoting keeps the old value as NAME.previous, stamps the
// time, and is a no-op with nothing staged (a run killed after promoting
// runs it again).
func TestFileSourceStaging(t *testing.T) {
	ctx := context.Background()
	f := FileSource{Dir: t.TempDir()}
	if err := os.WriteFile(filepath.Join(f.Dir, "s"), []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	_ = os.Chtimes(filepath.Join(f.Dir, "s"), old, old)
	if _, err := f.Pending(ctx, "s"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("pending before staging: %v, want not found", err)
	}
	for _, v := range []string{"draft", "two"} { // a second Stage replaces the first
		if err := f.Stage(ctx, "s", credential.New(v)); err != nil {
			t.Fatal(err)
		}
	}
	read := func(get func(context.Context, string) (credential.Credential, error), want string) {
		t.Helper()
		v, err := get(ctx, "s")
		if err != nil || v.Reveal() != want {
			t.Fatalf("read %v, %v; want %q", v.Reveal(), err, want)
		}
	}
	read(f.Get, "one")
	read(f.Pending, "two")
	if at, _ := f.Promoted(ctx, "s"); at.After(old.Add(time.Second)) {
		t.Fatalf("promoted at %v before any promotion, want the file's time %v", at, old)
	}
	for range 2 {
		if err := f.Promote(ctx, "s"); err != nil {
			t.Fatal(err)
		}
		read(f.Get, "two")
		read(f.Previous, "one")
	}
	if _, err := f.Pending(ctx, "s"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("pending after promotion: %v, want not found", err)
	}
	if at, _ := f.Promoted(ctx, "s"); time.Since(at) > time.Minute {
		t.Fatalf("promoted at %v, want now", at)
	}
	st, err := os.Stat(filepath.Join(f.Dir, "s"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("promoted file mode %v, %v; want 0600", st.Mode(), err)
	}
}
