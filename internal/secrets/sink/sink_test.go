package sink

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	sscrypto "github.com/bitnami-labs/sealed-secrets/pkg/crypto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/secrets/seal"
	"github.com/health-data-ai/bootstrap/internal/secrets/seal/sealtest"
)

// controllerKey is a sealing key pair like the controller's, with its
// certificate written to a file.
func controllerKey(t testing.TB) (*rsa.PrivateKey, string) {
	t.Helper()
	priv, cert, err := sscrypto.GeneratePrivateKeyAndCert(2048, time.Hour, "sealed-secrets-test")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return priv, p
}

func testCreds() credential.Resolved {
	return credential.Resolved{
		"pg-health-admin":     credential.New("Adm1nPassw0rdAdm1nPassw0rdAdm1nX"),
		"pg-health-healthapi": credential.New("Ap1Passw0rdAp1Passw0rdAp1Passw0r"),
		"redis-health":        credential.New("Red1sPassw0rdRed1sPassw0rdRed1sP"),
	}
}

func testConfig(out config.Output) config.Secrets {
	if out.Sealing.Scope == "" {
		out.Sealing.Scope = "strict"
	}
	if out.Sealing.ControllerName == "" {
		out.Sealing.ControllerName, out.Sealing.ControllerNamespace = "sealed-secrets", "kube-system"
	}
	return config.Secrets{
		Output: out,
		KubernetesSecrets: []config.KubernetesSecret{
			{Name: "postgresql-health-secret", Data: map[string]string{"postgres-password": "pg-health-admin", "password": "pg-health-healthapi"}},
			{Name: "redis-health-secret", Data: map[string]string{"redis-password": "redis-health"}},
		},
	}
}

// run plans or applies t and returns the results, failing on errors.
func run(t *testing.T, tg reconcile.Target, mode reconcile.Mode) []reconcile.Result {
	t.Helper()
	rs := reconcile.Run(context.Background(), []reconcile.Target{tg}, reconcile.Options{Mode: mode, WaitTimeout: 30 * time.Second})
	for _, r := range rs {
		if r.Status == reconcile.Failed {
			t.Fatalf("%s: %s", r.Resource, r.Error)
		}
	}
	return rs
}

func count(rs []reconcile.Result, a reconcile.Action) int {
	n := 0
	for _, r := range rs {
		if r.Action == a {
			n++
		}
	}
	return n
}

func assertNoLeak(t *testing.T, creds credential.Resolved, texts ...string) {
	t.Helper()
	for _, c := range creds {
		for _, s := range texts {
			if strings.Contains(s, c.Reveal()) {
				t.Fatalf("a credential leaked into: %.200s", s)
			}
		}
	}
}

func TestDirIsIdempotentAndUnseals(t *testing.T) {
	priv, certFile := controllerKey(t)
	dir := t.TempDir()
	cfg := testConfig(config.Output{Type: "sealed", Target: "dir", Dir: dir, Namespace: "health-data", Sealing: config.Sealing{Cert: certFile}})
	creds := testCreds()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	rs := run(t, New(cfg, creds, time.Minute, log), reconcile.ModePlan)
	if count(rs, reconcile.Create) != 2 {
		t.Fatalf("plan: %+v", rs)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatal("plan wrote files")
	}
	rs = run(t, New(cfg, creds, time.Minute, log), reconcile.ModeApply)
	if count(rs, reconcile.Create) != 2 || rs[0].Resource != "secret/health-data/postgresql-health-secret" {
		t.Fatalf("apply: %+v", rs)
	}
	first := map[string][]byte{}
	for _, ks := range cfg.KubernetesSecrets {
		p := filepath.Join(dir, ks.Name+".yaml")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(p)
		if st.Mode().Perm() != 0o644 {
			t.Fatalf("%s: mode %v", p, st.Mode())
		}
		first[p] = b
		assertNoLeak(t, creds, string(b))
		var ss ssv1alpha1.SealedSecret
		if err := yaml.Unmarshal(b, &ss); err != nil {
			t.Fatal(err)
		}
		if ss.APIVersion != "bitnami.com/v1alpha1" || ss.Kind != "SealedSecret" || ss.Namespace != "health-data" {
			t.Fatalf("%s: %s %s %s", p, ss.APIVersion, ss.Kind, ss.Namespace)
		}
		sec, err := sealtest.Unseal(&ss, priv)
		if err != nil {
			t.Fatal(err)
		}
		for key, name := range ks.Data {
			if string(sec.Data[key]) != creds[name].Reveal() {
				t.Fatalf("%s: key %s differs after unsealing", ks.Name, key)
			}
		}
	}
	// Second run: nothing to do, files byte-identical, not even rewritten.
	before := map[string]time.Time{}
	for p := range first {
		st, _ := os.Stat(p)
		before[p] = st.ModTime()
	}
	time.Sleep(20 * time.Millisecond)
	rs = run(t, New(cfg, creds, time.Minute, log), reconcile.ModeApply)
	if count(rs, reconcile.Noop) != 2 {
		t.Fatalf("second apply: %+v", rs)
	}
	for p, b := range first {
		now, _ := os.ReadFile(p)
		st, _ := os.Stat(p)
		if !bytes.Equal(now, b) || !st.ModTime().Equal(before[p]) {
			t.Fatalf("%s was rewritten", p)
		}
	}
	// A changed value re-seals that Secret only.
	creds2 := testCreds()
	creds2["redis-health"] = credential.New("An0therRed1sPassw0rdAn0therRed1s")
	rs = run(t, New(cfg, creds2, time.Minute, log), reconcile.ModeApply)
	if rs[0].Action != reconcile.Noop || rs[1].Action != reconcile.Update || !strings.Contains(rs[1].Detail, "values changed") {
		t.Fatalf("changed value: %+v", rs)
	}
	assertNoLeak(t, creds, logs.String(), fmt.Sprintf("%+v", rs))
	assertNoLeak(t, creds2, logs.String())
}

