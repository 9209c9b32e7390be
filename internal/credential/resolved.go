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

// PreviousKey is the key under which a run keeps the previous value of a
// secret (the file source's NAME.previous, OCI Vault's PREVIOUS version):
// '#' is never part of a secret name, so it cannot clash with one.
func PreviousKey(name string) string { return name + "#previous" }

// Previous returns the previous value of the named secret when the source
// keeps one and it differs from the current value: the credential a server
// may still hold after the source was rotated.
func (r Resolved) Previous(name string) (Credential, bool) {
	p, ok := r[PreviousKey(name)]
	if !ok || p.IsZero() || p.Reveal() == r[name].Reveal() {
		return Credential{}, false
	}
	return p, true
}
