package config

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// This file holds what every section's checks share: the name rules, the
// validator that collects problems, and the checks for fields that recur
// across servers. Each section has its own validate_*.go.

// Name rules, per server. They are deliberately stricter than the servers
// so that a name is always safe in a statement, a URL path and a log line:
// no quotes, no ';', no whitespace, no control characters.
//
//	instance          ^[a-z0-9]([a-z0-9-]*[a-z0-9])?$, ≤ 63
//	PostgreSQL        ^[A-Za-z_][A-Za-z0-9_$-]*$, ≤ 63 bytes; roles not pg_*
//	S3 bucket         ^[a-z0-9][a-z0-9.-]*[a-z0-9]$, 3-63, no "..", not an IP
//	RabbitMQ objects  ^[A-Za-z0-9_.:/@-]+$, ≤ 255; exchanges/queues not amq.*
//	secret (source)   ^[A-Za-z0-9][A-Za-z0-9._-]*$, ≤ 255
//	Kubernetes Secret DNS-1123 subdomain, ≤ 253; data keys ^[-._A-Za-z0-9]+$
var (
	instanceRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	pgNameRe   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$-]*$`)
	bucketRe   = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*[a-z0-9]$`)
	rmqNameRe  = regexp.MustCompile(`^[A-Za-z0-9_.:/@-]+$`)
	secretRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	k8sNameRe  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	k8sKeyRe   = regexp.MustCompile(`^[-._A-Za-z0-9]+$`)
	envNameRe  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Validate checks a defaulted config and returns every problem found.
//
// The sections are checked in a fixed order because problems are sorted
// stably by path: where one path gets several problems, the order of the
// checks is the order of the lines. secretNames runs last because it checks
// the names every section referenced.
func Validate(c *Config) Problems {
	v := &validator{c: c, refs: map[string]string{}}
	v.top()
	v.secrets()
	v.postgres()
	v.redis()
	v.minio()
	v.rabbitmq()
	v.rotations()
	v.secretNames()
	return v.ps.sorted()
}

// validator collects problems instead of stopping at the first, so one run
// shows the user everything to fix.
type validator struct {
	c  *Config
	ps Problems
	// refs maps every referenced secret name to the first path using it.
	refs map[string]string
}

func (v *validator) add(path, format string, args ...any) { v.ps.add(path, format, args...) }

func (v *validator) top() {
	if v.c.Version != 1 {
		v.add("version", "must be 1, got %d", v.c.Version)
	}
	d := v.c.Defaults
	if d.WaitTimeout.Duration <= 0 {
		v.add("defaults.waitTimeout", "want a positive duration such as 90s or 5m, got %q", d.WaitTimeout.Raw)
	}
	if d.Concurrency < 1 || d.Concurrency > 64 {
		v.add("defaults.concurrency", "must be between 1 and 64, got %d", d.Concurrency)
	}
	v.timeouts("defaults.timeouts", d.Timeouts)
	for i, p := range v.c.Postgres {
		v.timeouts(fmt.Sprintf("postgres[%d].timeouts", i), p.Timeouts)
	}
	for i, r := range v.c.Redis {
		v.timeouts(fmt.Sprintf("redis[%d].timeouts", i), r.Timeouts)
	}
	for i, m := range v.c.MinIO {
		v.timeouts(fmt.Sprintf("minio[%d].timeouts", i), m.Timeouts)
	}
	for i, r := range v.c.RabbitMQ {
		v.timeouts(fmt.Sprintf("rabbitmq[%d].timeouts", i), r.Timeouts)
	}
}

// timeouts: every bound is a positive duration (zero would mean "none").
func (v *validator) timeouts(path string, t Timeouts) {
	for _, f := range []struct {
		name string
		d    Duration
	}{{"connect", t.Connect}, {"request", t.Request}, {"statement", t.Statement}, {"lock", t.Lock}} {
		if f.d.Duration <= 0 {
			v.add(path+"."+f.name, "want a positive duration such as 10s or 5m, got %q", f.d.Raw)
		}
	}
}

func (v *validator) enum(path, got string, allowed ...string) bool {
	if slices.Contains(allowed, got) {
		return true
	}
	v.add(path, "must be one of %s, got %q", strings.Join(allowed, ", "), got)
	return false
}

func (v *validator) required(path, got string) bool {
	if strings.TrimSpace(got) == "" {
		v.add(path, "is required")
		return false
	}
	return true
}

func (v *validator) name(path, got string, re *regexp.Regexp, max int, rule string) bool {
	if !v.required(path, got) {
		return false
	}
	if len(got) > max || !re.MatchString(got) {
		v.add(path, "invalid name %q: %s", got, rule)
		return false
	}
	return true
}

func (v *validator) port(path string, p int) {
	if p < 1 || p > 65535 {
		v.add(path, "must be a port between 1 and 65535, got %d", p)
	}
}

func (v *validator) hostPort(path, addr string) {
	if !v.required(path, addr) {
		return
	}
	if strings.Contains(addr, "://") {
		v.add(path, "want host:port without a scheme, got %q", addr)
		return
	}
	h, p, err := net.SplitHostPort(addr)
	if err != nil || h == "" {
		v.add(path, "want host:port, got %q", addr)
		return
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		v.add(path, "port must be between 1 and 65535, got %q", p)
	}
}

func (v *validator) host(path, h string) {
	if !v.required(path, h) {
		return
	}
	if strings.ContainsAny(h, " /:;'\"") && net.ParseIP(h) == nil {
		v.add(path, "want a host name or IP address, got %q", h)
	}
}

// ref checks a credential reference: required, never inline.
func (v *validator) ref(path string, r SecretRef, required bool) {
	switch {
	case r.Inline:
		v.add(path, "credentials are never written inline: use {secret: NAME} and put the value in the secret source")
	case r.Secret == "":
		if required {
			v.add(path, "is required: {secret: NAME}")
		}
	default:
		if _, ok := v.refs[r.Secret]; !ok {
			v.refs[r.Secret] = path
		}
	}
}

// seen maps each name in one scope to the path that declared it first, so
// a duplicate can point the user at the original.
type seen map[string]string

// dup reports key when s already holds it, else records it at path.
func (v *validator) dup(s seen, key, path, what string) {
	if first, ok := s[key]; ok {
		v.add(path, "duplicate %s %q (first at %s)", what, key, first)
		return
	}
	s[key] = path
}

// instance checks an instance name, unique per kind because KIND/NAME is
// the target's name in selections, logs and reports, and returns the
// instance's path.
func (v *validator) instance(kind string, i int, name string, s seen) string {
	p := fmt.Sprintf("%s[%d]", kind, i)
	if v.name(p+".name", name, instanceRe, 63, "lower case letters, digits and '-'") {
		v.dup(s, name, p+".name", kind+" instance")
	}
	return p
}
