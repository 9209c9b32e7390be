// Package ocivault is the OCI Vault credential source: it reads secrets by
// name (current version) from one vault and, for generation, creates the
// missing ones in it. It owns the OCI authentication (instance principal,
// OKE workload identity, resource principal, API key), the SDK retry policy
// bounded by waitTimeout, and the error texts a user sees. It updates a
// secret that exists only to rotate it, with a new version staged PENDING
// and then promoted (stage.go); it never deletes one: a deleted name stays
// reserved in OCI for weeks, so delete-and-recreate is never an option.
package ocivault

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/oracle/oci-go-sdk/v65/common"
	"github.com/oracle/oci-go-sdk/v65/common/auth"
	ocisecrets "github.com/oracle/oci-go-sdk/v65/secrets"
	"github.com/oracle/oci-go-sdk/v65/vault"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/secrets"
)

// Source reads and creates secrets in one OCI Vault. Build it with New;
// Connect builds the OCI clients (instance principal and workload identity
// talk to the network for that, so the engine retries it).
type Source struct {
	cfg  config.OCIVaultSource
	wait time.Duration
	log  *slog.Logger

	// provider, when set, replaces the one built from cfg.Auth (tests).
	provider common.ConfigurationProvider
	// pollEvery is how often Create re-reads a CREATING secret.
	pollEvery time.Duration

	mu      sync.Mutex
	reader  *ocisecrets.SecretsClient
	manager *vault.VaultsClient
}

var (
	_ secrets.Source           = (*Source)(nil)
	_ secrets.Store            = (*Source)(nil)
	_ secrets.Connector        = (*Source)(nil)
	_ secrets.Hinter           = (*Source)(nil)
	_ secrets.MissingConfirmer = (*Source)(nil)
)

// New returns the source for cfg. waitTimeout bounds the SDK's retries of
// each call (throttling, 5xx, network errors): a vault that keeps failing
// fails the run after about that long, naming the secret and the vault.
func New(cfg config.OCIVaultSource, waitTimeout time.Duration, log *slog.Logger) *Source {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if waitTimeout <= 0 {
		waitTimeout = config.DefaultWaitTimeout
	}
	quietSDK(log)
	return &Source{cfg: cfg, wait: waitTimeout, log: log, pollEvery: 2 * time.Second}
}

// WithProvider makes the source sign with p instead of the configured auth
// mode (tests, or callers holding a provider already).
func (s *Source) WithProvider(p common.ConfigurationProvider) *Source {
	s.provider = p
	return s
}

func (s *Source) String() string { return "OCI Vault " + s.cfg.VaultID }

// Connect builds the configuration provider for the auth mode and both
// clients. Problems waiting cannot fix (a missing config file, a bad key,
// not running where the auth mode works) are permanent.
func (s *Source) Connect(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reader != nil {
		return nil
	}
	p := s.provider
	if p == nil {
		if s.cfg.Auth == "instance_principal" || s.cfg.Auth == "" {
			if err := probeInstanceMetadata(ctx); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		// The SDK builds providers without a context and retries the
		// metadata service for minutes: wait for it beside ctx, so
		// SIGTERM and --timeout still stop the run at once.
		type built struct {
			p   common.ConfigurationProvider
			err error
		}
		done := make(chan built, 1)
		go func() {
			p, err := providerFor(s.cfg)
			done <- built{p, err}
		}()
		select {
		case b := <-done:
			if b.err != nil {
				return reconcile.Permanent(fmt.Errorf("%s: auth %s: %w", s, s.cfg.Auth, b.err))
			}
			p = b.p
		case <-ctx.Done():
			return fmt.Errorf("%s: auth %s: %w", s, s.cfg.Auth, ctx.Err())
		}
	}
	rc, err := ocisecrets.NewSecretsClientWithConfigurationProvider(p)
	if err != nil {
		return reconcile.Permanent(fmt.Errorf("%s: auth %s: %w", s, s.cfg.Auth, err))
	}
	vc, err := vault.NewVaultsClientWithConfigurationProvider(p)
	if err != nil {
		return reconcile.Permanent(fmt.Errorf("%s: auth %s: %w", s, s.cfg.Auth, err))
	}
	if s.cfg.Region != "" {
		rc.SetRegion(s.cfg.Region)
		vc.SetRegion(s.cfg.Region)
	}
	if s.cfg.Endpoint != "" {
		// After SetRegion, which would overwrite it. Both services are
		// reached through the one endpoint (a private endpoint or a test
		// server); their paths (/20190301, /20180608) do not overlap.
		host := strings.TrimSuffix(s.cfg.Endpoint, "/")
		rc.Host, vc.Host = host, host
	}
	// Our own policy: the SDK's retry rules, bounded by waitTimeout rather
	// than by a fixed count. The circuit breaker is off because the policy
	// already bounds the run; an open breaker would replace the vault's own
	// error with a generic one.
	pol := retryPolicy(s.wait)
	conf := common.CustomClientConfiguration{RetryPolicy: &pol}
	rc.SetCustomClientConfiguration(conf)
	vc.SetCustomClientConfiguration(conf)
	rc.Configuration.CircuitBreaker = nil
	vc.Configuration.CircuitBreaker = nil
	s.reader, s.manager = &rc, &vc
	return nil
}

// instanceMetadata is where instance principals get their certificates.
var instanceMetadata = "http://169.254.169.254/opc/v2/instance/region"

// probeInstanceMetadata fails fast, and permanently, where no OCI instance
// metadata service answers (a laptop, CI, another cloud): the SDK would
// otherwise retry it for about two minutes before saying the same.
func probeInstanceMetadata(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, http.MethodGet, instanceMetadata, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer Oracle")
	resp, err := http.DefaultClient.Do(req)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		err = fmt.Errorf("status %s", resp.Status)
	}
	return reconcile.Permanent(fmt.Errorf("auth instance_principal: the OCI instance metadata service (%s) does not answer: %v\n"+
		"hint: instance principals work only on OCI compute instances (OKE worker nodes); elsewhere use auth: api_key, or the file or env source", instanceMetadata, err))
}

