package config

import "time"

// Defaults for fields a user may leave out. The loader applies them before
// validation, so backends never see an empty port or mode.
const (
	DefaultWaitTimeout    = 5 * time.Minute
	DefaultConcurrency    = 6
	DefaultSecretLength   = 32
	DefaultPostgresPort   = 5432
	DefaultRabbitPort     = 5672
	DefaultRabbitMgmtPort = 15672
	DefaultRegion         = "us-east-1"

	DefaultConnectTimeout   = 10 * time.Second
	DefaultRequestTimeout   = 30 * time.Second
	DefaultStatementTimeout = 10 * time.Minute
	DefaultLockTimeout      = 30 * time.Second
)

// ApplyDefaults fills in every default in place.
func ApplyDefaults(c *Config) {
	d := &c.Defaults
	if d.WaitTimeout.Raw == "" {
		d.WaitTimeout = Duration{Duration: DefaultWaitTimeout, Raw: DefaultWaitTimeout.String()}
	}
	if d.Concurrency == 0 {
		d.Concurrency = DefaultConcurrency
	}
	defDuration(&d.Timeouts.Connect, DefaultConnectTimeout)
	defDuration(&d.Timeouts.Request, DefaultRequestTimeout)
	defDuration(&d.Timeouts.Statement, DefaultStatementTimeout)
	defDuration(&d.Timeouts.Lock, DefaultLockTimeout)
	for i := range c.Postgres {
		c.Postgres[i].Timeouts.inherit(d.Timeouts)
	}
	for i := range c.Redis {
		c.Redis[i].Timeouts.inherit(d.Timeouts)
	}
	for i := range c.MinIO {
		c.MinIO[i].Timeouts.inherit(d.Timeouts)
	}
	for i := range c.RabbitMQ {
		c.RabbitMQ[i].Timeouts.inherit(d.Timeouts)
	}
	s := &c.Secrets
	def(&s.Source.Type, "env")
	def(&s.Source.Env.Prefix, "BOOTSTRAP_SECRET_")
	def(&s.Source.OCIVault.Auth, "instance_principal")
	if s.Source.OCIVault.Auth == "api_key" {
		def(&s.Source.OCIVault.ConfigFile, "~/.oci/config")
		def(&s.Source.OCIVault.Profile, "DEFAULT")
	}
	if s.Generate.Length == 0 {
		s.Generate.Length = DefaultSecretLength
	}
	def(&s.Output.Type, "none")
	def(&s.Output.Target, "cluster")
	def(&s.Output.Sealing.ControllerName, "sealed-secrets")
	def(&s.Output.Sealing.ControllerNamespace, "kube-system")
	def(&s.Output.Sealing.Scope, "strict")
	if s.Output.Target == "dir" {
		def(&s.Output.Dir, "./sealed")
	}
	for i := range c.Postgres {
		p := &c.Postgres[i]
		if p.Port == 0 {
			p.Port = DefaultPostgresPort
		}
		def(&p.SSLMode, "prefer")
		def(&p.Admin.User, "postgres")
		def(&p.Admin.Database, "postgres")
		for j := range p.Databases {
			db := &p.Databases[j]
			// A database without an owner is the admin's (CREATE
			// DATABASE by the admin), so are its schemas: an empty owner
			// would be AUTHORIZATION "".
			for k := range db.Schemas {
				def(&db.Schemas[k].Owner, db.Owner)
				def(&db.Schemas[k].Owner, p.Admin.User)
			}
		}
	}
	for i := range c.MinIO {
		m := &c.MinIO[i]
		def(&m.Region, DefaultRegion)
		for j := range m.Buckets {
			def(&m.Buckets[j].Region, m.Region)
		}
	}
	for i := range c.RabbitMQ {
		r := &c.RabbitMQ[i]
		if r.Port == 0 {
			r.Port = DefaultRabbitPort
		}
		if r.ManagementPort == 0 {
			r.ManagementPort = DefaultRabbitMgmtPort
		}
		for j := range r.Bindings {
			def(&r.Bindings[j].DestinationType, "queue")
		}
		for j := range r.Policies {
			def(&r.Policies[j].ApplyTo, "all")
		}
	}
}

func defDuration(d *Duration, v time.Duration) {
	if d.Raw == "" {
		*d = Duration{Duration: v, Raw: v.String()}
	}
}

// inherit fills what a target leaves out from defaults.timeouts.
func (t *Timeouts) inherit(d Timeouts) {
	for _, f := range []struct{ own, def *Duration }{
		{&t.Connect, &d.Connect}, {&t.Request, &d.Request}, {&t.Statement, &d.Statement}, {&t.Lock, &d.Lock},
	} {
		if f.own.Raw == "" {
			*f.own = *f.def
		}
	}
}

func def(s *string, v string) {
	if *s == "" {
		*s = v
	}
}
