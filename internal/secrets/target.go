package secrets

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// Credentials is the reconcile target of the secrets phase: it reads every
// referenced secret from the source and, when allowed, generates and stores
// the missing ones (resources vault/NAME). After a run, Resolved holds the
// credentials the service targets use.
type Credentials struct {
	src Source
	// names maps each secret name to the config path that first uses it.
	names    map[string]string
	generate bool
	length   int
	// logins maps each rotating credential to the username its first
	// value belongs to: generated, it is stored as a credential.Login.
	logins map[string]string

	mu       sync.Mutex
	resolved credential.Resolved
}

var _ reconcile.Target = (*Credentials)(nil)

// NewCredentials reads names (secret -> config path) from src. With
// generate, a missing secret is generated with length characters and
// stored (src must be a Store); without, it is an error naming the path.
func NewCredentials(src Source, names map[string]string, generate bool, length int) *Credentials {
	return &Credentials{src: src, names: names, generate: generate, length: length, resolved: credential.Resolved{}}
}

// GenerateLogins makes a generated value of each named secret a
// credential.Login of that username (secret -> username): a rotating
// credential's value holds the login it belongs to.
func (c *Credentials) GenerateLogins(logins map[string]string) { c.logins = logins }

// Name is the target name in logs; its resources are vault/NAME.
func (c *Credentials) Name() string { return "vault" }

// WaitingFor says what is being waited for.
func (c *Credentials) WaitingFor() string { return c.src.String() }

// Connect lets a source that talks to a service (a Connector) get ready;
// the file and env sources have nothing to connect to.
func (c *Credentials) Connect(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if cn, ok := c.src.(Connector); ok {
		return cn.Connect(ctx)
	}
	return nil
}

// Close releases nothing.
func (c *Credentials) Close() error { return nil }

// Resolved returns the credentials read or generated so far.
func (c *Credentials) Resolved() credential.Resolved {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(credential.Resolved, len(c.resolved))
	for k, v := range c.resolved {
		out[k] = v
	}
	return out
}

// MissingConfirmer is implemented by sources whose "not found" may also
// mean "not allowed" (OCI Vault answers both with one 404). Before anything
// is generated, ConfirmMissing is called once per plan with every name Get
// reported missing; it returns nil only when the source confirms that none
// of them exists, and otherwise an error naming what it found or why it
// cannot tell. The plan then fails and nothing is generated.
type MissingConfirmer interface {
	ConfirmMissing(ctx context.Context, names []string) error
}

// Plan reads every secret (up to 8 at once). A missing secret is a create
// change when generation is on; its value is generated now, so that the
// service plans of the same run can be computed, but stored only by Apply.
// A source that may answer "not found" for "not allowed" confirms first.
func (c *Credentials) Plan(ctx context.Context) ([]reconcile.Change, error) {
	names := make([]string, 0, len(c.names))
	for n := range c.names {
		names = append(names, n)
	}
	sort.Strings(names)
	errs := c.readAll(ctx, names)
	var absent, failed []string
	for i, n := range names {
		switch {
		case errs[i] == nil:
		case errors.Is(errs[i], ErrNotFound):
			absent = append(absent, n)
		default:
			failed = append(failed, errs[i].Error())
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(failed) > 0 {
		return nil, errors.New(strings.Join(failed, "; "))
	}
	if len(absent) > 0 && !c.generate {
		missing := make([]string, len(absent))
		for i, n := range absent {
			missing[i] = fmt.Sprintf("%s (used at %s)", n, c.names[n])
		}
		hint := ""
		if h, ok := c.src.(Hinter); ok {
			hint = "; " + h.NotFoundHint()
		}
		return nil, fmt.Errorf("%s has no secret %s; create them or set secrets.generate.enabled: true%s", c.src, strings.Join(missing, ", "), hint)
	}
	if mc, ok := c.src.(MissingConfirmer); ok && len(absent) > 0 {
		if err := mc.ConfirmMissing(ctx, absent); err != nil {
			return nil, err
		}
	}
	changes := make([]reconcile.Change, 0, len(names))
	for i, n := range names {
		r := "vault/" + n
		if errs[i] == nil {
			changes = append(changes, reconcile.Change{Resource: r, Action: reconcile.Noop})
			continue
		}
		gen, err := Generate(c.length)
		if err != nil {
			return nil, err
		}
		if u, ok := c.logins[n]; ok {
			gen = credential.Login{Username: u, Password: gen}.Encode()
		}
		c.set(n, gen)
		changes = append(changes, reconcile.Change{
			Resource: r, Action: reconcile.Create,
			Detail: fmt.Sprintf("generate %d characters and store in %s", c.length, c.src),
			Apply:  c.store(n, gen),
		})
	}
	return changes, nil
}

// readAll reads names from the source, up to 8 at once, keeps what it
// reads, and returns each read's error.
func (c *Credentials) readAll(ctx context.Context, names []string) []error {
	errs := make([]error, len(names))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			v, err := c.src.Get(ctx, n)
			if errs[i] = err; err == nil {
				c.set(n, v)
			}
		}()
	}
	wg.Wait()
	return errs
}

func (c *Credentials) set(name string, v credential.Credential) {
	c.mu.Lock()
	c.resolved[name] = v
	c.mu.Unlock()
}

func (c *Credentials) store(name string, v credential.Credential) func(context.Context) error {
	return func(ctx context.Context) error {
		st, ok := c.src.(Store)
		if !ok {
			return fmt.Errorf("%s cannot store generated secret %q", c.src, name)
		}
		err := st.Create(ctx, name, v)
		if errors.Is(err, ErrExists) {
			// Another run generated it first: use the stored value, so
			// both runs set the same password on the services. A store
			// whose new secrets are not readable at once (OCI Vault)
			// returns ErrExists only once this read can succeed.
			won, gerr := c.src.Get(ctx, name)
			if gerr != nil {
				return gerr
			}
			c.set(name, won)
			return nil
		}
		return err
	}
}
