package config

import (
	"fmt"
	"strings"
)

// SecretRefs returns every secret name the selected targets use, mapped to
// the first config path that uses it. include decides per target
// ("postgres/health"); kubernetesSecrets counts when withKubernetes is set.
func (c *Config) SecretRefs(include func(target string) bool, withKubernetes bool) map[string]string {
	out := map[string]string{}
	add := func(path string, r *SecretRef) {
		if r == nil || r.Secret == "" {
			return
		}
		if _, ok := out[r.Secret]; !ok {
			out[r.Secret] = path
		}
	}
	for i, p := range c.Postgres {
		if !include("postgres/" + p.Name) {
			continue
		}
		add(fmt.Sprintf("postgres[%d].admin.password", i), &p.Admin.Password)
		for j, r := range p.Roles {
			add(fmt.Sprintf("postgres[%d].roles[%d].password", i, j), r.Password)
		}
	}
	for i, r := range c.Redis {
		if include("redis/" + r.Name) {
			add(fmt.Sprintf("redis[%d].password", i), r.Password)
			for j, u := range r.Users {
				add(fmt.Sprintf("redis[%d].users[%d].password", i, j), &u.Password)
			}
		}
	}
	for i, m := range c.MinIO {
		if include("minio/" + m.Name) {
			add(fmt.Sprintf("minio[%d].accessKey", i), &m.AccessKey)
			add(fmt.Sprintf("minio[%d].secretKey", i), &m.SecretKey)
		}
	}
	for i, r := range c.RabbitMQ {
		if !include("rabbitmq/" + r.Name) {
			continue
		}
		add(fmt.Sprintf("rabbitmq[%d].password", i), &r.Password)
		for j, u := range r.Users {
			add(fmt.Sprintf("rabbitmq[%d].users[%d].password", i, j), &u.Password)
		}
	}
	if withKubernetes {
		for i, ks := range c.Secrets.KubernetesSecrets {
			for key, name := range ks.Data {
				name = strings.TrimSuffix(name, UsernameSuffix)
				if _, ok := out[name]; !ok {
					out[name] = fmt.Sprintf("secrets.kubernetesSecrets[%d].data.%s", i, key)
				}
			}
		}
	}
	return out
}

// Target names (KIND/INSTANCE) are built here and nowhere else: they are
// what --only matches, the backends' Name, the first half of every resource
// name and the logs' target attribute.

// Target is the entry's target name, postgres/NAME.
func (p Postgres) Target() string { return "postgres/" + p.Name }

// Target is the entry's target name, redis/NAME.
func (r Redis) Target() string { return "redis/" + r.Name }

// Target is the entry's target name, minio/NAME.
func (m MinIO) Target() string { return "minio/" + m.Name }

// Target is the entry's target name, rabbitmq/NAME.
func (r RabbitMQ) Target() string { return "rabbitmq/" + r.Name }

// Targets lists every target name in config order: postgres, redis, minio,
// rabbitmq.
func (c *Config) Targets() []string {
	var out []string
	for _, p := range c.Postgres {
		out = append(out, p.Target())
	}
	for _, r := range c.Redis {
		out = append(out, r.Target())
	}
	for _, m := range c.MinIO {
		out = append(out, m.Target())
	}
	for _, r := range c.RabbitMQ {
		out = append(out, r.Target())
	}
	return out
}

// AdminSecrets maps each secret a selected target logs in with as its
// administrator (the PostgreSQL superuser, the Redis password, the
// RabbitMQ admin, the MinIO root keys) to that target. Their previous
// values matter: a data service keeps its first admin credential, so a
// rotated one must be set on the server before it is delivered.
func (c *Config) AdminSecrets(include func(target string) bool) map[string]string {
	out := map[string]string{}
	add := func(target string, refs ...*SecretRef) {
		if !include(target) {
			return
		}
		for _, r := range refs {
			if r != nil && r.Secret != "" {
				out[r.Secret] = target
			}
		}
	}
	for _, p := range c.Postgres {
		add(p.Target(), &p.Admin.Password)
	}
	for _, r := range c.Redis {
		add(r.Target(), r.Password)
	}
	for _, m := range c.MinIO {
		add(m.Target(), &m.AccessKey, &m.SecretKey)
	}
	for _, r := range c.RabbitMQ {
		add(r.Target(), &r.Password)
	}
	return out
}
