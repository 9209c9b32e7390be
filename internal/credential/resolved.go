package credential

import "fmt"

// Resolved holds the credentials of one run by secret name. Backends look up
// their {secret: NAME} references here; they never read a source directly.
type Resolved map[string]Credential

// Get returns the named credential, or an error naming the secret (never its
// value) when the run did not resolve it.
func (r Resolved) Get(name string) (Credential, error) {
	c, ok := r[name]
	if !ok || c.IsZero() {
		return Credential{}, fmt.Errorf("secret %q is not available", name)
	}
	return c, nil
}
