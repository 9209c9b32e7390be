package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sealedclient "github.com/bitnami-labs/sealed-secrets/pkg/client/clientset/versioned"
	sscrypto "github.com/bitnami-labs/sealed-secrets/pkg/crypto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/secrets/ocivault/ocitest"
	"github.com/health-data-ai/bootstrap/internal/secrets/sink/sinktest"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// vaultWorld is an OCI Vault (loopback, signature-verifying) holding some
// of the platform's credentials, and a Sealed Secrets key pair.
type vaultWorld struct {
	t        *testing.T
	dir      string
	vault    *ocitest.Server
	ociKey   *rsa.PrivateKey
	sealKey  *rsa.PrivateKey
	certFile string
	cfgFile  string
	outputs  bytes.Buffer
}

func newVaultWorld(t *testing.T, waitTimeout string) *vaultWorld {
	t.Helper()
	w := &vaultWorld{t: t, dir: t.TempDir()}
	var err error
	if w.ociKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	w.vault = ocitest.New(t, &w.ociKey.PublicKey, "")
	src, keyID := ocitest.APIKeyConfig(t, w.ociKey, w.vault.URL)
	w.vault.KeyID = keyID
	w.vault.Put("pg-health-admin", "Existing-Admin-Password-In-The-Vault-0123")
	priv, cert, err := sscrypto.GeneratePrivateKeyAndCert(2048, time.Hour, "sealed-secrets-e2e")
	if err != nil {
		t.Fatal(err)
	}
	w.sealKey = priv
	w.certFile = filepath.Join(w.dir, "cert.pem")
	if err := os.WriteFile(w.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`version: 1
defaults: {waitTimeout: %s}
secrets:
  source:
    type: ocivault
    ocivault:
      vaultId: %s
      compartmentId: %s
      keyId: %s
      auth: api_key
      configFile: %s
      profile: DEFAULT
      endpoint: %s
  generate: {enabled: true, length: 32}
  output:
    type: sealed
    target: dir
    dir: %s
    namespace: health-data
    sealing: {cert: %s}
  kubernetesSecrets:
    - name: postgresql-health-secret
      data: {postgres-password: pg-health-admin, password: pg-health-healthapi}
    - name: redis-health-secret
      data: {redis-password: redis-health}
`, waitTimeout, src.VaultID, src.CompartmentID, src.KeyID, src.ConfigFile, src.Endpoint, filepath.Join(w.dir, "sealed"), w.certFile)
	w.cfgFile = filepath.Join(w.dir, "bootstrap.yaml")
	if err := os.WriteFile(w.cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return w
}

// apply runs `bootstrap apply --phase secrets -o json` and returns the
// exit code and the report.
func (w *vaultWorld) apply(extra ...string) (int, reconcile.Report) {
	w.t.Helper()
	var stdout, stderr bytes.Buffer
	args := append([]string{"apply", "-f", w.cfgFile, "--phase", "secrets", "-o", "json"}, extra...)
	code := run(context.Background(), args, &stdout, &stderr)
	w.outputs.Write(stdout.Bytes())
	w.outputs.Write(stderr.Bytes())
	var r reconcile.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		w.t.Fatalf("report: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	return code, r
}

func (w *vaultWorld) files() map[string][]byte {
	out := map[string][]byte{}
	entries, _ := os.ReadDir(filepath.Join(w.dir, "sealed"))
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(w.dir, "sealed", e.Name()))
		if err != nil {
			w.t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// TestSecretsPhaseVaultToDir is the first install as a new user would try
// it: a vault holding one credential of three, generation on, files for
// GitOps; then a second run that changes nothing.
func TestSecretsPhaseVaultToDir(t *testing.T) {
	w := newVaultWorld(t, "30s")
	code, r := w.apply()
	if code != 0 || !r.OK {
		t.Fatalf("exit %d: %+v\n%s", code, r, w.outputs.String())
	}
	if r.Summary.Create != 4 || w.vault.Creates != 2 {
		t.Fatalf("summary %+v, vault creates %d; want 2 vault secrets and 2 files created", r.Summary, w.vault.Creates)
	}
	values := map[string]string{}
	for _, n := range []string{"pg-health-admin", "pg-health-healthapi", "redis-health"} {
		v, ok := w.vault.Value(n)
		if !ok || len(v) < 32 {
			t.Fatalf("%s: in vault %v, %d characters", n, ok, len(v))
		}
		values[n] = v
	}
	files := w.files()
	if len(files) != 2 {
		t.Fatalf("files: %v", files)
	}
	want := map[string]map[string]string{
		"postgresql-health-secret.yaml": {"postgres-password": values["pg-health-admin"], "password": values["pg-health-healthapi"]},
		"redis-health-secret.yaml":      {"redis-password": values["redis-health"]},
	}
	kubeseal := ""
	if p := testenv.Getenv("BOOTSTRAP_TEST_KUBESEAL"); p != "" {
		kubeseal = p
	} else if testenv.Required() {
		t.Fatal("BOOTSTRAP_TEST_KUBESEAL is not set (run scripts/testenv.sh up kube)")
	}
	keyFile := filepath.Join(w.dir, "sealing.key")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(w.sealKey)}), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		for _, v := range values {
			if strings.Contains(string(b), v) {
				t.Fatalf("%s holds a credential in clear", name)
			}
		}
		if kubeseal == "" {
			t.Log("kubeseal not available: recovery-unseal skipped")
			continue
		}
		// kubeseal, not our code, unseals the file with the private key.
		cmd := exec.Command(kubeseal, "--recovery-unseal", "--recovery-private-key", keyFile, "-o", "json")
		cmd.Stdin = bytes.NewReader(b)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("kubeseal --recovery-unseal %s: %v: %s", name, err, errb.String())
		}
		var sec corev1.Secret
		if err := json.Unmarshal(out.Bytes(), &sec); err != nil {
			t.Fatal(err)
		}
		if sec.Namespace != "health-data" || len(sec.Data) != len(want[name]) {
			t.Fatalf("%s: namespace %q, %d keys", name, sec.Namespace, len(sec.Data))
		}
		for k, v := range want[name] {
			if string(sec.Data[k]) != v {
				t.Fatalf("%s: key %s is not the vault's value", name, k)
			}
		}
	}

	// Second run: no new vault secret, files byte-identical, nothing changed.
	code, r = w.apply()
	if code != 0 || r.Summary.Create+r.Summary.Update+r.Summary.Delete != 0 || w.vault.Creates != 2 {
		t.Fatalf("second run: exit %d, %+v, vault creates %d", code, r.Summary, w.vault.Creates)
	}
	for name, b := range w.files() {
		if !bytes.Equal(b, files[name]) {
			t.Fatalf("%s changed on the second run", name)
		}
	}
	// plan lists nothing to do either.
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"plan", "-f", w.cfgFile, "--phase", "secrets"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "No changes") {
		t.Fatalf("plan: %d %s %s", code, stdout.String(), stderr.String())
	}
	w.outputs.Write(stdout.Bytes())
	w.outputs.Write(stderr.Bytes())
	for _, v := range values {
		if strings.Contains(w.outputs.String(), v) {
			t.Fatal("a credential appears in the output")
		}
	}
}

