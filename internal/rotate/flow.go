package rotate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// Credential is one rotating credential with its two sides.
type Credential struct {
	Config config.Rotating
	Vault  Vault
	Server Server
	// Grace is the resolved grace period (config, or two serve intervals).
	Grace time.Duration
	// Force starts a rotation now whatever the credential's age
	// (`bootstrap rotate`).
	Force bool
}

// Generator returns a new password.
type Generator func() (credential.Credential, error)

// state is what the source says about one credential.
type state struct {
	current, previous credential.Login
	hasPrevious       bool
	pending           credential.Login
	hasPending        bool
	promoted          time.Time
}

// read reads c's state from the source, in one Snapshot where the source
// has it, and decodes it.
func (c *Credential) read(ctx context.Context, notFound func(error) bool) (state, error) {
	var s state
	v, err := c.snapshot(ctx, notFound)
	if err != nil {
		return s, err
	}
	declared := c.Config.Name
	s.current, s.promoted = credential.DecodeLogin(v.Current, declared), v.Promoted
	if s.hasPending = v.HasPending; s.hasPending {
		s.pending = credential.DecodeLogin(v.Pending, declared)
	}
	if s.hasPrevious = v.HasPrevious; s.hasPrevious {
		s.previous = credential.DecodeLogin(v.Previous, declared)
	}
	return s, nil
}

// snapshot is the source's Snapshot, or the same read value by value.
// notFound tells the source's "no such value" apart from a failure to
// answer.
func (c *Credential) snapshot(ctx context.Context, notFound func(error) bool) (Snapshot, error) {
	name := c.Config.Secret
	if sn, ok := c.Vault.(Snapshotter); ok {
		return sn.Snapshot(ctx, name)
	}
	var v Snapshot
	var err error
	if v.Current, err = c.Vault.Get(ctx, name); err != nil {
		return v, err
	}
	if v.Pending, err = c.Vault.Pending(ctx, name); err != nil && !notFound(err) {
		return v, err
	}
	v.HasPending = err == nil
	if v.Previous, err = c.Vault.Previous(ctx, name); err != nil && !notFound(err) {
		return v, err
	}
	v.HasPrevious = err == nil
	v.Promoted, err = c.Vault.Promoted(ctx, name)
	return v, err
}

// old is the login the last promotion replaced, when it is another
// identity's (or, on Redis, another password) and so is to be retired.
func (s state) old(kind string) (credential.Login, bool) {
	if !s.hasPrevious || s.hasPending {
		// While a value is staged the previous identity is the standby
		// being set: never retire it.
		return credential.Login{}, false
	}
	p, c := s.previous, s.current
	if kind == "redis" {
		// One user: the old password is the one to remove.
		return p, !p.Password.Equal(c.Password)
	}
	// Another identity's only: a previous value of the current identity
	// (changed by hand) is nothing to retire.
	return p, p.Username != c.Username
}

// Resolve puts the current login of each rotating credential into
// resolved: its password under the secret's name (what {secret: NAME} and
// kubernetesSecrets deliver) and its username under
// credential.UsernameKey. resolved holds the values as read from the
// source.
func Resolve(resolved credential.Resolved, rs []config.Rotating) {
	for _, r := range rs {
		v, ok := resolved[r.Secret]
		if !ok {
			continue
		}
		l := credential.DecodeLogin(v, r.Name)
		resolved[r.Secret] = l.Password
		resolved[credential.UsernameKey(r.Secret)] = credential.New(l.Username)
	}
}

// Run is the engine's target for the rotations of one run. Stage "start"
// runs before the services and the Kubernetes Secrets: it finishes a
// staged rotation or starts a due one, and updates resolved so that they
// deliver the new login. Stage "retire" runs after them and disables old
// identities.
type Run struct {
	Creds    []*Credential
	Stage    string // "start" or "retire"
	Resolved credential.Resolved
	Generate Generator
	NotFound func(error) bool
	// Delivered reports whether this run delivered the Kubernetes Secrets
	// (or had none to deliver): an old identity without sessions is
	// retired before its grace ends only then.
	Delivered func() bool
	// OnlyFinish plans only a staged rotation's end, never a due one's
	// start (verify: a half-done rotation is drift, an old credential not).
	OnlyFinish bool
	Now        func() time.Time
	Log        *slog.Logger

	mu      sync.Mutex
	results map[string]string  // secret -> "ok" | "failed", for metrics
	ages    map[string]float64 // secret -> seconds since its promotion
}

