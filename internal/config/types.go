package config

import (
	"encoding/json"
	"time"
)

// Config is the whole of bootstrap.yaml. Field names and yaml keys are the
// contract in DESIGN.md: never rename one.
type Config struct {
	Version  int        `yaml:"version" json:"version"`
	Defaults Defaults   `yaml:"defaults" json:"defaults,omitempty"`
	Secrets  Secrets    `yaml:"secrets" json:"secrets,omitempty"`
	Postgres []Postgres `yaml:"postgres" json:"postgres,omitempty"`
	Redis    []Redis    `yaml:"redis" json:"redis,omitempty"`
	MinIO    []MinIO    `yaml:"minio" json:"minio,omitempty"`
	RabbitMQ []RabbitMQ `yaml:"rabbitmq" json:"rabbitmq,omitempty"`
}

// Defaults apply to every target.
type Defaults struct {
	// WaitTimeout is how long to wait for each service to accept connections.
	WaitTimeout Duration `yaml:"waitTimeout" json:"waitTimeout,omitempty" jsonschema:"description=how long to wait for each service to accept connections (Go duration),default=5m"`
	// Concurrency is how many targets are reconciled at once.
	Concurrency int `yaml:"concurrency" json:"concurrency,omitempty" jsonschema:"minimum=1,maximum=64,default=6"`
	// Timeouts bound every round trip; each target's own timeouts block
	// overrides them field by field.
	Timeouts Timeouts `yaml:"timeouts" json:"timeouts,omitempty"`
}

// Timeouts bound every round trip to a server, so that a server that
// accepts a connection and then says nothing (or a lock another session
// holds) fails the run naming the target instead of hanging it.
type Timeouts struct {
	Connect   Duration `yaml:"connect" json:"connect,omitempty" jsonschema:"description=dialing a server: TCP connect and TLS handshake (Go duration),default=10s"`
	Request   Duration `yaml:"request" json:"request,omitempty" jsonschema:"description=one request: an HTTP call to the RabbitMQ management API or to S3 and a Redis command read or write (Go duration),default=30s"`
	Statement Duration `yaml:"statement" json:"statement,omitempty" jsonschema:"description=PostgreSQL statement_timeout of every session bootstrap opens: CREATE DATABASE and migrations included (Go duration),default=10m"`
	Lock      Duration `yaml:"lock" json:"lock,omitempty" jsonschema:"description=PostgreSQL lock_timeout of every session: how long a statement waits for a lock another session holds (Go duration),default=30s"`
}

// SecretRef points at a credential in the configured source. A credential is
// never written inline: Inline records that the user tried, so validation can
// say so without ever holding the value.
type SecretRef struct {
	Secret string `yaml:"secret" json:"secret"`
	Inline bool   `yaml:"-" json:"-"`
}

// IsZero reports whether no reference was given.
func (r SecretRef) IsZero() bool { return r.Secret == "" && !r.Inline }

// Secrets configures where credentials come from and where they go.
type Secrets struct {
	Source            SourceConfig       `yaml:"source" json:"source,omitempty"`
	Generate          Generate           `yaml:"generate" json:"generate,omitempty"`
	Output            Output             `yaml:"output" json:"output,omitempty"`
	KubernetesSecrets []KubernetesSecret `yaml:"kubernetesSecrets" json:"kubernetesSecrets,omitempty"`
}

// SourceConfig selects the credential source.
type SourceConfig struct {
	Type     string         `yaml:"type" json:"type,omitempty" jsonschema:"enum=ocivault,enum=file,enum=env,default=env"`
	OCIVault OCIVaultSource `yaml:"ocivault" json:"ocivault,omitempty"`
	File     FileSource     `yaml:"file" json:"file,omitempty"`
	Env      EnvSource      `yaml:"env" json:"env,omitempty"`
}

