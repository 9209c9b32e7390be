// Package buckets owns the buckets of one S3 endpoint — MinIO or any other
// S3-compatible store (OCI Object Storage's S3 API, AWS S3, SeaweedFS): that
// each declared bucket exists in its region (with object lock when asked, at
// creation), and its versioning, lifecycle rules, bucket policy and tags.
//
// A setting left out of the config is left alone: versioning (nil),
// lifecycle (nil), policy (unset; "private" means no policy) and tags
// (nil). Lifecycle rules merge by id and tags by
// key: rules and tags that are not declared, and the fields of a declared
// rule that bootstrap does not model (transitions, tag and size filters,
// ...), are kept, as another tool or an operator may have set them. A
// bucket's exclusive list names the settings whose undeclared rules or tags
// are removed instead. Region and object lock can only be chosen at
// creation; a bucket that differs is reported as drift with a remedy, never
// recreated.
//
// It speaks plain S3 through minio-go; what only MinIO does is marked in
// comments. It never deletes a bucket or an object, never reads or writes
// objects, never restarts the server, and never touches users, groups, IAM
// policies or quotas (those need MinIO's admin API, whose Go client is AGPL).
package buckets

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// planWorkers bounds the buckets read at once by Plan: enough to hide
// round-trip latency, few enough not to load a small server.
const planWorkers = 8

// defaultRegion is S3's default and MinIO's unless MINIO_SITE_REGION says
// otherwise.
const defaultRegion = "us-east-1"

// Target reconciles the buckets of one S3 endpoint.
type Target struct {
	cfg   config.MinIO
	creds credential.Resolved
	log   *slog.Logger
	name  string

	mu        sync.Mutex
	endpoint  string // host[:port], for messages and the client
	secure    bool
	static    *credentials.Credentials
	transport *http.Transport
	rt        *serverRecorder
	clients   map[string]*minio.Client // by signing region
	// locator has no fixed region, so GetBucketLocation really asks the
	// server (a client with a region answers from its own setting).
	locator *minio.Client
	// listed is Connect's ListBuckets answer, which the Plan right after
	// it reads instead of asking again; Plan takes it, so a later Plan
	// (serve) asks the server.
	listed     []minio.BucketInfo
	haveListed bool
}

var (
	_ reconcile.Target        = (*Target)(nil)
	_ reconcile.WaitDescriber = (*Target)(nil)
)

// New returns the target for one minio entry of the config. It opens no
// connection; Connect does.
func New(cfg config.MinIO, creds credential.Resolved, log *slog.Logger) *Target {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	name := cfg.Target()
	t := &Target{cfg: cfg, creds: creds, name: name, log: log.With("target", name)}
	t.endpoint, t.secure = splitEndpoint(cfg.Endpoint, cfg.TLS.Enabled)
	return t
}

// Name is minio/INSTANCE.
func (t *Target) Name() string { return t.name }

// WaitingFor says what the engine waits for while Connect fails.
func (t *Target) WaitingFor() string {
	return fmt.Sprintf("S3 endpoint (MinIO) at %s", t.endpoint)
}

// splitEndpoint accepts host:port or a URL; an https:// scheme turns TLS on.
func splitEndpoint(ep string, tlsOn bool) (string, bool) {
	if u, err := url.Parse(ep); err == nil && u.Host != "" && (u.Scheme == "http" || u.Scheme == "https") {
		return u.Host, tlsOn || u.Scheme == "https"
	}
	return strings.TrimSuffix(ep, "/"), tlsOn
}

func (t *Target) region() string {
	if t.cfg.Region != "" {
		return t.cfg.Region
	}
	return defaultRegion
}

func (t *Target) bucketRegion(b config.Bucket) string {
	if b.Region != "" {
		return b.Region
	}
	return t.region()
}