func TestSecretsPhaseSurvivesThrottling(t *testing.T) {
	w := newVaultWorld(t, "30s")
	w.vault.Do(func(s *ocitest.Server) { s.Throttle = 2 })
	if code, r := w.apply(); code != 0 || !r.OK {
		t.Fatalf("exit %d: %+v\n%s", code, r, w.outputs.String())
	}
}

func TestSecretsPhaseFailingVaultExits1InTime(t *testing.T) {
	w := newVaultWorld(t, "4s")
	w.vault.Do(func(s *ocitest.Server) { s.Failing = 500 })
	start := time.Now()
	code, r := w.apply()
	took := time.Since(start)
	if code != 1 || r.OK {
		t.Fatalf("exit %d", code)
	}
	if took > 4*time.Second+1500*time.Millisecond {
		t.Fatalf("took %s with waitTimeout 4s", took)
	}
	out := w.outputs.String()
	for _, want := range []string{`secret \"pg-health-admin\"`, ocitest.VaultID, "500"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output does not name %s:\n%s", want, out)
		}
	}
	if len(w.files()) != 0 {
		t.Fatal("files were written although the credentials were not resolved")
	}
	t.Logf("failed after %s", took.Round(time.Millisecond))
}

// TestSecretsPhaseVaultToCluster: the same vault, target cluster against
// the real API server, the real controller unsealing (output.wait), then a
// second run and verify that change nothing.
func TestSecretsPhaseVaultToCluster(t *testing.T) {
	kube := testenv.Kube(t)
	rc, err := clientcmd.BuildConfigFromFlags("", kube.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kc := kubernetes.NewForConfigOrDie(rc)
	ctx := context.Background()
	ns := testenv.Unique("cli-")
	if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kc.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	certURL := sinktest.Controller(t, kube.Kubeconfig, ns)
	t.Setenv("KUBECONFIG", kube.Kubeconfig)

	w := newVaultWorld(t, "60s")
	b, _ := os.ReadFile(w.cfgFile)
	cfg := strings.Replace(string(b), "    target: dir\n", "    target: cluster\n    wait: true\n", 1)
	cfg = strings.Replace(cfg, "namespace: health-data", "namespace: "+ns, 1)
	cfg = strings.Replace(cfg, "sealing: {cert: "+w.certFile+"}", "sealing: {cert: "+certURL+"}", 1)
	if err := os.WriteFile(w.cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	code, r := w.apply()
	if code != 0 || r.Summary.Create != 4 {
		t.Fatalf("exit %d: %+v\n%s", code, r.Summary, w.outputs.String())
	}
	versions := map[string]string{}
	for name, keys := range map[string]map[string]string{
		"postgresql-health-secret": {"postgres-password": "pg-health-admin", "password": "pg-health-healthapi"},
		"redis-health-secret":      {"redis-password": "redis-health"},
	} {
		s, err := kc.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the controller made no Secret %s: %v", name, err)
		}
		for k, secret := range keys {
			v, _ := w.vault.Value(secret)
			if string(s.Data[k]) != v {
				t.Fatalf("%s/%s is not the vault's value", name, k)
			}
		}
		ss, err := sealedclient.NewForConfigOrDie(rc).BitnamiV1alpha1().SealedSecrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		versions[name] = ss.ResourceVersion
	}
	code, r = w.apply()
	if code != 0 || r.Summary.Create+r.Summary.Update+r.Summary.Delete != 0 {
		t.Fatalf("second run: exit %d %+v", code, r.Summary)
	}
	for name, v := range versions {
		ss, _ := sealedclient.NewForConfigOrDie(rc).BitnamiV1alpha1().SealedSecrets(ns).Get(ctx, name, metav1.GetOptions{})
		if ss.ResourceVersion != v {
			t.Fatalf("%s: resourceVersion changed on an unchanged run", name)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"verify", "-f", w.cfgFile, "--phase", "secrets"}, &stdout, &stderr); code != 0 {
		t.Fatalf("verify: %d %s %s", code, stdout.String(), stderr.String())
	}
	w.outputs.Write(stdout.Bytes())
	w.outputs.Write(stderr.Bytes())
	for _, n := range []string{"pg-health-admin", "pg-health-healthapi", "redis-health"} {
		if v, _ := w.vault.Value(n); strings.Contains(w.outputs.String(), v) {
			t.Fatal("a credential appears in the output")
		}
	}
}