// workloadIdentity is built once per process: each instance keeps a
// connection to the token proxy open.
var (
	wiOnce     sync.Once
	wiProvider common.ConfigurationProvider
	wiErr      error
)

func providerFor(cfg config.OCIVaultSource) (common.ConfigurationProvider, error) {
	switch cfg.Auth {
	case "instance_principal", "":
		if cfg.Region != "" {
			return auth.InstancePrincipalConfigurationProviderForRegion(common.StringToRegion(cfg.Region))
		}
		return auth.InstancePrincipalConfigurationProvider()
	case "workload_identity":
		if os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
			return nil, errors.New("workload identity works only in a pod of an OKE enhanced cluster (KUBERNETES_SERVICE_HOST is not set)")
		}
		if os.Getenv("OCI_RESOURCE_PRINCIPAL_VERSION") == "" {
			return nil, errors.New("set OCI_RESOURCE_PRINCIPAL_VERSION=2.2 and OCI_RESOURCE_PRINCIPAL_REGION in the pod for OKE workload identity")
		}
		wiOnce.Do(func() { wiProvider, wiErr = auth.OkeWorkloadIdentityConfigurationProvider() })
		return wiProvider, wiErr
	case "resource_principal":
		if cfg.Region != "" {
			return auth.ResourcePrincipalConfigurationProviderForRegion(common.StringToRegion(cfg.Region))
		}
		return auth.ResourcePrincipalConfigurationProvider()
	case "api_key":
		path := expandHome(cfg.ConfigFile)
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("OCI config file: %w", err)
		}
		profile := cfg.Profile
		if profile == "" {
			profile = "DEFAULT"
		}
		p, err := common.ConfigurationProviderFromFileWithProfile(path, profile, "")
		if err != nil {
			return nil, fmt.Errorf("OCI config file %s profile %s: %w", path, profile, err)
		}
		// Validate now: the SDK reads the file lazily and would otherwise
		// fail on the first call, after retries.
		if _, err := p.KeyID(); err != nil {
			return nil, fmt.Errorf("OCI config file %s profile %s: %w", path, profile, err)
		}
		if _, err := p.PrivateRSAKey(); err != nil {
			return nil, fmt.Errorf("OCI config file %s profile %s: private key: %w", path, profile, err)
		}
		return p, nil
	}
	return nil, fmt.Errorf("unknown auth mode %q", cfg.Auth)
}

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, strings.TrimPrefix(p, "~"))
		}
	}
	return p
}

// retryPolicy retries what the SDK's default policy retries (network
// errors, 429, 409 IncorrectState/LockConflict, 5xx but 501) with capped,
// jittered exponential backoff, while less than wait has passed since the
// first attempt; no sleep reaches past wait, so a vault that keeps failing
// fails the call about wait after it started.
func retryPolicy(wait time.Duration) common.RetryPolicy {
	next := func(r common.OCIOperationResponse) time.Duration {
		d := min(250*time.Millisecond<<min(r.AttemptNumber, 6), 10*time.Second)
		d = d/2 + rand.N(d/2)
		return max(0, min(d, wait-time.Since(r.InitialAttemptTime)))
	}
	should := func(r common.OCIOperationResponse) bool {
		return common.DefaultShouldRetryOperation(r) && time.Since(r.InitialAttemptTime) < wait-100*time.Millisecond
	}
	return common.NewRetryPolicyWithOptions(
		// Start from the policy without eventual-consistency handling: that
		// one swaps in a 4-minute policy after any create in the process.
		common.ReplaceWithValuesFromRetryPolicy(common.DefaultRetryPolicyWithoutEventualConsistency()),
		common.WithUnlimitedAttempts(wait),
		common.WithShouldRetryOperation(should),
		common.WithNextDuration(next),
	)
}