// init builds the clients once; Connect may be retried many times.
func (t *Target) init() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.clients != nil {
		return nil
	}
	ak, err := t.creds.Get(t.cfg.AccessKey.Secret)
	if err != nil {
		return fmt.Errorf("%s: access key: %w", t.name, err)
	}
	sk, err := t.creds.Get(t.cfg.SecretKey.Secret)
	if err != nil {
		return fmt.Errorf("%s: secret key: %w", t.name, err)
	}
	tr, err := minio.DefaultTransport(t.secure)
	if err != nil {
		return fmt.Errorf("%s: http transport: %w", t.name, err)
	}
	if t.secure {
		host, _, _ := net.SplitHostPort(t.endpoint)
		if host == "" {
			host = t.endpoint
		}
		if tr.TLSClientConfig, err = t.cfg.TLS.ClientConfig(host); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
	}
	// A dead address should not hold one attempt for minio-go's default
	// 30 s, nor a server that accepts and never answers hold it at all.
	to := t.cfg.Timeouts
	tr.DialContext = (&net.Dialer{Timeout: to.Connect.Duration, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = to.Connect.Duration
	tr.ResponseHeaderTimeout = to.Request.Duration
	t.transport = tr
	t.rt = &serverRecorder{next: tr}
	t.static = credentials.NewStaticV4(ak.Reveal(), sk.Reveal(), "")
	t.clients = map[string]*minio.Client{}
	if _, err := t.newClient(t.region()); err != nil {
		t.clients = nil
		return err
	}
	t.locator, err = minio.New(t.endpoint, t.options(""))
	if err != nil {
		t.clients = nil
		return fmt.Errorf("%s: endpoint %s: %w", t.name, t.endpoint, err)
	}
	return nil
}

func (t *Target) options(region string) *minio.Options {
	return &minio.Options{
		Creds:     t.static,
		Secure:    t.secure,
		Transport: t.rt,
		Region:    region,
		// Path style for MinIO, OCI and other custom endpoints,
		// virtual-host style where the endpoint is AWS's.
		BucketLookup: minio.BucketLookupAuto,
		// minio-go retries transient failures itself; keep it short so
		// the engine's own backoff, which says what it waits for, rules.
		MaxRetries: 3,
	}
}

// newClient returns the client that signs for region; t.mu must be held.
func (t *Target) newClient(region string) (*minio.Client, error) {
	if c, ok := t.clients[region]; ok {
		return c, nil
	}
	c, err := minio.New(t.endpoint, t.options(region))
	if err != nil {
		return nil, fmt.Errorf("%s: endpoint %s: %w", t.name, t.endpoint, err)
	}
	t.clients[region] = c
	return c, nil
}

// client returns the client for a region, creating it on first use (AWS
// signs each request for the bucket's region; MinIO and OCI have one).
func (t *Target) client(region string) (*minio.Client, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.clients == nil {
		return nil, fmt.Errorf("%s: not connected", t.name)
	}
	return t.newClient(region)
}

// Connect checks that the endpoint answers and accepts the keys, with the
// cheapest authenticated call there is (ListBuckets). Refused or reset
// connections and a server still starting are retryable; rejected keys, a
// wrong region and TLS failures are Permanent. No message holds a key.
func (t *Target) Connect(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: connect to %s: %w", t.name, t.endpoint, err)
	}
	if err := t.init(); err != nil {
		return reconcile.Permanent(err)
	}
	c, err := t.client(t.region())
	if err != nil {
		return reconcile.Permanent(err)
	}
	list, err := c.ListBuckets(ctx)
	if err != nil {
		return t.connectError(ctx, err)
	}
	t.log.Debug("connected", "endpoint", t.endpoint, "buckets", len(list), "server", t.rt.server())
	t.mu.Lock()
	t.listed, t.haveListed = list, true
	t.mu.Unlock()
	return nil
}

// authCodes are S3 error codes that waiting will not fix, with what to do.
var authCodes = map[string]string{
	"InvalidAccessKeyId":    "the access key is not known to the server: check the accessKey secret",
	"SignatureDoesNotMatch": "the secret key does not match the access key: check the secretKey secret",
	"InvalidToken":          "the credentials were rejected: check the accessKey and secretKey secrets",
	"ExpiredToken":          "the credentials have expired: rotate the accessKey and secretKey secrets",
	"AccessDenied":          "the keys are valid but may not list buckets: grant s3:ListAllMyBuckets",
	"InvalidRegion":         "the endpoint does not serve this region: check minio[].region",
}

func (t *Target) connectError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: list buckets at %s: %w", t.name, t.endpoint, ctx.Err())
	}
	resp := minio.ToErrorResponse(err)
	if _, ok := authCodes[resp.Code]; ok && t.takesPrevious(ctx) {
		return reconcile.Permanent(t.rootNotRotated())
	}
	if hint, ok := authCodes[resp.Code]; ok {
		// Our own words, not the server's message: some S3 servers echo
		// the access key id in theirs.
		return reconcile.Permanent(fmt.Errorf("%s: authenticate at %s: %s (%s)", t.name, t.endpoint, hint, resp.Code))
	}
	if resp.Code == "AuthorizationHeaderMalformed" {
		want := resp.Region
		if want == "" {
			want = "another region"
		}
		return reconcile.Permanent(fmt.Errorf("%s: authenticate at %s: the endpoint expects region %s, the config says %s: set minio[].region", t.name, t.endpoint, want, t.region()))
	}
	if config.IsCertificateError(err) {
		// The handshake failed: no signed request was sent.
		return reconcile.Permanent(fmt.Errorf("%s: TLS to %s: server certificate not trusted, nothing sent: %w", t.name, t.endpoint, err))
	}
	// net/http and MinIO report a scheme mismatch only in words.
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return reconcile.Permanent(fmt.Errorf("%s: %s does not speak TLS: set tls: false", t.name, t.endpoint))
	}
	if strings.Contains(err.Error(), "HTTP request to an HTTPS server") {
		return reconcile.Permanent(fmt.Errorf("%s: %s speaks TLS only: set tls: true", t.name, t.endpoint))
	}
	return fmt.Errorf("%s: list buckets at %s: %w", t.name, t.endpoint, err)
}

// Close releases idle connections. It is safe to call at any time.
func (t *Target) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.transport != nil {
		t.transport.CloseIdleConnections()
	}
	return nil
}

// serverRecorder remembers the Server header of the endpoint, so the few
// MinIO-only behaviours can be told apart from other S3 servers'.
type serverRecorder struct {
	next http.RoundTripper
	name atomic.Pointer[string]
}

func (s *serverRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.next.RoundTrip(r)
	if err == nil && s.name.Load() == nil {
		if v := resp.Header.Get("Server"); v != "" {
			s.name.Store(&v)
		}
	}
	return resp, err
}

func (s *serverRecorder) server() string {
	if p := s.name.Load(); p != nil {
		return *p
	}
	return ""
}

// isMinIO reports whether the endpoint said it is MinIO.
func (t *Target) isMinIO() bool {
	return t.rt != nil && strings.HasPrefix(strings.ToLower(t.rt.server()), "minio")
}