var _ reconcile.Target = (*Run)(nil)

// Name is the target's name; its resources are rotation/KIND/INSTANCE/NAME.
func (r *Run) Name() string { return "rotation" }

// Connect does nothing: each server connects when first used.
func (r *Run) Connect(ctx context.Context) error { return ctx.Err() }

// Close does nothing: the servers outlive a stage (see CloseAll).
func (r *Run) Close() error { return nil }

// CloseAll closes the servers of creds.
func CloseAll(creds []*Credential) error {
	var errs []error
	for _, c := range creds {
		errs = append(errs, c.Server.Close())
	}
	return errors.Join(errs...)
}

// Ages maps each credential to the seconds since its current value was
// promoted (or stored), as read by Plan.
func (r *Run) Ages() map[string]float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]float64, len(r.ages))
	for k, v := range r.ages {
		out[k] = v
	}
	return out
}

// Results maps each credential this run rotated (or failed to) to "ok" or
// "failed".
func (r *Run) Results() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.results))
	for k, v := range r.results {
		out[k] = v
	}
	return out
}

func (r *Run) result(secret string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.results == nil {
		r.results = map[string]string{}
	}
	if err != nil {
		r.results[secret] = "failed"
	} else {
		r.results[secret] = "ok"
	}
}

// Plan reads each credential's state and plans its next step.
func (r *Run) Plan(ctx context.Context) ([]reconcile.Change, error) {
	var out []reconcile.Change
	for _, c := range r.Creds {
		s, err := c.read(ctx, r.NotFound)
		if err != nil {
			return nil, fmt.Errorf("rotation of %s: %w", c.Config.Secret, err)
		}
		r.mu.Lock()
		if r.ages == nil {
			r.ages = map[string]float64{}
		}
		r.ages[c.Config.Secret] = r.Now().Sub(s.promoted).Seconds()
		r.mu.Unlock()
		var ch reconcile.Change
		if r.Stage == "retire" {
			ch, err = r.planRetire(ctx, c, s)
			ch.Resource = reconcile.Resource("rotation/"+c.Config.Target, c.Config.Name, "old")
		} else {
			ch, err = r.planStart(ctx, c, s)
			ch.Resource = reconcile.Resource("rotation/"+c.Config.Target, c.Config.Name)
		}
		if err != nil {
			return nil, err
		}
		ch.Group = c.Config.Secret
		out = append(out, ch)
	}
	return out, nil
}

// planStart: a staged value is finished (set, proven, promoted); otherwise
// a due rotation starts, once the one before it has retired its old
// identity.
func (r *Run) planStart(ctx context.Context, c *Credential, s state) (reconcile.Change, error) {
	if s.hasPending {
		p := s.pending
		return reconcile.Change{Action: reconcile.Update,
			Detail: fmt.Sprintf("finish the staged rotation: set the new password on %s, prove a login, promote it", p.Username),
			Apply: func(ctx context.Context) error {
				err := r.finish(ctx, c, p)
				r.result(c.Config.Secret, err)
				return err
			}}, nil
	}
	age := r.Now().Sub(s.promoted)
	due := !r.OnlyFinish && c.Force || !r.OnlyFinish && c.Config.Rotation.Every.Duration > 0 && age >= c.Config.Rotation.Every.Duration
	if !due {
		return reconcile.Change{Action: reconcile.Noop}, nil
	}
	old, hasOld := s.old(c.Config.Kind)
	if hasOld {
		active, err := c.Server.Active(ctx, old.Username, old.Password)
		if err != nil {
			return reconcile.Change{}, fmt.Errorf("rotation of %s: %w", c.Config.Secret, err)
		}
		if active {
			until := s.promoted.Add(c.Grace)
			if r.Now().Before(until) {
				return reconcile.Change{Action: reconcile.Noop,
					Detail: fmt.Sprintf("due, but %s keeps working until %s (grace of the last rotation)", old.Username, until.UTC().Format(time.RFC3339))}, nil
			}
		}
	}
	standby := c.Config.Standby(s.current.Username)
	return reconcile.Change{Action: reconcile.Update,
		Detail: fmt.Sprintf("rotate (age %s): stage a new password for %s, set it, prove a login, promote it", age.Round(time.Second), standby),
		Apply: func(ctx context.Context) error {
			err := r.start(ctx, c, s, standby)
			r.result(c.Config.Secret, err)
			return err
		}}, nil
}