func (s *Source) clients(ctx context.Context) (*ocisecrets.SecretsClient, *vault.VaultsClient, error) {
	if err := s.Connect(ctx); err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reader, s.manager, nil
}

// Get reads the current version of the secret named name. A missing secret
// is ErrNotFound; the error then also says it may be a missing IAM policy,
// because OCI answers both with the same 404.
func (s *Source) Get(ctx context.Context, name string) (credential.Credential, error) {
	b, err := s.bundle(ctx, name, ocisecrets.GetSecretBundleByNameStageCurrent)
	if err != nil {
		return credential.Credential{}, s.explain("read", name, err)
	}
	return s.current(name, b)
}

// current is the value of name's CURRENT bundle b.
func (s *Source) current(name string, b ocisecrets.SecretBundle) (credential.Credential, error) {
	v, err := decode(b)
	if err != nil {
		return credential.Credential{}, fmt.Errorf("read secret %q in %s: %w", name, s, err)
	}
	if len(v) == 0 {
		return credential.Credential{}, fmt.Errorf("read secret %q in %s: current version is empty: %w", name, s, secrets.ErrNotFound)
	}
	return credential.New(string(v)), nil
}

// Previous reads the PREVIOUS version of the secret, which OCI keeps when a
// new version becomes CURRENT: the admin credential a data service may
// still take. No previous version (or no secret) is ErrNotFound.
func (s *Source) Previous(ctx context.Context, name string) (credential.Credential, error) {
	return s.inStage(ctx, name, ocisecrets.GetSecretBundleByNameStagePrevious, "previous")
}

// Create stores a new secret with one version and waits while OCI reports
// it CREATING. A name another writer created first is ErrExists, returned
// once that secret's value can be read (see taken); a name held by a
// secret being deleted is an error saying how to restore it.
func (s *Source) Create(ctx context.Context, name string, c credential.Credential) error {
	_, vc, err := s.clients(ctx)
	if err != nil {
		return err
	}
	if s.cfg.CompartmentID == "" || s.cfg.KeyID == "" {
		return fmt.Errorf("create secret %q in %s: secrets.source.ocivault.compartmentId and keyId are needed to create secrets", name, s)
	}
	wctx, cancel := context.WithTimeout(ctx, s.wait+5*time.Second)
	defer cancel()
	resp, err := vc.CreateSecret(wctx, vault.CreateSecretRequest{
		CreateSecretDetails: vault.CreateSecretDetails{
			CompartmentId: common.String(s.cfg.CompartmentID),
			VaultId:       common.String(s.cfg.VaultID),
			KeyId:         common.String(s.cfg.KeyID),
			SecretName:    common.String(name),
			Description:   common.String("generated by bootstrap"),
			FreeformTags:  map[string]string{"managed-by": "bootstrap"},
			SecretContent: vault.Base64SecretContentDetails{
				Content: common.String(base64.StdEncoding.EncodeToString([]byte(c.Reveal()))),
				Stage:   vault.SecretContentDetailsStageCurrent,
			},
		},
		// The same token on every retry of this call: OCI then creates the
		// secret once even if an answer is lost.
		OpcRetryToken: common.String(common.RetryToken()),
	})
	if err != nil {
		if se, ok := common.IsServiceError(err); ok && nameTaken(se) {
			return s.taken(ctx, vc, name, se, err)
		}
		return s.explain("create", name, err)
	}
	if resp.LifecycleState == vault.SecretLifecycleStateActive || resp.Id == nil {
		return nil
	}
	return s.waitActive(wctx, vc, "create", name, *resp.Id)
}

// waitActive polls a secret until it leaves CREATING or UPDATING; op says
// what made it so.
func (s *Source) waitActive(ctx context.Context, vc *vault.VaultsClient, op, name, id string) error {
	for {
		r, err := vc.GetSecret(ctx, vault.GetSecretRequest{SecretId: common.String(id)})
		if err != nil {
			return s.explain(op, name, err)
		}
		switch r.LifecycleState {
		case vault.SecretLifecycleStateActive:
			return nil
		case vault.SecretLifecycleStateCreating, vault.SecretLifecycleStateUpdating:
			s.log.Info("waiting for vault secret", "secret", name, "state", string(r.LifecycleState))
		default:
			detail := ""
			if r.LifecycleDetails != nil {
				detail = ": " + *r.LifecycleDetails
			}
			return fmt.Errorf("%s secret %q in %s: state %s%s", op, name, s, r.LifecycleState, detail)
		}
		t := time.NewTimer(s.pollEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s secret %q in %s: still %s after %s: %w", op, name, s, r.LifecycleState, s.wait, ctx.Err())
		case <-t.C:
		}
	}
}

