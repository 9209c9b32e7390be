package config

import (
	"fmt"
	"sort"
	"strings"
)

// UsernameSuffix, after a secret name in kubernetesSecrets data, delivers
// the username that currently holds that rotating credential instead of
// its password: `username: pg-health-healthapi/username`. A rotating
// credential's login changes with each rotation (NAME_a, NAME_b), so an
// application reads both from the Secret.
const UsernameSuffix = "/username"

// Rotating is one application credential with a rotation block.
type Rotating struct {
	// Target is the service's target name (postgres/health).
	Target string
	// Kind is postgres, rabbitmq or redis.
	Kind string
	// Name is the declared role or user; Secret the source secret holding
	// its credential.
	Name, Secret string
	// Path is the config path of the declaration (postgres[0].roles[1]).
	Path     string
	Rotation Rotation
}

// Identities are the two logins that take turns: NAME_a and NAME_b, or
// for Redis, whose user keeps several passwords, NAME twice.
func (r Rotating) Identities() [2]string {
	if r.Kind == "redis" {
		return [2]string{r.Name, r.Name}
	}
	return [2]string{r.Name + "_a", r.Name + "_b"}
}

// Standby is the identity a new credential is set on while current keeps
// working: the other of the two, or the first when current is the declared
// name itself (a credential from before rotation was configured).
func (r Rotating) Standby(current string) string {
	ids := r.Identities()
	if current == ids[0] {
		return ids[1]
	}
	return ids[0]
}

// Rotating lists the selected targets' rotating credentials, sorted by
// secret name.
func (c *Config) Rotating(include func(target string) bool) []Rotating {
	var out []Rotating
	add := func(target, kind, name, secret, path string, r *Rotation) {
		if r != nil && include(target) && secret != "" {
			out = append(out, Rotating{Target: target, Kind: kind, Name: name, Secret: secret, Path: path, Rotation: *r})
		}
	}
	for i, p := range c.Postgres {
		for j, r := range p.Roles {
			if r.Password != nil {
				add(p.Target(), "postgres", r.Name, r.Password.Secret, fmt.Sprintf("postgres[%d].roles[%d]", i, j), r.Rotation)
			}
		}
	}
	for i, rd := range c.Redis {
		for j, u := range rd.Users {
			add(rd.Target(), "redis", u.Name, u.Password.Secret, fmt.Sprintf("redis[%d].users[%d]", i, j), u.Rotation)
		}
	}
	for i, rb := range c.RabbitMQ {
		for j, u := range rb.Users {
			add(rb.Target(), "rabbitmq", u.Name, u.Password.Secret, fmt.Sprintf("rabbitmq[%d].users[%d]", i, j), u.Rotation)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Secret < out[j].Secret })
	return out
}

// rotation checks a rotation block at path.
func (v *validator) rotation(path string, r *Rotation) {
	if r == nil {
		return
	}
	if r.Every.Raw != "" && r.Every.Duration <= 0 {
		v.add(path+".every", "want a positive duration such as 720h, got %q", r.Every.Raw)
	}
	if r.Grace.Raw != "" && r.Grace.Duration <= 0 {
		v.add(path+".grace", "want a positive duration such as 10m, got %q", r.Grace.Raw)
	}
	if r.Every.Duration > 0 && r.Grace.Duration >= r.Every.Duration {
		v.add(path+".grace", "must be shorter than every (%s), got %s: the old identity would still be in use when the next rotation needs it", r.Every.Raw, r.Grace.Raw)
	}
}

// rotations checks what rotating credentials need across sections: one
// secret per rotating credential, and no identity name that is declared
// itself.
func (v *validator) rotations() {
	bySecret := map[string]string{}
	for _, r := range v.c.Rotating(func(string) bool { return true }) {
		if v.c.Secrets.Source.Type == "env" && len(bySecret) == 0 {
			v.add(r.Path+".rotation", "the env source cannot keep a rotating credential's staged and previous values; use the file or ocivault source")
		}
		if first, ok := bySecret[r.Secret]; ok {
			v.add(r.Path+".password", "secret %q rotates with %s already: a rotating credential needs a secret of its own", r.Secret, first)
			continue
		}
		bySecret[r.Secret] = r.Path
		if r.Kind == "rabbitmq" {
			v.rmqIdentityClash(r)
		}
	}
	v.rotatingUsernames(bySecret)
}

// rotatingUsernames checks the NAME/username data values of the Kubernetes
// Secrets: NAME must be a rotating credential.
func (v *validator) rotatingUsernames(bySecret map[string]string) {
	for i, ks := range v.c.Secrets.KubernetesSecrets {
		for key, val := range ks.Data {
			name, ok := strings.CutSuffix(val, UsernameSuffix)
			if !ok {
				continue
			}
			if _, rotates := bySecret[name]; !rotates {
				v.add(join(fmt.Sprintf("secrets.kubernetesSecrets[%d].data", i), key),
					"%q: only a rotating credential (one with rotation:) has a username to deliver; %q has none", val, name)
			}
		}
	}
}

// rmqIdentityClash: a rotating user's two users must not be declared
// users of their own (PostgreSQL's check is in pgRole).
func (v *validator) rmqIdentityClash(r Rotating) {
	for _, rb := range v.c.RabbitMQ {
		if rb.Target() != r.Target {
			continue
		}
		for _, u := range rb.Users {
			if id := r.Identities(); u.Name == id[0] || u.Name == id[1] {
				v.add(r.Path+".rotation", "its user %q is declared as a user of its own", u.Name)
			}
		}
	}
}
