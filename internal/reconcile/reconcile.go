// Package reconcile is the engine: the Target interface every backend
// implements, the Change a plan is made of, the parallel runner behind plan,
// apply and verify, and the report. It knows nothing about any particular
// server; backends know nothing about each other.
package reconcile

import (
	"context"
	"errors"
)

// Action is what a change does to its resource.
type Action string

const (
	Create Action = "create"
	Update Action = "update"
	Delete Action = "delete"
	Noop   Action = "noop"
	// Check is a read-only probe (a Redis round trip, a login) that apply
	// and verify run and plan only lists.
	Check Action = "check"
)

// Status is where a change stands in the report.
type Status string

const (
	Planned Status = "planned"
	Applied Status = "applied"
	Failed  Status = "failed"
	Skipped Status = "skipped"
	OK      Status = "ok"
)

// Change is one step of a plan. Plans are data: plan prints them, apply runs
// their Apply funcs in order, verify requires every one to be Noop or a
// passing Check.
type Change struct {
	// Resource is KIND/INSTANCE/TYPE/NAME, e.g. postgres/health/role/healthapi.
	Resource string
	Action   Action
	// Detail says what differs, for people ("connectionLimit 10 -> 50").
	// It never holds a credential.
	Detail string
	// Drift, when set, is a difference apply will not fix (an immutable
	// property). The change is reported as failed with this text, which
	// names the property, both values and the remedy; the rest of the
	// target still applies and the run exits 1.
	Drift string
	// Group names the changes this one depends on. A failed write skips
	// the later changes of its own group and every later ungrouped change;
	// changes of other groups still apply. Empty means "depends on every
	// change before it" (the safe default: a database after its owner).
	// A backend groups what is independent: one bucket and its settings.
	Group string
	// Parallel, when set, says that this change and the changes next to
	// it with the same key are independent of each other (one database
	// each): apply runs them at once, up to Options.Concurrency, because
	// the server's work dominates (CREATE DATABASE). Each still depends on
	// the changes before the run, as Group says; results keep plan order.
	Parallel string
	// Apply performs the change; nil for Noop and Drift changes. For a
	// Check it runs the probe. It must be idempotent: a retried or
	// concurrent Apply of the same change succeeds.
	Apply func(ctx context.Context) error
}

// Target is one instance of a backend (postgres/health, redis/auth, ...).
//
// Connect is called first and retried with capped jittered backoff until it
// succeeds or defaults.waitTimeout passes; a Target returns an error wrapped
// with Permanent when waiting cannot help (bad credentials, bad TLS).
// Plan reads the current state and returns the ordered changes that bring it
// to the desired state, including Noop entries for resources already in
// sync; it never writes. Close releases connections; it is always called,
// even when Connect failed.
type Target interface {
	// Name is KIND/INSTANCE, e.g. postgres/health.
	Name() string
	Connect(ctx context.Context) error
	Plan(ctx context.Context) ([]Change, error)
	Close() error
}

// Verifier is implemented by targets with checks deeper than an empty plan
// (log in as every role, as every user). Verify returns Check changes whose
// Apply runs the probe; it never writes.
type Verifier interface {
	Verify(ctx context.Context) ([]Change, error)
}

// Locker is implemented by targets that serialise concurrent runs (a
// PostgreSQL advisory lock). The engine calls Lock after Connect and before
// Plan when it is going to apply, so the plan it applies is read under the
// lock; Close releases it. Lock blocks until the lock is free or ctx ends.
type Locker interface {
	Lock(ctx context.Context) error
}

// WaitDescriber lets a target say what the engine is waiting for
// ("PostgreSQL at 10.0.0.5:5432").
type WaitDescriber interface {
	WaitingFor() string
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks a Connect error that waiting will not fix.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Resource formats a resource name KIND/INSTANCE/TYPE/NAME...; parts are
// joined with '/'.
func Resource(target string, parts ...string) string {
	s := target
	for _, p := range parts {
		s += "/" + p
	}
	return s
}
