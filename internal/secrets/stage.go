package secrets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/health-data-ai/bootstrap/internal/credential"
)

// The file source's side of a rotation: NAME.next holds the staged value
// until Promote moves NAME to NAME.previous and NAME.next to NAME. Each
// step is one rename, so a run killed between two leaves a state the next
// run's Promote finishes: NAME.previous equal to NAME with NAME.next still
// there promotes again to the same result.

func (f FileSource) path(name, suffix string) string { return filepath.Join(f.Dir, name+suffix) }

// Pending reads Dir/NAME.next.
func (f FileSource) Pending(ctx context.Context, name string) (credential.Credential, error) {
	if err := ctx.Err(); err != nil {
		return credential.Credential{}, err
	}
	b, err := os.ReadFile(f.path(name, ".next"))
	if errors.Is(err, os.ErrNotExist) || err == nil && len(b) == 0 {
		return credential.Credential{}, fmt.Errorf("staged value of secret %q in %s: %w", name, f, ErrNotFound)
	}
	if err != nil {
		return credential.Credential{}, fmt.Errorf("staged value of secret %q in %s: %w", name, f, err)
	}
	return credential.New(string(b)), nil
}

// Stage writes Dir/NAME.next (0600) through a temporary file renamed into
// place, replacing a value staged before.
func (f FileSource) Stage(ctx context.Context, name string, value credential.Credential) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fail := func(err error) error { return fmt.Errorf("stage secret %q in %s: %w", name, f, err) }
	tmp, err := os.CreateTemp(f.Dir, "."+name+".next-*")
	if err != nil {
		return fail(err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(value.Reveal())
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.path(name, ".next"))
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

// Promote makes NAME.next current, keeping the current value as
// NAME.previous, and stamps NAME's modification time (Promoted).
func (f FileSource) Promote(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fail := func(err error) error { return fmt.Errorf("promote secret %q in %s: %w", name, f, err) }
	next, cur := f.path(name, ".next"), f.path(name, "")
	if _, err := os.Stat(next); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	// NAME.previous gets NAME's file by a hard link renamed over it, so
	// there is never a moment without a previous value.
	link := f.path("."+name, ".previous-tmp")
	_ = os.Remove(link)
	if err := os.Link(cur, link); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail(err)
	} else if err == nil {
		if err := os.Rename(link, f.path(name, ".previous")); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(next, cur); err != nil {
		return fail(err)
	}
	now := time.Now()
	if err := os.Chtimes(cur, now, now); err != nil {
		return fail(err)
	}
	return nil
}

// Promoted is NAME's modification time: when Promote (or whoever wrote
// it) made its value current.
func (f FileSource) Promoted(ctx context.Context, name string) (time.Time, error) {
	st, err := os.Stat(f.path(name, ""))
	if err != nil {
		return time.Time{}, fmt.Errorf("secret %q in %s: %w", name, f, err)
	}
	return st.ModTime(), nil
}
