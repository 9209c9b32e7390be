package secrets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/health-data-ai/bootstrap/internal/credential"
)

// PreviousSource is implemented by sources that keep the value a secret
// had before its current one (the file source's NAME.previous, OCI Vault's
// PREVIOUS version). Previous returns ErrNotFound when there is none.
type PreviousSource interface {
	Previous(ctx context.Context, name string) (credential.Credential, error)
}

// Previous reads Dir/NAME.previous, which whoever rotates NAME leaves
// behind (mv NAME NAME.previous, then write the new NAME).
func (f FileSource) Previous(ctx context.Context, name string) (credential.Credential, error) {
	if err := ctx.Err(); err != nil {
		return credential.Credential{}, err
	}
	b, err := os.ReadFile(filepath.Join(f.Dir, name+".previous"))
	if errors.Is(err, os.ErrNotExist) {
		return credential.Credential{}, fmt.Errorf("previous value of secret %q in %s: %w", name, f, ErrNotFound)
	}
	if err != nil {
		return credential.Credential{}, fmt.Errorf("previous value of secret %q in %s: %w", name, f, err)
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if v == "" {
		return credential.Credential{}, fmt.Errorf("previous value of secret %q in %s: file is empty: %w", name, f, ErrNotFound)
	}
	return credential.New(v), nil
}

// AddPrevious puts the previous value of each named secret that has one
// into resolved (under credential.PreviousKey), for the backends' admin
// rotation. It returns the names that have one; a source that keeps none
// adds nothing.
func AddPrevious(ctx context.Context, src Source, resolved credential.Resolved, names []string) ([]string, error) {
	ps, ok := src.(PreviousSource)
	if !ok {
		return nil, nil
	}
	var with []string
	for _, n := range names {
		v, err := ps.Previous(ctx, n)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		resolved[credential.PreviousKey(n)] = v
		if _, differs := resolved.Previous(n); differs {
			with = append(with, n)
		}
	}
	return with, nil
}