// OCIVaultSource reads (and, to generate, creates) secrets in an OCI Vault.
type OCIVaultSource struct {
	VaultID       string `yaml:"vaultId" json:"vaultId,omitempty"`
	CompartmentID string `yaml:"compartmentId" json:"compartmentId,omitempty"`
	KeyID         string `yaml:"keyId" json:"keyId,omitempty"`
	Region        string `yaml:"region" json:"region,omitempty"`
	Auth          string `yaml:"auth" json:"auth,omitempty" jsonschema:"enum=instance_principal,enum=workload_identity,enum=resource_principal,enum=api_key,default=instance_principal"`
	ConfigFile    string `yaml:"configFile" json:"configFile,omitempty"`
	Profile       string `yaml:"profile" json:"profile,omitempty"`
	Endpoint      string `yaml:"endpoint" json:"endpoint,omitempty"`
}

// FileSource keeps one file per secret, named after it.
type FileSource struct {
	Dir string `yaml:"dir" json:"dir,omitempty"`
}

// EnvSource reads PREFIX + NAME (upper case, '-' and '.' as '_').
type EnvSource struct {
	Prefix string `yaml:"prefix" json:"prefix,omitempty"`
}

// Generate creates the secrets the source lacks.
type Generate struct {
	Enabled bool `yaml:"enabled" json:"enabled,omitempty"`
	Length  int  `yaml:"length" json:"length,omitempty" jsonschema:"minimum=16,maximum=256,default=32"`
}

// Output says where Kubernetes Secrets are delivered.
type Output struct {
	Type      string  `yaml:"type" json:"type,omitempty" jsonschema:"enum=sealed,enum=plain,enum=none,default=none"`
	Target    string  `yaml:"target" json:"target,omitempty" jsonschema:"enum=cluster,enum=dir,default=cluster"`
	Dir       string  `yaml:"dir" json:"dir,omitempty"`
	Namespace string  `yaml:"namespace" json:"namespace,omitempty"`
	Sealing   Sealing `yaml:"sealing" json:"sealing,omitempty"`
	// Wait, with target cluster and type sealed, waits up to
	// defaults.waitTimeout until the controller has made each Secret.
	Wait bool `yaml:"wait" json:"wait,omitempty"`
}

// Sealing configures the Sealed Secrets certificate and scope.
type Sealing struct {
	// Cert is a file path, a file:// or https:// URL, or an http:// URL to
	// a loopback address; empty fetches it from the controller through the
	// API server.
	Cert string `yaml:"cert" json:"cert,omitempty" jsonschema_description:"the controller's certificate: a file path, a file:// or https:// URL, or an http:// URL to a loopback address only (127.0.0.0/8, ::1, localhost); empty = fetched from the controller through the API server's service proxy"`
	// CertSHA256 pins the certificate, from whichever source: the hex
	// SHA-256 of its DER bytes.
	CertSHA256          string `yaml:"certSHA256" json:"certSHA256,omitempty" jsonschema:"pattern=^(([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2})?$" jsonschema_description:"optional pin of the sealing certificate: the SHA-256 of the certificate's DER bytes as 64 hex digits, any case, ':' between bytes allowed (openssl x509 -in cert.pem -outform DER | sha256sum, or openssl x509 -in cert.pem -noout -fingerprint -sha256, the part after =); a certificate that differs is refused. Update it when the controller renews its key"`
	ControllerName      string `yaml:"controllerName" json:"controllerName,omitempty"`
	ControllerNamespace string `yaml:"controllerNamespace" json:"controllerNamespace,omitempty"`
	Scope               string `yaml:"scope" json:"scope,omitempty" jsonschema:"enum=strict,enum=namespace-wide,enum=cluster-wide,default=strict"`
}

// KubernetesSecret is one Secret to deliver: data key -> secret name in the source.
type KubernetesSecret struct {
	Name string            `yaml:"name" json:"name"`
	Data map[string]string `yaml:"data" json:"data"`
}