// start retires what the last rotation left (its grace is over), then
// stages a new login for standby and finishes it.
func (r *Run) start(ctx context.Context, c *Credential, s state, standby string) error {
	if old, ok := s.old(c.Config.Kind); ok {
		if err := c.Server.Retire(ctx, old.Username, old.Password); err != nil {
			return fmt.Errorf("rotation of %s: retire %s: %w", c.Config.Secret, old.Username, err)
		}
	}
	pw, err := r.Generate()
	if err != nil {
		return err
	}
	next := credential.Login{Username: standby, Password: pw}
	if err := c.Vault.Stage(ctx, c.Config.Secret, next.Encode()); err != nil {
		return fmt.Errorf("rotation of %s: %w", c.Config.Secret, err)
	}
	r.Log.Info("rotation: new credential staged", "rotating", c.Config.Secret, "identity", standby)
	return r.finish(ctx, c, next)
}

// finish sets the staged login on its identity, proves it, promotes it in
// the source and makes it this run's credential.
func (r *Run) finish(ctx context.Context, c *Credential, next credential.Login) error {
	name := c.Config.Secret
	if err := c.Server.Set(ctx, next.Username, next.Password); err != nil {
		return fmt.Errorf("rotation of %s: set the new password on %s: %w", name, next.Username, err)
	}
	r.Log.Info("rotation: new password set", "rotating", name, "identity", next.Username)
	if err := c.Server.Prove(ctx, next.Username, next.Password); err != nil {
		return fmt.Errorf("rotation of %s: log in as %s with the new password: %w", name, next.Username, err)
	}
	r.Log.Info("rotation: new credential proven", "rotating", name, "identity", next.Username)
	if err := c.Vault.Promote(ctx, name); err != nil {
		return fmt.Errorf("rotation of %s: %w", name, err)
	}
	r.mu.Lock()
	r.Resolved[name] = next.Password
	r.Resolved[credential.UsernameKey(name)] = credential.New(next.Username)
	r.mu.Unlock()
	r.Log.Info("rotation: new credential promoted", "rotating", name, "identity", next.Username)
	return nil
}

// planRetire disables the old identity once its grace is over, or earlier
// when it has no live session and the Secrets were delivered. Redis
// cannot tell which of a user's passwords a session used, so it waits for
// the grace.
func (r *Run) planRetire(ctx context.Context, c *Credential, s state) (reconcile.Change, error) {
	old, ok := s.old(c.Config.Kind)
	if !ok {
		return reconcile.Change{Action: reconcile.Noop}, nil
	}
	active, err := c.Server.Active(ctx, old.Username, old.Password)
	if err != nil || !active {
		return reconcile.Change{Action: reconcile.Noop}, err
	}
	var sessions []string
	if c.Config.Kind != "redis" {
		if sessions, err = c.Server.Sessions(ctx, old.Username); err != nil {
			return reconcile.Change{}, fmt.Errorf("rotation of %s: sessions of %s: %w", c.Config.Secret, old.Username, err)
		}
	}
	until := s.promoted.Add(c.Grace)
	graceOver := !r.Now().Before(until)
	idle := c.Config.Kind != "redis" && len(sessions) == 0 && r.Delivered()
	if !graceOver && !idle {
		return reconcile.Change{Action: reconcile.Noop,
			Detail: fmt.Sprintf("%s keeps working until %s (%d live session(s))", old.Username, until.UTC().Format(time.RFC3339), len(sessions))}, nil
	}
	what := old.Username
	if c.Config.Kind == "redis" {
		what = "the previous password of " + old.Username
	}
	why := "no live session"
	if graceOver {
		why = "grace over"
		if len(sessions) > 0 {
			why += "; still connected: " + strings.Join(sessions, ", ")
		}
	}
	return reconcile.Change{Action: reconcile.Update,
		Detail: fmt.Sprintf("disable %s (%s)", what, why),
		Apply: func(ctx context.Context) error {
			if len(sessions) > 0 {
				r.Log.Warn("rotation: old identity disabled with live sessions; they go on, new logins with it fail",
					"rotating", c.Config.Secret, "identity", old.Username, "sessions", sessions)
			}
			if err := c.Server.Retire(ctx, old.Username, old.Password); err != nil {
				return fmt.Errorf("rotation of %s: retire %s: %w", c.Config.Secret, old.Username, err)
			}
			return nil
		}}, nil
}
