package secrets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

func TestGenerate(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range []int{16, 32, 64, 256} {
		c, err := Generate(n)
		if err != nil {
			t.Fatal(err)
		}
		v := c.Reveal()
		if len(v) != n || strings.Trim(v, alphabet) != "" || seen[v] {
			t.Fatalf("Generate(%d) = %d characters, outside the alphabet or repeated", n, len(v))
		}
		seen[v] = true
	}
}

func TestFileSourceCreateOnceAndPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	f := FileSource{Dir: dir}
	ctx := context.Background()
	if _, err := f.Get(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	// Racing creators: exactly one wins, the others see ErrExists.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := f.Create(ctx, "a", credential.New(fmt.Sprintf("value-%d", i)))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, ErrExists):
				t.Errorf("create: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d winners", wins)
	}
	st, err := os.Stat(filepath.Join(dir, "a"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
	if c, err := f.Get(ctx, "a"); err != nil || !strings.HasPrefix(c.Reveal(), "value-") {
		t.Fatalf("get: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("temporary files left: %d entries", len(entries))
	}
}

func TestEnvSource(t *testing.T) {
	t.Setenv("BTEST_PG_HEALTH_ADMIN", "from-env")
	e := EnvSource{Prefix: "BTEST_"}
	if c, err := e.Get(context.Background(), "pg-health.admin"); err != nil || c.Reveal() != "from-env" {
		t.Fatalf("%v", err)
	}
	if _, err := e.Get(context.Background(), "other"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "BTEST_OTHER") {
		t.Fatalf("%v", err)
	}
}

// TestCredentialsRaceAgreesOnOneValue: two runs generating the same
// missing secret into one store end with the same value.
func TestCredentialsRaceAgreesOnOneValue(t *testing.T) {
	f := FileSource{Dir: t.TempDir()}
	names := map[string]string{"s": "x.password"}
	var runs [2]*Credentials
	var wg sync.WaitGroup
	for i := range runs {
		runs[i] = NewCredentials(f, names, true, 32)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, r := range reconcile.Run(context.Background(), []reconcile.Target{runs[i]}, reconcile.Options{Mode: reconcile.ModeApply}) {
				if r.Status == reconcile.Failed {
					t.Errorf("%s: %s", r.Resource, r.Error)
				}
			}
		}()
	}
	wg.Wait()
	a, b := runs[0].Resolved()["s"], runs[1].Resolved()["s"]
	stored, _ := f.Get(context.Background(), "s")
	if !a.Equal(b) || !a.Equal(stored) {
		t.Fatal("the two runs disagree on the generated secret")
	}
}

// confirming is a file source that can tell "not found" from "not
// allowed" only by asking: it records each ConfirmMissing call.
type confirming struct {
	FileSource
	calls [][]string
	err   error
}

func (c *confirming) ConfirmMissing(_ context.Context, names []string) error {
	c.calls = append(c.calls, names)
	return c.err
}

// TestMissingSecretConfirmedOnceBeforeGenerating: a source that may answer "not
// found" for "not allowed" is asked once per plan, with every missing
// name, before anything is generated; when it cannot confirm, the plan
// fails and nothing is generated or stored. Without generation it is not
// asked: the missing secrets are an error either way.
func TestMissingSecretConfirmedOnceBeforeGenerating(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "b"), []byte("value-of-b"), 0o600); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{"a": "x.a", "b": "x.b", "c": "x.c"}

	refusing := &confirming{FileSource: FileSource{Dir: dir}, err: errors.New("vault: cannot list")}
	creds := NewCredentials(refusing, names, true, 32)
	if _, err := creds.Plan(context.Background()); err == nil || !strings.Contains(err.Error(), "cannot list") {
		t.Fatalf("plan: %v, want the source's error", err)
	}
	if fmt.Sprint(refusing.calls) != "[[a c]]" {
		t.Fatalf("ConfirmMissing calls %v, want one with a and c", refusing.calls)
	}
	if r := creds.Resolved(); len(r) != 1 || r["b"].Reveal() != "value-of-b" {
		t.Fatalf("%d credentials resolved, want only b", len(r))
	}

	ok := &confirming{FileSource: FileSource{Dir: dir}}
	changes, err := NewCredentials(ok, names, true, 32).Plan(context.Background())
	if err != nil || len(changes) != 3 || len(ok.calls) != 1 {
		t.Fatalf("plan: %v, %d changes, %d confirmations", err, len(changes), len(ok.calls))
	}

	off := &confirming{FileSource: FileSource{Dir: dir}}
	if _, err := NewCredentials(off, names, false, 32).Plan(context.Background()); err == nil || len(off.calls) != 0 {
		t.Fatalf("without generation: %v, %d confirmations", err, len(off.calls))
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("%d files in the store, want only b", len(entries))
	}
}