// Postgres is one PostgreSQL instance.
type Postgres struct {
	Name      string       `yaml:"name" json:"name"`
	Host      string       `yaml:"host" json:"host"`
	Port      int          `yaml:"port" json:"port,omitempty" jsonschema:"minimum=1,maximum=65535,default=5432"`
	SSLMode   string       `yaml:"sslmode" json:"sslmode,omitempty" jsonschema:"enum=disable,enum=prefer,enum=require,enum=verify-full,default=prefer"`
	TLS       TLS          `yaml:"tls" json:"tls,omitzero"`
	Admin     PGAdmin      `yaml:"admin" json:"admin"`
	Roles     []PGRole     `yaml:"roles" json:"roles,omitempty"`
	Databases []PGDatabase `yaml:"databases" json:"databases,omitempty"`
	Grants    []PGGrant    `yaml:"grants" json:"grants,omitempty"`
	Timeouts  Timeouts     `yaml:"timeouts" json:"timeouts,omitempty"`
}

// PGAdmin is the superuser bootstrap connects as.
type PGAdmin struct {
	User     string    `yaml:"user" json:"user,omitempty" jsonschema:"default=postgres"`
	Password SecretRef `yaml:"password" json:"password"`
	Database string    `yaml:"database" json:"database,omitempty" jsonschema:"default=postgres"`
}

// PGRole is a role; Password is required when Login is true.
type PGRole struct {
	Name            string     `yaml:"name" json:"name"`
	Password        *SecretRef `yaml:"password" json:"password,omitempty"`
	Login           *bool      `yaml:"login" json:"login,omitempty" jsonschema:"default=true"`
	ConnectionLimit *int       `yaml:"connectionLimit" json:"connectionLimit,omitempty" jsonschema:"minimum=-1,default=-1"`
	InRoles         []string   `yaml:"inRoles" json:"inRoles,omitempty"`
	// Rotation turns the role into a NOLOGIN group with two login roles,
	// NAME_a and NAME_b, that take turns (DESIGN.md "Rotation").
	Rotation *Rotation `yaml:"rotation" json:"rotation,omitempty"`
}

// CanLogin reports the effective login attribute (default true).
func (r PGRole) CanLogin() bool { return r.Login == nil || *r.Login }

// ConnLimit reports the effective connection limit (default -1, unlimited).
func (r PGRole) ConnLimit() int {
	if r.ConnectionLimit == nil {
		return -1
	}
	return *r.ConnectionLimit
}

// PGDatabase is a database with its owner, extensions, schemas and migrations.
type PGDatabase struct {
	Name                string     `yaml:"name" json:"name"`
	Owner               string     `yaml:"owner" json:"owner,omitempty"`
	Extensions          []string   `yaml:"extensions" json:"extensions,omitempty"`
	Schemas             []PGSchema `yaml:"schemas" json:"schemas,omitempty"`
	Migrations          string     `yaml:"migrations" json:"migrations,omitempty"`
	RevokePublicConnect bool       `yaml:"revokePublicConnect" json:"revokePublicConnect,omitempty"`
	// Strategy is CREATE DATABASE's STRATEGY (PostgreSQL 15 and later):
	// empty for the server's default (wal_log). file_copy copies the
	// template's files instead of writing every block to the WAL, about
	// twice as fast, at the cost of a checkpoint before and after each
	// creation; used only when the database is created.
	Strategy string `yaml:"strategy" json:"strategy,omitempty" jsonschema:"enum=wal_log,enum=file_copy"`
}

// PGSchema is a schema inside a database.
type PGSchema struct {
	Name  string `yaml:"name" json:"name"`
	Owner string `yaml:"owner" json:"owner,omitempty"`
}

// PGGrant grants privileges to a role. On is database, schema, tables or
// sequences; tables and sequences also set default privileges so future
// objects are covered.
type PGGrant struct {
	Role       string   `yaml:"role" json:"role"`
	Database   string   `yaml:"database" json:"database"`
	Schema     string   `yaml:"schema" json:"schema,omitempty"`
	On         string   `yaml:"on" json:"on" jsonschema:"enum=database,enum=schema,enum=tables,enum=sequences"`
	Privileges []string `yaml:"privileges" json:"privileges"`
}