// explain turns an SDK error into one line naming the secret and the vault.
// OCI answers 404 NotAuthorizedOrNotFound both for a missing secret and for
// a missing permission, so that case says both and gives the policy.
func (s *Source) explain(op, name string, err error) error {
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s secret %q in %s: %w", op, name, s, err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, common.DeadlineExceededByBackoff) {
		return fmt.Errorf("%s secret %q in %s: no answer within waitTimeout %s: %w", op, name, s, s.wait, err)
	}
	se, ok := common.IsServiceError(err)
	if !ok {
		return fmt.Errorf("%s secret %q in %s: %w", op, name, s, err)
	}
	code, status := se.GetCode(), se.GetHTTPStatusCode()
	base := fmt.Sprintf("%s secret %q in %s: %d %s", op, name, s, status, code)
	switch {
	case status == http.StatusNotFound && op == "read":
		return &notFound{msg: base + ": the secret does not exist in this vault, or this principal may not read it; " +
			"if it exists, grant: " + s.policy("read secret-bundles")}
	case status == http.StatusNotFound || status == http.StatusUnauthorized && code == "NotAuthorizedOrNotFound":
		return fmt.Errorf("%s: the vault, compartment or key does not exist, or this principal may not use it; grant: %s",
			base, s.policy("manage secret-family"))
	case status == http.StatusUnauthorized:
		return fmt.Errorf("%s: the request signature was refused (check the auth mode %q, the key and the clock): %s", base, s.cfg.Auth, se.GetMessage())
	case status == http.StatusTooManyRequests || status >= 500:
		return fmt.Errorf("%s: still failing, retries stopped within waitTimeout %s: %s", base, s.wait, se.GetMessage())
	}
	return fmt.Errorf("%s: %s", base, se.GetMessage())
}

// NotFoundHint says that OCI's 404 may also be a missing permission.
func (s *Source) NotFoundHint() string {
	return "OCI answers the same for a missing secret and for a missing IAM permission; if they exist, grant: " + s.policy("read secret-bundles")
}

// policy is the IAM statement the principal of the auth mode needs.
func (s *Source) policy(verb string) string {
	who := "dynamic-group <the group of your instances>"
	switch s.cfg.Auth {
	case "workload_identity":
		who = "any-user"
		verb += " in compartment <compartment> where all {request.principal.type = 'workload', request.principal.namespace = '<namespace>', request.principal.service_account = '<service account>'}"
		return "Allow " + who + " to " + verb
	case "resource_principal":
		who = "dynamic-group <the group of your resource>"
	case "api_key":
		who = "group <your user's group>"
	}
	where := "compartment <compartment>"
	if s.cfg.CompartmentID != "" {
		where = "compartment id " + s.cfg.CompartmentID
	}
	return fmt.Sprintf("Allow %s to %s in %s where target.vault.id = '%s'", who, verb, where, s.cfg.VaultID)
}

// notFound is ErrNotFound with the full explanation as its text.
type notFound struct{ msg string }

func (e *notFound) Error() string        { return e.msg }
func (e *notFound) Is(target error) bool { return target == secrets.ErrNotFound }

// sdkLogger replaces the SDK's own logger: at OCI_GO_SDK_DEBUG=verbose the
// SDK dumps request and response bodies, which hold secret values, and even
// at debug it dumps a request's body when it retries one (a CreateSecret
// after a 429 carries the new credential, base64-encoded). This one never
// goes past the debug level, withholds every message that carries a body,
// and writes through slog.
type sdkLogger struct {
	level int
	log   *slog.Logger
}

func (l sdkLogger) LogLevel() int { return l.level }

func (l sdkLogger) Log(level int, format string, v ...interface{}) error {
	if level > l.level {
		return nil
	}
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	if strings.Contains(strings.ToLower(msg), "body") {
		// "Dump Request Body", "Dump Response Body" and whatever a later
		// SDK names so: what follows is a payload, never safe to print.
		first, _, _ := strings.Cut(msg, ":")
		msg = first + ": (withheld: it may hold a secret value)"
	}
	l.log.Debug("oci sdk", "message", msg)
	return nil
}

var sdkLogOnce sync.Once

// quietSDK installs sdkLogger once per process.
func quietSDK(log *slog.Logger) {
	sdkLogOnce.Do(func() {
		level := 0 // no logging
		if v, ok := os.LookupEnv("OCI_GO_SDK_DEBUG"); ok && strings.ToLower(v) != "null" {
			level = 2 // debug: never verbose, which dumps bodies
		}
		common.SetSDKLogger(sdkLogger{level: level, log: log})
	})
}
