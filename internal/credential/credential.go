// Package credential is the leaf every package that handles a secret value
// shares: the Credential type that never prints its value, and Resolved, the
// credentials of one run by secret name. It imports nothing of the project,
// so the backends can use it without importing each other.
package credential

import (
	"encoding/json"
	"fmt"
	"log/slog"
)

// Redacted is what a Credential prints wherever it is formatted, logged or
// marshalled.
const Redacted = "REDACTED"

// Credential holds a secret value. Every way of printing it (fmt verbs,
// slog, JSON, text marshalling) yields "REDACTED"; only Reveal returns the
// value, so each use of the plaintext is greppable.
type Credential struct {
	v string
}

// New wraps a secret value.
func New(v string) Credential { return Credential{v: v} }

// Reveal returns the secret value. Call it only at the point of use
// (hashing, authenticating); never log or wrap the result in an error.
func (c Credential) Reveal() string { return c.v }

// IsZero reports whether the credential is empty.
func (c Credential) IsZero() bool { return c.v == "" }

// Equal compares two credentials without revealing them.
func (c Credential) Equal(o Credential) bool { return c.v == o.v }

func (c Credential) String() string   { return Redacted }
func (c Credential) GoString() string { return Redacted }

// Format covers every fmt verb, including %#v and %x, which would otherwise
// bypass String.
func (c Credential) Format(f fmt.State, _ rune) {
	_, _ = f.Write([]byte(Redacted))
}

func (c Credential) LogValue() slog.Value { return slog.StringValue(Redacted) }

func (c Credential) MarshalJSON() ([]byte, error) { return json.Marshal(Redacted) }

func (c Credential) MarshalText() ([]byte, error) { return []byte(Redacted), nil }