// Redis is one Redis instance, checked only.
type Redis struct {
	Name     string      `yaml:"name" json:"name"`
	Address  string      `yaml:"address" json:"address"`
	Username string      `yaml:"username" json:"username,omitempty"`
	Password *SecretRef  `yaml:"password" json:"password,omitempty"`
	TLS      TLS         `yaml:"tls" json:"tls,omitzero"`
	DB       int         `yaml:"db" json:"db,omitempty"`
	Expect   RedisExpect `yaml:"expect" json:"expect,omitempty"`
	Timeouts Timeouts    `yaml:"timeouts" json:"timeouts,omitempty"`
	// Users are ACL users bootstrap creates and keeps (ACL SETUSER).
	Users []RedisUser `yaml:"users" json:"users,omitempty"`
}

// RedisUser is an ACL user: its password and its ACL rules, as ACL SETUSER
// takes them ("~health:*", "+@read", "-@dangerous", "&chan:*").
type RedisUser struct {
	Name     string    `yaml:"name" json:"name"`
	Password SecretRef `yaml:"password" json:"password"`
	Rules    []string  `yaml:"rules" json:"rules,omitempty"`
	// Rotation gives the user a second password during the overlap (Redis
	// keeps several per user).
	Rotation *Rotation `yaml:"rotation" json:"rotation,omitempty"`
}

// RedisExpect lists settings checked; one the server will not let us read
// fails its check unless SkipUnreadable.
type RedisExpect struct {
	Role            string `yaml:"role" json:"role,omitempty" jsonschema:"enum=master,enum=slave,enum=replica"`
	MaxmemoryPolicy string `yaml:"maxmemoryPolicy" json:"maxmemoryPolicy,omitempty"`
	Appendonly      *bool  `yaml:"appendonly" json:"appendonly,omitempty"`
	// SkipUnreadable turns an expectation the server will not let us read
	// (CONFIG, INFO or ROLE renamed or denied) from a failed check into a
	// warning.
	SkipUnreadable bool `yaml:"skipUnreadable" json:"skipUnreadable,omitempty" jsonschema:"description=an expectation the server will not let bootstrap read is a warning instead of a failed check"`
}

// MinIO is one S3 endpoint (MinIO or any S3-compatible store).
type MinIO struct {
	Name      string    `yaml:"name" json:"name"`
	Endpoint  string    `yaml:"endpoint" json:"endpoint"`
	TLS       TLS       `yaml:"tls" json:"tls,omitzero"`
	Region    string    `yaml:"region" json:"region,omitempty" jsonschema:"default=us-east-1"`
	AccessKey SecretRef `yaml:"accessKey" json:"accessKey"`
	SecretKey SecretRef `yaml:"secretKey" json:"secretKey"`
	Buckets   []Bucket  `yaml:"buckets" json:"buckets,omitempty"`
	Timeouts  Timeouts  `yaml:"timeouts" json:"timeouts,omitempty"`
}

// Bucket is one bucket and its settings.
type Bucket struct {
	Name       string            `yaml:"name" json:"name"`
	Region     string            `yaml:"region" json:"region,omitempty"`
	Versioning *bool             `yaml:"versioning" json:"versioning,omitempty"`
	ObjectLock bool              `yaml:"objectLock" json:"objectLock,omitempty"`
	Lifecycle  []LifecycleRule   `yaml:"lifecycle" json:"lifecycle,omitempty"`
	Policy     BucketPolicy      `yaml:"policy" json:"policy,omitempty"`
	Tags       map[string]string `yaml:"tags" json:"tags,omitempty"`
	// Exclusive names the settings whose declared entries are the whole
	// set: undeclared lifecycle rules or tags are removed. Otherwise they
	// are kept, as another tool or an operator may have added them.
	Exclusive []string `yaml:"exclusive" json:"exclusive,omitempty" jsonschema:"uniqueItems=true,enum=lifecycle,enum=tags,description=settings whose undeclared entries are removed: lifecycle (rules by id) and tags (by key); by default they are kept"`
}

