// Package rotate rotates application credentials with two identities and
// no failed connection: a new value is staged in the source, set on the
// identity nobody uses, proven with a login, promoted to current and
// delivered; the identity it replaces is disabled only after a grace
// period. Every step is read back from the source and the servers, so a
// run killed at any step is finished by the next (DESIGN.md "Rotation").
package rotate

import (
	"context"
	"time"

	"github.com/health-data-ai/bootstrap/internal/credential"
)

// Server is one service's side of a rotating credential: the declared
// PostgreSQL role, RabbitMQ user or Redis ACL user. The backends implement
// it; identities are the config's (NAME_a and NAME_b, or the Redis user).
type Server interface {
	// Set lets username log in with password, creating the identity if
	// needed (with the declared one's permissions). On Redis the password
	// is added beside the user's others. Idempotent.
	Set(ctx context.Context, username string, password credential.Credential) error
	// Prove opens a new session as username with password and closes it.
	Prove(ctx context.Context, username string, password credential.Credential) error
	// Sessions describes username's live sessions, one line each (client
	// address, application), for the report; nil when there are none.
	Sessions(ctx context.Context, username string) ([]string, error)
	// Active reports whether username still logs in with password (the
	// old identity not yet retired), without logging in.
	Active(ctx context.Context, username string, password credential.Credential) (bool, error)
	// Retire stops username logging in with password; its live sessions
	// go on. PostgreSQL: NOLOGIN, PASSWORD NULL; RabbitMQ: the password
	// removed; Redis: that password removed from the user. Idempotent.
	Retire(ctx context.Context, username string, password credential.Credential) error
	// Close releases the server's connections.
	Close() error
}

// Vault is the source's side: where a credential's next, current and
// previous values live, so that the rotation's state survives the process.
// The file source keeps NAME.next, NAME and NAME.previous; OCI Vault the
// PENDING, CURRENT and PREVIOUS version stages. Values are Login.Encode'd.
type Vault interface {
	Get(ctx context.Context, name string) (credential.Credential, error)
	Previous(ctx context.Context, name string) (credential.Credential, error)
	// Pending returns the staged value; an error wrapping the source's
	// not-found error when none is staged.
	Pending(ctx context.Context, name string) (credential.Credential, error)
	// Stage stores value as the pending one, replacing one staged before.
	Stage(ctx context.Context, name string, value credential.Credential) error
	// Promote makes the pending value current and the current one
	// previous, and records when; with nothing pending it does nothing.
	Promote(ctx context.Context, name string) error
	// Promoted returns when the current value became current (for a value
	// never promoted, when it was stored).
	Promoted(ctx context.Context, name string) (time.Time, error)
}

// Snapshot is one credential's state in the source, read at once.
type Snapshot struct {
	Current           credential.Credential
	Pending, Previous credential.Credential
	// HasPending and HasPrevious say whether those stages hold a value.
	HasPending, HasPrevious bool
	Promoted                time.Time
}

// Snapshotter is a Vault that reads a credential's whole state in fewer
// round trips than Get, Pending, Previous and Promoted one after another
// (OCI Vault reads the three stages at once and takes the promotion time
// from the CURRENT version it has just read). A run uses it when the
// source has it.
type Snapshotter interface {
	Snapshot(ctx context.Context, name string) (Snapshot, error)
}
