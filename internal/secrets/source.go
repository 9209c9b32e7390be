package secrets

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
)

// ErrNotFound is returned by Source.Get when the source has no secret of
// that name (as opposed to failing to answer).
var ErrNotFound = errors.New("secret not found")

// Source reads credentials by name.
//
// Get returns ErrNotFound (wrapped) when the secret does not exist, and any
// other error when the source could not answer. Errors name the secret and
// the source, never a value.
type Source interface {
	Get(ctx context.Context, name string) (credential.Credential, error)
	// String describes the source for logs ("file source /run/secrets").
	String() string
}

// Store is implemented by sources that can keep generated secrets.
//
// Create stores a new secret and fails with ErrExists when another writer
// created it first; the caller then reads the winner's value, so two runs
// racing to generate agree on one credential.
type Store interface {
	Create(ctx context.Context, name string, c credential.Credential) error
}

// ErrExists is returned by Store.Create when the secret already exists.
var ErrExists = errors.New("secret already exists")

// Hinter is implemented by sources whose "not found" may have another
// cause: the hint is added to the error that lists missing secrets.
type Hinter interface {
	NotFoundHint() string
}

// Connector is implemented by sources that must reach a service before
// they can answer (OCI Vault builds its signer, which may fetch a token).
// The engine retries Connect until waitTimeout; an error waiting cannot fix
// is wrapped with reconcile.Permanent.
type Connector interface {
	Connect(ctx context.Context) error
}

// NewSource builds the file or env source. The ocivault source lives in
// package ocivault, which links the OCI SDK; the CLI builds it there.
func NewSource(cfg config.SourceConfig) (Source, error) {
	switch cfg.Type {
	case "file":
		return FileSource{Dir: cfg.File.Dir}, nil
	case "env":
		return EnvSource{Prefix: cfg.Env.Prefix}, nil
	}
	return nil, fmt.Errorf("secret source %q is not available in this build", cfg.Type)
}

// FileSource keeps one file per secret in Dir, named after it (the layout of
// Kubernetes and docker-compose secret mounts). A trailing newline is not
// part of the value.
type FileSource struct{ Dir string }

func (f FileSource) String() string { return "file source " + f.Dir }

// Get reads Dir/name.
func (f FileSource) Get(ctx context.Context, name string) (credential.Credential, error) {
	if err := ctx.Err(); err != nil {
		return credential.Credential{}, err
	}
	b, err := os.ReadFile(filepath.Join(f.Dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return credential.Credential{}, fmt.Errorf("secret %q in %s: %w", name, f, ErrNotFound)
	}
	if err != nil {
		return credential.Credential{}, fmt.Errorf("secret %q in %s: %w", name, f, err)
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if v == "" {
		return credential.Credential{}, fmt.Errorf("secret %q in %s: file is empty: %w", name, f, ErrNotFound)
	}
	return credential.New(v), nil
}

// Create writes Dir/name with mode 0600, atomically and only if absent: the
// value goes to a temporary file that is hard-linked into place, so a
// concurrent run either wins or sees ErrExists, never a torn file.
func (f FileSource) Create(ctx context.Context, name string, c credential.Credential) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return fmt.Errorf("store secret %q in %s: %w", name, f, err)
	}
	tmp, err := os.CreateTemp(f.Dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("store secret %q in %s: %w", name, f, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("store secret %q in %s: %w", name, f, err)
	}
	if _, err := tmp.WriteString(c.Reveal()); err != nil {
		tmp.Close()
		return fmt.Errorf("store secret %q in %s: %w", name, f, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("store secret %q in %s: %w", name, f, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("store secret %q in %s: %w", name, f, err)
	}
	if err := os.Link(tmp.Name(), filepath.Join(f.Dir, name)); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("store secret %q in %s: %w", name, f, ErrExists)
		}
		return fmt.Errorf("store secret %q in %s: %w", name, f, err)
	}
	return nil
}

// EnvSource reads PREFIX+NAME from the environment (see config.EnvName).
// It cannot store, so it cannot be used with generation.
type EnvSource struct{ Prefix string }

func (e EnvSource) String() string { return "env source " + e.Prefix + "*" }

// Get reads the variable; unset or empty is ErrNotFound.
func (e EnvSource) Get(ctx context.Context, name string) (credential.Credential, error) {
	if err := ctx.Err(); err != nil {
		return credential.Credential{}, err
	}
	key := config.EnvName(e.Prefix, name)
	v := os.Getenv(key)
	if v == "" {
		return credential.Credential{}, fmt.Errorf("secret %q: environment variable %s is not set: %w", name, key, ErrNotFound)
	}
	return credential.New(v), nil
}

// alphabet is safe unquoted in URLs, connection strings, YAML and shell.
const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// Generate returns a random credential of length characters from alphabet,
// drawn from crypto/rand without modulo bias.
func Generate(length int) (credential.Credential, error) {
	out := make([]byte, 0, length)
	buf := make([]byte, length*2)
	for len(out) < length {
		if _, err := rand.Read(buf); err != nil {
			return credential.Credential{}, fmt.Errorf("generate secret: %w", err)
		}
		for _, b := range buf {
			// 248 = 4*62: reject the tail so every character is equally likely.
			if b < 248 && len(out) < length {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return credential.New(string(out)), nil
}