// LifecycleRule is one lifecycle rule; at least one action must be set.
type LifecycleRule struct {
	ID                        string `yaml:"id" json:"id"`
	Prefix                    string `yaml:"prefix" json:"prefix,omitempty"`
	ExpireDays                int    `yaml:"expireDays" json:"expireDays,omitempty"`
	NoncurrentExpireDays      int    `yaml:"noncurrentExpireDays" json:"noncurrentExpireDays,omitempty"`
	AbortIncompleteUploadDays int    `yaml:"abortIncompleteUploadDays" json:"abortIncompleteUploadDays,omitempty"`
}

// BucketPolicy is either a canned name (private, download, upload, public)
// or a JSON policy document, given as a string or as YAML.
type BucketPolicy struct {
	Canned   string          `json:"-"`
	Document json.RawMessage `json:"-"`
	// bad holds a decode problem, reported by validation.
	bad string
}

// IsZero reports whether no policy was given.
func (p BucketPolicy) IsZero() bool { return p.Canned == "" && len(p.Document) == 0 && p.bad == "" }

// RabbitMQ is one RabbitMQ broker.
type RabbitMQ struct {
	Name           string        `yaml:"name" json:"name"`
	Host           string        `yaml:"host" json:"host"`
	Port           int           `yaml:"port" json:"port,omitempty" jsonschema:"minimum=1,maximum=65535,default=5672"`
	ManagementPort int           `yaml:"managementPort" json:"managementPort,omitempty" jsonschema:"minimum=1,maximum=65535,default=15672"`
	TLS            TLS           `yaml:"tls" json:"tls,omitzero"`
	User           string        `yaml:"user" json:"user"`
	Password       SecretRef     `yaml:"password" json:"password"`
	VHosts         []RMQVHost    `yaml:"vhosts" json:"vhosts,omitempty"`
	Users          []RMQUser     `yaml:"users" json:"users,omitempty"`
	Exchanges      []RMQExchange `yaml:"exchanges" json:"exchanges,omitempty"`
	Queues         []RMQQueue    `yaml:"queues" json:"queues,omitempty"`
	Bindings       []RMQBinding  `yaml:"bindings" json:"bindings,omitempty"`
	Policies       []RMQPolicy   `yaml:"policies" json:"policies,omitempty"`
	Timeouts       Timeouts      `yaml:"timeouts" json:"timeouts,omitempty"`
}

// RMQVHost is a virtual host.
type RMQVHost struct {
	Name             string   `yaml:"name" json:"name"`
	Description      string   `yaml:"description" json:"description,omitempty"`
	Tags             []string `yaml:"tags" json:"tags,omitempty"`
	DefaultQueueType string   `yaml:"defaultQueueType" json:"defaultQueueType,omitempty" jsonschema:"enum=classic,enum=quorum,enum=stream"`
}

// RMQUser is a user with its permissions.
type RMQUser struct {
	Name             string               `yaml:"name" json:"name"`
	Password         SecretRef            `yaml:"password" json:"password"`
	Tags             []string             `yaml:"tags" json:"tags,omitempty"`
	Permissions      []RMQPermission      `yaml:"permissions" json:"permissions,omitempty"`
	TopicPermissions []RMQTopicPermission `yaml:"topicPermissions" json:"topicPermissions,omitempty"`
	// Rotation replaces the user by two users, NAME_a and NAME_b, with the
	// same tags and permissions, that take turns (DESIGN.md "Rotation").
	Rotation *Rotation `yaml:"rotation" json:"rotation,omitempty"`
}

// RMQPermission is a user's permissions in one vhost (regular expressions).
type RMQPermission struct {
	VHost     string `yaml:"vhost" json:"vhost"`
	Configure string `yaml:"configure" json:"configure"`
	Write     string `yaml:"write" json:"write"`
	Read      string `yaml:"read" json:"read"`
}

