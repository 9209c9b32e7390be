package ocivault

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oracle/oci-go-sdk/v65/common"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/reconcile/reconciletest"
	"github.com/health-data-ai/bootstrap/internal/secrets"
	"github.com/health-data-ai/bootstrap/internal/secrets/ocivault/ocitest"
)

const (
	testVault = ocitest.VaultID
	testUser  = ocitest.User
)

var testKey = func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}()

var apiKeyConfig = ocitest.APIKeyConfig

func newTest(t *testing.T, wait time.Duration) (*Source, *ocitest.Server, *bytes.Buffer) {
	t.Helper()
	f := ocitest.New(t, &testKey.PublicKey, "")
	cfg, keyID := apiKeyConfig(t, testKey, f.URL)
	f.KeyID = keyID
	var logs bytes.Buffer
	s := New(cfg, wait, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	s.pollEvery = 20 * time.Millisecond
	return s, f, &logs
}

func TestGetVerifiedSignature(t *testing.T) {
	s, f, _ := newTest(t, 10*time.Second)
	f.Put("pg-health-admin", "s3cr3t-value-with-some-length")
	ctx := context.Background()
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := s.Get(ctx, "pg-health-admin")
	if err != nil {
		t.Fatal(err)
	}
	if c.Reveal() != "s3cr3t-value-with-some-length" {
		t.Fatalf("got a different value")
	}
	if f.Verified != 1 || f.BadSignatures != 0 {
		t.Fatalf("verified %d, bad %d", f.Verified, f.BadSignatures)
	}
}

func TestWrongKeyIsRefused(t *testing.T) {
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := ocitest.New(t, &testKey.PublicKey, "*")
	f.Put("x", "value-of-x-is-secret")
	cfg, _ := apiKeyConfig(t, other, f.URL)
	s := New(cfg, 5*time.Second, nil)
	_, err = s.Get(context.Background(), "x")
	if err == nil || f.BadSignatures == 0 {
		t.Fatalf("a request signed with another key was accepted: %v", err)
	}
	for _, want := range []string{`"x"`, testVault, "401", "signature was refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestNotFoundSaysBothCauses(t *testing.T) {
	s, _, _ := newTest(t, 5*time.Second)
	_, err := s.Get(context.Background(), "missing-one")
	if !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("want ErrNotFound, got %v", err)
	}
	for _, want := range []string{`"missing-one"`, testVault, "does not exist", "may not read it", "Allow group", "read secret-bundles", "target.vault.id = '" + testVault + "'"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestThrottledTwiceIsSurvived(t *testing.T) {
	s, f, _ := newTest(t, 30*time.Second)
	f.Put("redis-health", "redis-value-0123456789")
	f.Throttle = 2
	start := time.Now()
	c, err := s.Get(context.Background(), "redis-health")
	if err != nil {
		t.Fatal(err)
	}
	if c.Reveal() != "redis-value-0123456789" || f.Verified != 3 {
		t.Fatalf("requests %d", f.Verified)
	}
	t.Logf("two 429 answers survived in %s", time.Since(start).Round(time.Millisecond))
}

func TestFailingVaultFailsWithinWaitTimeout(t *testing.T) {
	wait := 3 * time.Second
	s, f, _ := newTest(t, wait)
	f.Put("minio-root-password", "minio-value-0123456789")
	f.Failing = 503
	start := time.Now()
	_, err := s.Get(context.Background(), "minio-root-password")
	took := time.Since(start)
	if err == nil {
		t.Fatal("no error from a failing vault")
	}
	if took > wait+time.Second {
		t.Fatalf("took %s, want about waitTimeout %s", took, wait)
	}
	if f.Verified < 3 {
		t.Errorf("only %d attempts in %s: the SDK did not retry", f.Verified, took)
	}
	for _, want := range []string{`"minio-root-password"`, testVault, "503"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	t.Logf("failed after %s and %d attempts: %v", took.Round(time.Millisecond), f.Verified, err)
}

func TestCreateWaitsWhileCreatingAndConflictIsErrExists(t *testing.T) {
	s, f, logs := newTest(t, 10*time.Second)
	f.CreatingPolls = 3
	ctx := context.Background()
	cred, err := secrets.Generate(32)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, "rabbitmq-etl", cred); err != nil {
		t.Fatal(err)
	}
	if v, _ := f.Value("rabbitmq-etl"); v != cred.Reveal() {
		t.Fatal("stored value differs")
	}
	if f.Polls("rabbitmq-etl") < 3 {
		t.Fatal("Create returned while the secret was CREATING")
	}
	err = s.Create(ctx, "rabbitmq-etl", cred)
	if !errors.Is(err, secrets.ErrExists) {
		t.Fatalf("second create: want ErrExists, got %v", err)
	}
	f.PendingDeletion["old-name"] = true
	err = s.Create(ctx, "old-name", cred)
	if err == nil || errors.Is(err, secrets.ErrExists) || !strings.Contains(err.Error(), "PENDING_DELETION") || !strings.Contains(err.Error(), "cancel-secret-deletion") {
		t.Fatalf("reserved name: %v", err)
	}
	if f.Creates != 1 {
		t.Fatalf("%d creates", f.Creates)
	}
	assertNoLeak(t, cred.Reveal(), logs.String(), err.Error())
}

// TestGenerateThroughCredentials is the first-install path: the vault has
// one secret of three, apply creates the two others once, a second run
// creates nothing and returns the same values.
func TestGenerateThroughCredentials(t *testing.T) {
	s, f, logs := newTest(t, 10*time.Second)
	f.CreatingPolls = 1
	f.Put("pg-health-admin", "existing-admin-password-0123456789")
	names := map[string]string{"pg-health-admin": "postgres[0].admin.password", "pg-health-healthapi": "postgres[0].roles[0].password", "redis-health": "redis[0].password"}
	run := func() (*secrets.Credentials, []reconcile.Result) {
		creds := secrets.NewCredentials(s, names, true, 40)
		rs := reconcile.Run(context.Background(), []reconcile.Target{creds}, reconcile.Options{Mode: reconcile.ModeApply, WaitTimeout: 10 * time.Second})
		return creds, rs
	}
	creds, rs := run()
	created := 0
	for _, r := range rs {
		if r.Status == reconcile.Failed {
			t.Fatalf("%s: %s", r.Resource, r.Error)
		}
		if r.Action == reconcile.Create {
			created++
		}
	}
	if created != 2 || f.Creates != 2 {
		t.Fatalf("created %d (vault %d), want 2", created, f.Creates)
	}
	first := creds.Resolved()
	for n := range names {
		v, ok := f.Value(n)
		if !ok || v != first[n].Reveal() {
			t.Fatalf("%s: vault and run disagree", n)
		}
		if len(v) < 32 {
			t.Fatalf("%s: %d characters", n, len(v))
		}
	}
	creds2, rs2 := run()
	for _, r := range rs2 {
		if r.Action != reconcile.Noop || r.Status != reconcile.OK {
			t.Fatalf("second run: %+v", r)
		}
	}
	if f.Creates != 2 {
		t.Fatalf("second run created secrets")
	}
	for n, c := range creds2.Resolved() {
		if !c.Equal(first[n]) {
			t.Fatalf("%s changed between runs", n)
		}
	}
	var all []string
	for _, r := range append(rs, rs2...) {
		all = append(all, fmt.Sprintf("%+v", r))
	}
	for _, c := range first {
		assertNoLeak(t, c.Reveal(), logs.String(), strings.Join(all, "\n"))
	}
}

func TestAuthModeErrorsArePermanentAndClear(t *testing.T) {
	cases := []struct {
		cfg  config.OCIVaultSource
		want string
	}{
		{config.OCIVaultSource{VaultID: testVault, Auth: "api_key", ConfigFile: "/nonexistent/config", Profile: "DEFAULT"}, "/nonexistent/config"},
		{config.OCIVaultSource{VaultID: testVault, Auth: "workload_identity"}, "OKE"},
		{config.OCIVaultSource{VaultID: testVault, Auth: "resource_principal"}, "OCI_RESOURCE_PRINCIPAL_VERSION"},
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("OCI_RESOURCE_PRINCIPAL_VERSION", "")
	os.Unsetenv("OCI_RESOURCE_PRINCIPAL_VERSION")
	for _, c := range cases {
		err := New(c.cfg, time.Second, nil).Connect(context.Background())
		if err == nil || !reconcile.IsPermanent(err) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), testVault) {
			t.Errorf("auth %s: %v (permanent %v), want it to mention %q", c.cfg.Auth, err, reconcile.IsPermanent(err), c.want)
		}
	}
}

func TestProfileIsHonoured(t *testing.T) {
	f := ocitest.New(t, &testKey.PublicKey, "")
	cfg, keyID := apiKeyConfig(t, testKey, f.URL)
	cfg.Profile = "OTHER"
	f.KeyID = strings.Replace(keyID, testUser, testUser+"x", 1)
	f.Put("a", "value-a-0123456789")
	if _, err := New(cfg, 5*time.Second, nil).Get(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
}

func assertNoLeak(t *testing.T, secret string, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if strings.Contains(s, secret) {
			t.Fatalf("a credential leaked into: %s", s)
		}
	}
}

// TestResourcePrincipal signs with a resource principal session (v2.2:
// token and key handed in through the environment, as OCI Functions and
// Container Instances do); the server checks the ST$<token> keyId and the
// signature made with the session key.
func TestResourcePrincipal(t *testing.T) {
	claims, _ := json.Marshal(map[string]any{"exp": time.Now().Add(time.Hour).Unix(), "res_tenant": ocitest.Tenancy, "res_type": "test"})
	enc := base64.RawURLEncoding
	token := enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc.EncodeToString(claims) + "." + enc.EncodeToString([]byte("sig"))
	keyFile := filepath.Join(t.TempDir(), "rp.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(testKey)}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OCI_RESOURCE_PRINCIPAL_VERSION", "2.2")
	t.Setenv("OCI_RESOURCE_PRINCIPAL_RPST", token)
	t.Setenv("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM", keyFile)
	t.Setenv("OCI_RESOURCE_PRINCIPAL_REGION", "eu-frankfurt-1")
	f := ocitest.New(t, &testKey.PublicKey, "ST$"+token)
	f.Put("rp-secret", "resource-principal-value-0123")
	s := New(config.OCIVaultSource{VaultID: testVault, Auth: "resource_principal", Endpoint: f.URL}, 5*time.Second, nil)
	c, err := s.Get(context.Background(), "rp-secret")
	if err != nil {
		t.Fatal(err)
	}
	if c.Reveal() != "resource-principal-value-0123" || f.Verified != 1 {
		t.Fatal("resource principal read failed")
	}
}

func TestMissingWithoutGenerationSaysBothCauses(t *testing.T) {
	s, _, _ := newTest(t, 5*time.Second)
	creds := secrets.NewCredentials(s, map[string]string{"nope": "redis[0].password"}, false, 32)
	rs := reconcile.Run(context.Background(), []reconcile.Target{creds}, reconcile.Options{Mode: reconcile.ModePlan, WaitTimeout: 5 * time.Second})
	if len(rs) != 1 || rs[0].Status != reconcile.Failed {
		t.Fatalf("%+v", rs)
	}
	for _, want := range []string{"nope (used at redis[0].password)", "missing IAM permission", "read secret-bundles", testVault} {
		if !strings.Contains(rs[0].Error, want) {
			t.Errorf("error %q does not contain %q", rs[0].Error, want)
		}
	}
}

func TestConformance(t *testing.T) {
	reconciletest.Run(t, func(t *testing.T) reconciletest.Env {
		s, f, _ := newTest(t, 10*time.Second)
		f.Put("pg-health-admin", "existing-admin-password-0123456789")
		names := map[string]string{"pg-health-admin": "postgres[0].admin.password", "rabbitmq-etl": "rabbitmq[0].users[0].password"}
		return reconciletest.Env{
			NewTarget: func() reconcile.Target { return secrets.NewCredentials(s, names, true, 32) },
			Snapshot: func(context.Context) (string, error) {
				v, ok := f.Value("rabbitmq-etl")
				return fmt.Sprintf("creates=%d present=%v len=%d", f.Creates, ok, len(v)), nil
			},
		}
	})
}

// TestSDKNeverDumpsBodies: even with OCI_GO_SDK_DEBUG=verbose, neither a
// created nor a read value reaches any log.
func TestSDKNeverDumpsBodies(t *testing.T) {
	s, f, logs := newTest(t, 5*time.Second)
	var sdk bytes.Buffer
	// The SDK logger is process-wide and installed once (by New, above);
	// point it here, at the level OCI_GO_SDK_DEBUG=verbose maps to.
	common.SetSDKLogger(sdkLogger{level: 2, log: slog.New(slog.NewTextHandler(&sdk, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	f.Put("a", "read-value-must-not-be-logged")
	if _, err := s.Get(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	c := credential.New("created-value-must-not-be-logged")
	if err := s.Create(context.Background(), "b", c); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sdk.String(), "Dump Request") {
		t.Fatalf("the SDK logged nothing at debug level: %q", sdk.String())
	}
	for _, v := range []string{"read-value-must-not-be-logged", "created-value-must-not-be-logged", base64.StdEncoding.EncodeToString([]byte(c.Reveal())), base64.StdEncoding.EncodeToString([]byte("read-value-must-not-be-logged"))} {
		assertNoLeak(t, v, sdk.String(), logs.String())
	}
}

// TestSDKNeverDumpsBodiesOnRetry: the SDK dumps a retried request's body at
// debug level; a CreateSecret answered 429 twice, then created, logs
// neither the value nor its base64.
func TestSDKNeverDumpsBodiesOnRetry(t *testing.T) {
	s, f, logs := newTest(t, 5*time.Second)
	var sdk bytes.Buffer
	common.SetSDKLogger(sdkLogger{level: 2, log: slog.New(slog.NewTextHandler(&sdk, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	f.Throttle = 2
	c := credential.New("created-value-after-429")
	if err := s.Create(context.Background(), "b", c); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sdk.String(), "withheld") {
		t.Fatalf("the SDK dumped no body to withhold; the retry was not exercised: %q", sdk.String())
	}
	assertNoLeak(t, c.Reveal(), sdk.String(), logs.String())
	assertNoLeak(t, base64.StdEncoding.EncodeToString([]byte(c.Reveal())), sdk.String(), logs.String())
}

// TestSDKVerboseWouldLeak is the control for TestSDKNeverDumpsBodies: at
// the SDK's verbose level (which sdkLogger never reports) bodies are dumped.
func TestSDKVerboseWouldLeak(t *testing.T) {
	s, _, _ := newTest(t, 5*time.Second)
	var sdk bytes.Buffer
	common.SetSDKLogger(sdkLogger{level: 3, log: slog.New(slog.NewTextHandler(&sdk, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	defer common.SetSDKLogger(sdkLogger{level: 0, log: slog.New(slog.DiscardHandler)})
	c := credential.New("created-value-verbose")
	if err := s.Create(context.Background(), "v", c); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sdk.String(), base64.StdEncoding.EncodeToString([]byte(c.Reveal()))) {
		t.Skip("this SDK version no longer dumps bodies at verbose level")
	}
}
