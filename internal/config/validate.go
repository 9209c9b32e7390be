package config

import (
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
)

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

// Privileges accepted per grant target (upper case; ALL expands per type).
var privileges = map[string][]string{
	"database":  {"ALL", "CONNECT", "CREATE", "TEMPORARY", "TEMP"},
	"schema":    {"ALL", "USAGE", "CREATE"},
	"tables":    {"ALL", "SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"},
	"sequences": {"ALL", "USAGE", "SELECT", "UPDATE"},
}

// Validate checks a defaulted config and returns every problem found.
func Validate(c *Config) Problems {
	v := &validator{c: c, refs: map[string]string{}}
	v.top()
	v.secrets()
	v.postgres()
	v.redis()
	v.minio()
	v.rabbitmq()
	v.secretNames()
	return v.ps.sorted()
}

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
}

func (v *validator) enum(path, got string, allowed ...string) bool {
	for _, a := range allowed {
		if got == a {
			return true
		}
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

// dup reports a name seen before in the same scope.
type seen map[string]string

func (v *validator) dup(s seen, key, path, what string) {
	if first, ok := s[key]; ok {
		v.add(path, "duplicate %s %q (first at %s)", what, key, first)
		return
	}
	s[key] = path
}

func (v *validator) instance(kind string, i int, name string, s seen) string {
	p := fmt.Sprintf("%s[%d]", kind, i)
	if v.name(p+".name", name, instanceRe, 63, "lower case letters, digits and '-'") {
		v.dup(s, name, p+".name", kind+" instance")
	}
	return p
}

func (v *validator) secrets() {
	s := v.c.Secrets
	src := s.Source
	if v.enum("secrets.source.type", src.Type, "ocivault", "file", "env") {
		switch src.Type {
		case "ocivault":
			o := src.OCIVault
			p := "secrets.source.ocivault."
			if v.required(p+"vaultId", o.VaultID) && !strings.HasPrefix(o.VaultID, "ocid1.vault.") {
				v.add(p+"vaultId", "want a vault OCID (ocid1.vault...), got %q", o.VaultID)
			}
			if o.Endpoint == "" {
				v.required(p+"region", o.Region)
			}
			v.enum(p+"auth", o.Auth, "instance_principal", "workload_identity", "resource_principal", "api_key")
			if o.Auth != "api_key" && (o.ConfigFile != "" || o.Profile != "") {
				v.add(p+"configFile", "is used only with auth: api_key")
			}
			if s.Generate.Enabled {
				if v.required(p+"compartmentId", o.CompartmentID) && !strings.HasPrefix(o.CompartmentID, "ocid1.") {
					v.add(p+"compartmentId", "want a compartment or tenancy OCID, got %q", o.CompartmentID)
				}
				if v.required(p+"keyId", o.KeyID) && !strings.HasPrefix(o.KeyID, "ocid1.key.") {
					v.add(p+"keyId", "want a key OCID (ocid1.key...), got %q", o.KeyID)
				}
			}
			if o.Endpoint != "" && !strings.HasPrefix(o.Endpoint, "http://") && !strings.HasPrefix(o.Endpoint, "https://") {
				v.add(p+"endpoint", "want an http:// or https:// URL, got %q", o.Endpoint)
			}
		case "file":
			v.required("secrets.source.file.dir", src.File.Dir)
		case "env":
			if src.Env.Prefix != "" && !envNameRe.MatchString(src.Env.Prefix) {
				v.add("secrets.source.env.prefix", "want letters, digits and '_', got %q", src.Env.Prefix)
			}
			if s.Generate.Enabled {
				v.add("secrets.generate.enabled", "the env source cannot store generated secrets: use the file or ocivault source, or set enabled: false")
			}
		}
	}
	if s.Generate.Length < 16 || s.Generate.Length > 256 {
		v.add("secrets.generate.length", "must be between 16 and 256, got %d", s.Generate.Length)
	}
	o := s.Output
	v.enum("secrets.output.type", o.Type, "sealed", "plain", "none")
	v.enum("secrets.output.target", o.Target, "cluster", "dir")
	v.enum("secrets.output.sealing.scope", o.Sealing.Scope, "strict", "namespace-wide", "cluster-wide")
	if o.Type != "none" {
		if o.Target == "dir" {
			v.required("secrets.output.dir", o.Dir)
		}
		if o.Sealing.Scope != "cluster-wide" || o.Type == "plain" || o.Target == "cluster" {
			v.name("secrets.output.namespace", o.Namespace, instanceRe, 63, "a Kubernetes namespace: lower case letters, digits and '-'")
		}
		if o.Type == "plain" && o.Target == "dir" {
			v.add("secrets.output.target", "output.type plain writes unsealed Secrets to a cluster only, never to files: use output.type sealed with target dir")
		}
		if len(s.KubernetesSecrets) == 0 {
			v.add("secrets.kubernetesSecrets", "output.type is %q but no Kubernetes Secrets are declared", o.Type)
		}
	}
	names := seen{}
	for i, ks := range s.KubernetesSecrets {
		p := fmt.Sprintf("secrets.kubernetesSecrets[%d]", i)
		if v.name(p+".name", ks.Name, k8sNameRe, 253, "a Kubernetes name: lower case letters, digits, '-' and '.'") {
			v.dup(names, ks.Name, p+".name", "Kubernetes Secret")
		}
		if len(ks.Data) == 0 {
			v.add(p+".data", "is required: key -> secret name")
		}
		for key, secret := range ks.Data {
			kp := join(p+".data", key)
			if len(key) > 253 || !k8sKeyRe.MatchString(key) {
				v.add(kp, "invalid key %q: letters, digits, '-', '_' and '.'", key)
			}
			if v.required(kp, secret) {
				if _, ok := v.refs[secret]; !ok {
					v.refs[secret] = kp
				}
			}
		}
	}
}

// secretNames checks every referenced secret name against the source's
// rules, once per name, at the first place it is used.
func (v *validator) secretNames() {
	src := v.c.Secrets.Source
	for name, path := range v.refs {
		if len(name) > 255 || !secretRe.MatchString(name) {
			v.add(path, "invalid secret name %q: letters, digits, '.', '_' and '-'", name)
			continue
		}
		if src.Type == "env" {
			env := EnvName(src.Env.Prefix, name)
			if !envNameRe.MatchString(env) {
				v.add(path, "secret %q maps to %q, not a valid environment variable name", name, env)
			}
		}
	}
}

// EnvName is the environment variable the env source reads for a secret:
// the prefix plus the name in upper case with '-' and '.' as '_'.
func EnvName(prefix, secret string) string {
	return prefix + strings.NewReplacer("-", "_", ".", "_").Replace(strings.ToUpper(secret))
}

func (v *validator) postgres() {
	instances := seen{}
	for i, pg := range v.c.Postgres {
		p := v.instance("postgres", i, pg.Name, instances)
		v.host(p+".host", pg.Host)
		v.port(p+".port", pg.Port)
		v.enum(p+".sslmode", pg.SSLMode, "disable", "prefer", "require", "verify-full")
		v.pgName(p+".admin.user", pg.Admin.User)
		v.pgName(p+".admin.database", pg.Admin.Database)
		v.ref(p+".admin.password", pg.Admin.Password, true)

		roles := map[string]bool{pg.Admin.User: true}
		rs := seen{}
		for j, r := range pg.Roles {
			rp := fmt.Sprintf("%s.roles[%d]", p, j)
			if !v.pgName(rp+".name", r.Name) {
				continue
			}
			switch {
			case strings.HasPrefix(r.Name, "pg_"):
				v.add(rp+".name", "role names starting with pg_ are reserved by PostgreSQL")
			case r.Name == pg.Admin.User:
				v.add(rp+".name", "%q is the admin user, which bootstrap connects as and does not manage", r.Name)
			default:
				v.dup(rs, r.Name, rp+".name", "role")
			}
			roles[r.Name] = true
		}
		for j, r := range pg.Roles {
			rp := fmt.Sprintf("%s.roles[%d]", p, j)
			if r.Password != nil {
				v.ref(rp+".password", *r.Password, false)
			}
			if r.CanLogin() && (r.Password == nil || r.Password.Secret == "" && !r.Password.Inline) {
				v.add(rp+".password", "is required for a login role: {secret: NAME} (or set login: false)")
			}
			if r.ConnLimit() < -1 {
				v.add(rp+".connectionLimit", "must be -1 (unlimited) or more, got %d", r.ConnLimit())
			}
			for k, in := range r.InRoles {
				ip := fmt.Sprintf("%s.inRoles[%d]", rp, k)
				switch {
				case in == r.Name:
					v.add(ip, "a role cannot be a member of itself")
				case strings.HasPrefix(in, "pg_") && pgNameRe.MatchString(in):
					// predefined roles (pg_read_all_data, ...) exist on every server
				case !roles[in]:
					v.add(ip, "role %q is not declared in %s.roles", in, p)
				}
			}
		}
		owner := func(path, o string) {
			if o != "" && !roles[o] {
				v.add(path, "role %q is not declared in %s.roles or as admin", o, p)
			}
		}
		dbs := map[string]PGDatabase{}
		ds := seen{}
		for j, db := range pg.Databases {
			dp := fmt.Sprintf("%s.databases[%d]", p, j)
			if v.pgName(dp+".name", db.Name) {
				if db.Name == "template0" || db.Name == "template1" {
					v.add(dp+".name", "%q is a template database and cannot be managed", db.Name)
				}
				v.dup(ds, db.Name, dp+".name", "database")
				dbs[db.Name] = db
			}
			owner(dp+".owner", db.Owner)
			es := seen{}
			for k, e := range db.Extensions {
				ep := fmt.Sprintf("%s.extensions[%d]", dp, k)
				if v.pgName(ep, e) {
					v.dup(es, e, ep, "extension")
				}
			}
			ss := seen{}
			for k, s := range db.Schemas {
				sp := fmt.Sprintf("%s.schemas[%d]", dp, k)
				if v.pgName(sp+".name", s.Name) {
					if strings.HasPrefix(s.Name, "pg_") {
						v.add(sp+".name", "schema names starting with pg_ are reserved by PostgreSQL")
					}
					v.dup(ss, s.Name, sp+".name", "schema")
				}
				owner(sp+".owner", s.Owner)
			}
		}
		gs := seen{}
		for j, g := range pg.Grants {
			gp := fmt.Sprintf("%s.grants[%d]", p, j)
			if v.required(gp+".role", g.Role) && !roles[g.Role] && !strings.EqualFold(g.Role, "public") {
				v.add(gp+".role", "role %q is not declared in %s.roles", g.Role, p)
			}
			db, dbOK := dbs[g.Database]
			if v.required(gp+".database", g.Database) && !dbOK {
				v.add(gp+".database", "database %q is not declared in %s.databases", g.Database, p)
			}
			if !v.enum(gp+".on", g.On, "database", "schema", "tables", "sequences") {
				continue
			}
			if g.On == "database" {
				if g.Schema != "" {
					v.add(gp+".schema", "is not used with on: database")
				}
			} else if v.required(gp+".schema", g.Schema) && dbOK && g.Schema != "public" {
				found := false
				for _, s := range db.Schemas {
					found = found || s.Name == g.Schema
				}
				if !found {
					v.add(gp+".schema", "schema %q is not declared in database %q", g.Schema, g.Database)
				}
			}
			if len(g.Privileges) == 0 {
				v.add(gp+".privileges", "is required, e.g. [%s]", privileges[g.On][1])
			}
			for k, pr := range g.Privileges {
				if !contains(privileges[g.On], strings.ToUpper(pr)) {
					v.add(fmt.Sprintf("%s.privileges[%d]", gp, k), "%q is not a privilege on %s (want %s)", pr, g.On, strings.Join(privileges[g.On], ", "))
				}
			}
			v.dup(gs, strings.Join([]string{g.Role, g.Database, g.Schema, g.On}, "/"), gp, "grant for role/database/schema/on")
		}
	}
}

func (v *validator) pgName(path, name string) bool {
	return v.name(path, name, pgNameRe, 63, "letters, digits, '_', '$' and '-', not starting with a digit, at most 63 bytes")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (v *validator) redis() {
	instances := seen{}
	for i, r := range v.c.Redis {
		p := v.instance("redis", i, r.Name, instances)
		v.hostPort(p+".address", r.Address)
		if r.Password != nil {
			v.ref(p+".password", *r.Password, false)
		}
		if r.DB < 0 || r.DB > 15 {
			v.add(p+".db", "must be between 0 and 15, got %d", r.DB)
		}
		if r.Expect.Role != "" {
			v.enum(p+".expect.role", r.Expect.Role, "master", "replica", "slave")
		}
		if mp := r.Expect.MaxmemoryPolicy; mp != "" {
			v.enum(p+".expect.maxmemoryPolicy", mp, "noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random",
				"volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl")
		}
	}
}

func (v *validator) minio() {
	instances := seen{}
	for i, m := range v.c.MinIO {
		p := v.instance("minio", i, m.Name, instances)
		v.hostPort(p+".endpoint", m.Endpoint)
		v.ref(p+".accessKey", m.AccessKey, true)
		v.ref(p+".secretKey", m.SecretKey, true)
		bs := seen{}
		for j, b := range m.Buckets {
			bp := fmt.Sprintf("%s.buckets[%d]", p, j)
			if v.name(bp+".name", b.Name, bucketRe, 63, "S3 rules: 3-63 lower case letters, digits, '.' and '-'") {
				switch {
				case len(b.Name) < 3:
					v.add(bp+".name", "invalid name %q: S3 bucket names have at least 3 characters", b.Name)
				case strings.Contains(b.Name, ".."):
					v.add(bp+".name", "invalid name %q: no two adjacent periods", b.Name)
				case net.ParseIP(b.Name) != nil:
					v.add(bp+".name", "invalid name %q: must not look like an IP address", b.Name)
				}
				v.dup(bs, b.Name, bp+".name", "bucket")
			}
			if b.ObjectLock && b.Versioning != nil && !*b.Versioning {
				v.add(bp+".versioning", "object lock requires versioning; remove versioning: false")
			}
			ls := seen{}
			for k, l := range b.Lifecycle {
				lp := fmt.Sprintf("%s.lifecycle[%d]", bp, k)
				if v.required(lp+".id", l.ID) {
					if len(l.ID) > 255 || strings.ContainsAny(l.ID, "\"';<>&") {
						v.add(lp+".id", "invalid rule id %q", l.ID)
					}
					v.dup(ls, l.ID, lp+".id", "lifecycle rule")
				}
				for f, d := range map[string]int{"expireDays": l.ExpireDays, "noncurrentExpireDays": l.NoncurrentExpireDays, "abortIncompleteUploadDays": l.AbortIncompleteUploadDays} {
					if d < 0 {
						v.add(lp+"."+f, "must be 0 or more days, got %d", d)
					}
				}
				if l.ExpireDays == 0 && l.NoncurrentExpireDays == 0 && l.AbortIncompleteUploadDays == 0 {
					v.add(lp, "needs at least one of expireDays, noncurrentExpireDays, abortIncompleteUploadDays")
				}
			}
			v.policy(bp+".policy", b.Policy)
			if len(b.Tags) > 50 {
				v.add(bp+".tags", "at most 50 tags, got %d", len(b.Tags))
			}
			for k, val := range b.Tags {
				if k == "" || len(k) > 128 || len(val) > 256 {
					v.add(join(bp+".tags", k), "tag keys are 1-128 characters and values at most 256")
				}
			}
		}
	}
}

func (v *validator) policy(path string, p BucketPolicy) {
	switch {
	case p.bad != "":
		v.add(path, "%s", p.bad)
	case len(p.Document) > 0:
		var doc map[string]any
		if err := json.Unmarshal(p.Document, &doc); err != nil {
			v.add(path, "want a JSON object policy document")
		} else if _, ok := doc["Statement"]; !ok {
			v.add(path, "policy document has no Statement")
		}
	case p.Canned != "":
		v.enum(path, p.Canned, "private", "download", "upload", "public")
	}
}

func (v *validator) rabbitmq() {
	instances := seen{}
	for i, r := range v.c.RabbitMQ {
		p := v.instance("rabbitmq", i, r.Name, instances)
		v.host(p+".host", r.Host)
		v.port(p+".port", r.Port)
		v.port(p+".managementPort", r.ManagementPort)
		v.rmqName(p+".user", r.User)
		v.ref(p+".password", r.Password, true)

		vhosts := map[string]bool{"/": true}
		vs := seen{}
		for j, vh := range r.VHosts {
			vp := fmt.Sprintf("%s.vhosts[%d]", p, j)
			if v.rmqName(vp+".name", vh.Name) {
				v.dup(vs, vh.Name, vp+".name", "vhost")
				vhosts[vh.Name] = true
			}
			if vh.DefaultQueueType != "" {
				v.enum(vp+".defaultQueueType", vh.DefaultQueueType, "classic", "quorum", "stream")
			}
		}
		vhost := func(path, name string) bool {
			if !v.required(path, name) {
				return false
			}
			if !vhosts[name] {
				v.add(path, "vhost %q is not declared in %s.vhosts", name, p)
				return false
			}
			return true
		}
		exchanges := map[string]bool{}
		xs := seen{}
		for j, x := range r.Exchanges {
			xp := fmt.Sprintf("%s.exchanges[%d]", p, j)
			vhost(xp+".vhost", x.VHost)
			v.rmqObject(xp+".name", x.VHost, x.Name, "exchange", xs, exchanges)
			if v.required(xp+".type", x.Type) && !strings.HasPrefix(x.Type, "x-") {
				v.enum(xp+".type", x.Type, "direct", "fanout", "topic", "headers")
			}
		}
		queues := map[string]bool{}
		qs := seen{}
		for j, q := range r.Queues {
			qp := fmt.Sprintf("%s.queues[%d]", p, j)
			vhost(qp+".vhost", q.VHost)
			v.rmqObject(qp+".name", q.VHost, q.Name, "queue", qs, queues)
			if q.Type != "" && v.enum(qp+".type", q.Type, "classic", "quorum", "stream") && q.Type != "classic" {
				if !q.IsDurable() {
					v.add(qp+".durable", "%s queues are always durable", q.Type)
				}
				if q.AutoDelete {
					v.add(qp+".autoDelete", "%s queues cannot be auto-delete", q.Type)
				}
			}
			if t, ok := q.Arguments["x-queue-type"]; ok && q.Type != "" && fmt.Sprint(t) != q.Type {
				v.add(qp+".arguments.x-queue-type", "contradicts type %q; set only type", q.Type)
			}
		}
		exchange := func(path, vh, name string) {
			if v.required(path, name) && !exchanges[vh+"\x00"+name] && !strings.HasPrefix(name, "amq.") {
				v.add(path, "exchange %q is not declared in vhost %q", name, vh)
			}
		}
		bs := seen{}
		for j, b := range r.Bindings {
			bp := fmt.Sprintf("%s.bindings[%d]", p, j)
			if !vhost(bp+".vhost", b.VHost) {
				continue
			}
			exchange(bp+".source", b.VHost, b.Source)
			if v.enum(bp+".destinationType", b.DestinationType, "queue", "exchange") {
				if b.DestinationType == "queue" {
					if v.required(bp+".destination", b.Destination) && !queues[b.VHost+"\x00"+b.Destination] {
						v.add(bp+".destination", "queue %q is not declared in vhost %q", b.Destination, b.VHost)
					}
				} else {
					exchange(bp+".destination", b.VHost, b.Destination)
				}
			}
			args, _ := json.Marshal(b.Arguments)
			v.dup(bs, strings.Join([]string{b.VHost, b.Source, b.DestinationType, b.Destination, b.RoutingKey, string(args)}, "/"), bp, "binding")
		}
		us := seen{}
		for j, u := range r.Users {
			up := fmt.Sprintf("%s.users[%d]", p, j)
			if v.rmqName(up+".name", u.Name) {
				if u.Name == r.User {
					v.add(up+".name", "%q is the admin user bootstrap connects as; it is not managed", u.Name)
				}
				v.dup(us, u.Name, up+".name", "user")
			}
			v.ref(up+".password", u.Password, true)
			for k, t := range u.Tags {
				if !rmqNameRe.MatchString(t) {
					v.add(fmt.Sprintf("%s.tags[%d]", up, k), "invalid tag %q", t)
				}
			}
			ps := seen{}
			for k, pm := range u.Permissions {
				pp := fmt.Sprintf("%s.permissions[%d]", up, k)
				if vhost(pp+".vhost", pm.VHost) {
					v.dup(ps, pm.VHost, pp+".vhost", "permission for vhost")
				}
				v.regex(pp+".configure", pm.Configure)
				v.regex(pp+".write", pm.Write)
				v.regex(pp+".read", pm.Read)
			}
			ts := seen{}
			for k, tp := range u.TopicPermissions {
				tpp := fmt.Sprintf("%s.topicPermissions[%d]", up, k)
				if vhost(tpp+".vhost", tp.VHost) {
					exchange(tpp+".exchange", tp.VHost, tp.Exchange)
					v.dup(ts, tp.VHost+"/"+tp.Exchange, tpp+".exchange", "topic permission for exchange")
				}
				v.regex(tpp+".write", tp.Write)
				v.regex(tpp+".read", tp.Read)
			}
		}
		pols := seen{}
		for j, pol := range r.Policies {
			pp := fmt.Sprintf("%s.policies[%d]", p, j)
			vhost(pp+".vhost", pol.VHost)
			if v.rmqName(pp+".name", pol.Name) {
				v.dup(pols, pol.VHost+"/"+pol.Name, pp+".name", "policy")
			}
			if v.required(pp+".pattern", pol.Pattern) {
				v.regex(pp+".pattern", pol.Pattern)
			}
			v.enum(pp+".applyTo", pol.ApplyTo, "queues", "exchanges", "all", "classic_queues", "quorum_queues", "streams")
			if len(pol.Definition) == 0 {
				v.add(pp+".definition", "is required, e.g. {dead-letter-exchange: NAME}")
			}
			if dlx, ok := pol.Definition["dead-letter-exchange"].(string); ok && pol.VHost != "" {
				exchange(pp+".definition.dead-letter-exchange", pol.VHost, dlx)
			}
		}
	}
}

// rmqObject checks an exchange or queue name: syntax, the reserved amq.
// prefix, duplicates in its vhost; a valid one is recorded in declared.
func (v *validator) rmqObject(path, vhost, name, what string, s seen, declared map[string]bool) {
	if !v.rmqName(path, name) {
		return
	}
	if strings.HasPrefix(name, "amq.") {
		v.add(path, "names starting with amq. are reserved by RabbitMQ")
	}
	v.dup(s, vhost+"/"+name, path, what)
	declared[vhost+"\x00"+name] = true
}

func (v *validator) rmqName(path, name string) bool {
	return v.name(path, name, rmqNameRe, 255, "letters, digits and _ . : / @ -")
}

// regex rejects what cannot be a RabbitMQ permission or policy pattern
// (PCRE). Go's RE2 is a subset, so only syntax both reject is an error.
func (v *validator) regex(path, re string) {
	if strings.ContainsAny(re, "\x00\n") {
		v.add(path, "pattern contains a control character")
		return
	}
	if _, err := regexp.Compile(re); err != nil && !strings.Contains(err.Error(), "invalid or unsupported Perl syntax") {
		v.add(path, "invalid regular expression %q: %s", re, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
}