// RMQTopicPermission limits routing keys on a topic exchange.
type RMQTopicPermission struct {
	VHost    string `yaml:"vhost" json:"vhost"`
	Exchange string `yaml:"exchange" json:"exchange"`
	Write    string `yaml:"write" json:"write"`
	Read     string `yaml:"read" json:"read"`
}

// RMQExchange is an exchange.
type RMQExchange struct {
	VHost      string         `yaml:"vhost" json:"vhost"`
	Name       string         `yaml:"name" json:"name"`
	Type       string         `yaml:"type" json:"type" jsonschema:"enum=direct,enum=fanout,enum=topic,enum=headers,enum=x-consistent-hash,enum=x-delayed-message"`
	Durable    *bool          `yaml:"durable" json:"durable,omitempty" jsonschema:"default=true"`
	AutoDelete bool           `yaml:"autoDelete" json:"autoDelete,omitempty"`
	Internal   bool           `yaml:"internal" json:"internal,omitempty"`
	Arguments  map[string]any `yaml:"arguments" json:"arguments,omitempty"`
}

// IsDurable reports the effective durability (default true).
func (e RMQExchange) IsDurable() bool { return e.Durable == nil || *e.Durable }

// RMQQueue is a queue.
type RMQQueue struct {
	VHost      string         `yaml:"vhost" json:"vhost"`
	Name       string         `yaml:"name" json:"name"`
	Type       string         `yaml:"type" json:"type,omitempty" jsonschema:"enum=classic,enum=quorum,enum=stream"`
	Durable    *bool          `yaml:"durable" json:"durable,omitempty" jsonschema:"default=true"`
	AutoDelete bool           `yaml:"autoDelete" json:"autoDelete,omitempty"`
	Arguments  map[string]any `yaml:"arguments" json:"arguments,omitempty"`
}

// IsDurable reports the effective durability (default true).
func (q RMQQueue) IsDurable() bool { return q.Durable == nil || *q.Durable }

// RMQBinding binds an exchange to a queue or to another exchange.
type RMQBinding struct {
	VHost           string         `yaml:"vhost" json:"vhost"`
	Source          string         `yaml:"source" json:"source"`
	Destination     string         `yaml:"destination" json:"destination"`
	DestinationType string         `yaml:"destinationType" json:"destinationType,omitempty" jsonschema:"enum=queue,enum=exchange,default=queue"`
	RoutingKey      string         `yaml:"routingKey" json:"routingKey,omitempty"`
	Arguments       map[string]any `yaml:"arguments" json:"arguments,omitempty"`
}

// RMQPolicy is a policy; Definition is compared semantically.
type RMQPolicy struct {
	VHost      string         `yaml:"vhost" json:"vhost"`
	Name       string         `yaml:"name" json:"name"`
	Pattern    string         `yaml:"pattern" json:"pattern"`
	ApplyTo    string         `yaml:"applyTo" json:"applyTo,omitempty" jsonschema:"enum=queues,enum=exchanges,enum=all,enum=classic_queues,enum=quorum_queues,enum=streams,default=all"`
	Priority   int            `yaml:"priority" json:"priority,omitempty"`
	Definition map[string]any `yaml:"definition" json:"definition"`
}

// Rotation rotates an application credential with two identities: the new
// value is staged in the source, set on the standby identity, proven,
// promoted and delivered; the old identity is disabled after Grace.
type Rotation struct {
	// Every is the credential's age at which serve rotates it; zero: only
	// `bootstrap rotate` does.
	Every Duration `yaml:"every" json:"every,omitempty" jsonschema:"description=rotate when the credential is this old (Go duration; serve); empty: only bootstrap rotate"`
	// Grace is how long the old identity keeps working after the new
	// credential is delivered; zero: two serve intervals.
	Grace Duration `yaml:"grace" json:"grace,omitempty" jsonschema:"description=how long the old identity keeps working after delivery (Go duration); default two serve intervals"`
}

// Duration is a Go duration string ("90s", "5m"). A bad value is kept
// as Raw and reported by validation with its path.
type Duration struct {
	time.Duration
	Raw string
}