func TestPlainNeverGoesToFiles(t *testing.T) {
	cfg := testConfig(config.Output{Type: "plain", Target: "dir", Dir: t.TempDir(), Namespace: "health-data"})
	err := New(cfg, testCreds(), time.Minute, nil).Connect(context.Background())
	if err == nil || !reconcile.IsPermanent(err) || !strings.Contains(err.Error(), "never written to files") {
		t.Fatalf("plain to dir: %v", err)
	}
}

func TestMustBeLocal(t *testing.T) {
	for host, local := range map[string]bool{
		"https://127.0.0.1:6443":                  true,
		"https://[::1]:6443":                      true,
		"https://localhost:6443":                  true,
		"https://kubernetes.docker.internal:6443": true,
		"https://10.0.0.1:6443":                   false,
		"https://k8s.example.com":                 false,
		"https://kubernetes.default.svc":          false,
	} {
		if err := mustBeLocal(host); (err == nil) != local {
			t.Errorf("%s: %v", host, err)
		}
	}
}

func TestMissingCredentialIsNamedNotLeaked(t *testing.T) {
	_, certFile := controllerKey(t)
	cfg := testConfig(config.Output{Type: "sealed", Target: "dir", Dir: t.TempDir(), Namespace: "health-data", Sealing: config.Sealing{Cert: certFile}})
	creds := testCreds()
	delete(creds, "redis-health")
	tg := New(cfg, creds, time.Minute, nil)
	if err := tg.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := tg.Plan(context.Background())
	if err == nil || !strings.Contains(err.Error(), `secret/health-data/redis-health-secret key redis-password: secret "redis-health"`) {
		t.Fatalf("%v", err)
	}
}

func TestMarshalYAMLIsStable(t *testing.T) {
	_, certFile := controllerKey(t)
	cert, err := seal.LoadCert(context.Background(), certFile, seal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ss, err := seal.Seal(cert, seal.Spec{Name: "a", Namespace: "n", Data: map[string]credential.Credential{"k": credential.New("v")}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := MarshalYAML(ss)
	again := *ss
	b, _ := MarshalYAML(&again)
	if !equalYAML(a, b) || strings.Contains(string(a), "creationTimestamp") || strings.Contains(string(a), "status") {
		t.Fatalf("yaml:\n%s", a)
	}
	_ = corev1.SecretTypeOpaque
	_ = metav1.Now
}

func slogTo(w *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func equalYAML(a, b []byte) bool { return bytes.Equal(bytes.TrimSpace(a), bytes.TrimSpace(b)) }

// TestConnectCertRules: the sink passes sealing.certSHA256 to every
// source, fails at once (permanently) on a refused certificate, and warns
// when the certificate came over plain http from a loopback address.
func TestConnectCertRules(t *testing.T) {
	_, certFile := controllerKey(t)
	pemCert, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(pemCert)
	pin := fmt.Sprintf("%x", sha256.Sum256(b.Bytes))
	_, otherFile := controllerKey(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(pemCert) }))
	defer srv.Close()
	for _, c := range []struct {
		name, cert, pin string
		want            string // "" = connects
		warn            bool
	}{
		{"file, no pin", certFile, "", "", false},
		{"file, right pin", certFile, pin, "", false},
		{"file, wrong pin", otherFile, pin, "does not match the pinned secrets.output.sealing.certSHA256", false},
		{"loopback http, right pin", srv.URL + "/v1/cert.pem", pin, "", true},
		{"loopback http, wrong pin", srv.URL + "/v1/cert.pem", strings.Repeat("ab", 32), "does not match the pinned", false},
		{"http elsewhere", "http://sealed-secrets.kube-system.svc:8080/v1/cert.pem", "", "plain http is allowed only to a loopback address", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			cfg := testConfig(config.Output{Type: "sealed", Target: "dir", Dir: t.TempDir(), Namespace: "health-data", Sealing: config.Sealing{Cert: c.cert, CertSHA256: c.pin}})
			err := New(cfg, testCreds(), time.Minute, slogTo(&logs)).Connect(context.Background())
			if c.want == "" && err != nil {
				t.Fatal(err)
			}
			if c.want != "" && (err == nil || !reconcile.IsPermanent(err) || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("got %v, want a permanent error with %q", err, c.want)
			}
			if warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "plain http"); warned != c.warn {
				t.Fatalf("warned %v, want %v:\n%s", warned, c.warn, logs.String())
			}
		})
	}
}
