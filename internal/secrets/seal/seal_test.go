package seal

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	sscrypto "github.com/bitnami-labs/sealed-secrets/pkg/crypto"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/secrets/seal/sealtest"
	"k8s.io/client-go/kubernetes/scheme"
)

// testCert returns a controller-like key pair and its PEM certificate.
func testCert(t testing.TB) (*rsa.PrivateKey, []byte) {
	t.Helper()
	priv, cert, err := sscrypto.GeneratePrivateKeyAndCert(2048, time.Hour, "sealed-secrets-test")
	if err != nil {
		t.Fatal(err)
	}
	return priv, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

func spec(scope Scope) Spec {
	return Spec{
		Name: "postgresql-health-secret", Namespace: "health-data", Scope: scope,
		Data: map[string]credential.Credential{
			"postgres-password": credential.New("admin-Pa55word-0123456789abcdef"),
			"password":          credential.New("api-Pa55word-0123456789abcdef"),
		},
	}
}

func TestSealRoundTripEveryScope(t *testing.T) {
	priv, pemCert := testCert(t)
	cert, err := ParseCert(pemCert, "test", Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, scope := range []Scope{StrictScope, NamespaceWideScope, ClusterWideScope} {
		t.Run(scope.String(), func(t *testing.T) {
			sp := spec(scope)
			ss, err := Seal(cert, sp)
			if err != nil {
				t.Fatal(err)
			}
			if ss.APIVersion != "bitnami.com/v1alpha1" || ss.Kind != "SealedSecret" {
				t.Fatalf("type meta %q %q", ss.APIVersion, ss.Kind)
			}
			if ss.Labels[LabelManagedBy] != ManagedBy || ss.Spec.Template.Labels[LabelManagedBy] != ManagedBy {
				t.Fatalf("labels %v / %v", ss.Labels, ss.Spec.Template.Labels)
			}
			if ss.Scope() != scope {
				t.Fatalf("scope %v", ss.Scope())
			}
			sec, err := sealtest.Unseal(ss, priv)
			if err != nil {
				t.Fatal(err)
			}
			for k, c := range sp.Data {
				if string(sec.Data[k]) != c.Reveal() {
					t.Fatalf("key %s differs after unsealing", k)
				}
			}
			if d, _ := Diff(ss, cert, sp); d != "" {
				t.Fatalf("fresh seal differs: %s", d)
			}
			// The scope is enforced: a strict secret moved elsewhere does not unseal.
			moved := deepCopy(t, ss)
			moved.Name, moved.Namespace = "other", "elsewhere"
			_, err = sealtest.Unseal(moved, priv)
			if scope == ClusterWideScope && err != nil {
				t.Fatalf("cluster-wide secret did not unseal elsewhere: %v", err)
			}
			if scope != ClusterWideScope && err == nil {
				t.Fatalf("%s secret unsealed under another name and namespace", scope.String())
			}
			// Nothing in the object is the plaintext.
			b, _ := json.Marshal(ss)
			for _, c := range sp.Data {
				if strings.Contains(string(b), c.Reveal()) {
					t.Fatal("plaintext in the sealed object")
				}
			}
		})
	}
}

func TestDiff(t *testing.T) {
	_, pemCert := testCert(t)
	cert, _ := ParseCert(pemCert, "a", Options{})
	_, pemCert2 := testCert(t)
	cert2, _ := ParseCert(pemCert2, "b", Options{})
	base := spec(StrictScope)
	live, err := Seal(cert, base)
	if err != nil {
		t.Fatal(err)
	}
	changed := spec(StrictScope)
	changed.Data["password"] = credential.New("another-value-0123456789")
	moreKeys := spec(StrictScope)
	moreKeys.Data["extra"] = credential.New("x")
	cases := []struct {
		name string
		cert *Cert
		sp   Spec
		want string
	}{
		{"same", cert, base, ""},
		{"value", cert, changed, "values changed"},
		{"keys", cert, moreKeys, "keys password,postgres-password -> extra,password,postgres-password"},
		{"new controller key", cert2, base, "another controller key"},
		{"scope", cert, spec(NamespaceWideScope), "scope strict -> namespace-wide"},
	}
	for _, c := range cases {
		d, err := Diff(live, c.cert, c.sp)
		if err != nil {
			t.Fatal(err)
		}
		if c.want == "" && d != "" || c.want != "" && !strings.Contains(d, c.want) {
			t.Errorf("%s: diff %q, want %q", c.name, d, c.want)
		}
	}
	// A hash annotation that is missing or forged means re-seal.
	forged := deepCopy(t, live)
	forged.Annotations[AnnotationDataHash] = "$argon2id$v=19$m=999999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
	if d, _ := Diff(forged, cert, base); !strings.Contains(d, "no usable data hash") {
		t.Errorf("forged hash: %q", d)
	}
}

func TestHashIsSaltedAndSlow(t *testing.T) {
	data := map[string][]byte{"a": []byte("same")}
	h1, _ := HashData(data)
	h2, _ := HashData(data)
	if h1 == h2 {
		t.Fatal("two hashes of the same data are equal: no salt")
	}
	if !strings.HasPrefix(h1, "$argon2id$v=19$m=65536,t=3,p=1$") {
		t.Fatalf("hash %q", h1)
	}
	for _, h := range []string{h1, h2} {
		if ok, err := MatchHash(h, data); !ok || err != nil {
			t.Fatalf("match: %v %v", ok, err)
		}
	}
	if ok, _ := MatchHash(h1, map[string][]byte{"a": []byte("other")}); ok {
		t.Fatal("different data matched")
	}
	// Length prefixes: moving bytes between key and value changes the hash.
	if ok, _ := MatchHash(h1, map[string][]byte{"as": []byte("ame")}); ok {
		t.Fatal("ambiguous encoding")
	}
}

func TestLoadCertFileAndURL(t *testing.T) {
	_, pemCert := testCert(t)
	path := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(path, pemCert, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/cert.pem" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(pemCert)
	}))
	defer srv.Close()
	a, err := LoadCert(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadCert(context.Background(), srv.URL+"/v1/cert.pem", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Fingerprint != b.Fingerprint || a.Fingerprint == "" || a.SHA256 != b.SHA256 {
		t.Fatal("fingerprints differ")
	}
	// The test server is on 127.0.0.1: plain http is allowed there, and
	// said so for the caller's warning.
	if a.PlainHTTP || !b.PlainHTTP {
		t.Fatalf("PlainHTTP: file %v, loopback http %v", a.PlainHTTP, b.PlainHTTP)
	}
	if _, err := LoadCert(context.Background(), srv.URL+"/nope", Options{}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("bad URL: %v", err)
	}
	// An expired certificate is refused, like kubeseal does.
	priv, _, _ := sscrypto.GeneratePrivateKeyAndCert(2048, time.Hour, "x")
	old, err := sscrypto.SignKeyWithNotBefore(rand.Reader, priv, time.Now().Add(-48*time.Hour), time.Hour, "x")
	if err != nil {
		t.Fatal(err)
	}
	_, err = ParseCert(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: old.Raw}), "old", Options{})
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired: %v", err)
	}
}

// BenchmarkDiff measures deciding "unchanged" our way (argon2id of the
// plaintext with the stored salt) against the baseline (sealing again,
// which is what kubeseal does on every run). The ratio is reported.
func BenchmarkDiff(b *testing.B) {
	_, pemCert := testCert(b)
	cert, _ := ParseCert(pemCert, "bench", Options{})
	sp := spec(StrictScope)
	live, err := Seal(cert, sp)
	if err != nil {
		b.Fatal(err)
	}
	var ours, base time.Duration
	for b.Loop() {
		t0 := time.Now()
		if d, _ := Diff(live, cert, sp); d != "" {
			b.Fatal(d)
		}
		t1 := time.Now()
		if _, err := ssv1alpha1.NewSealedSecret(scheme.Codecs, cert.Key, sp.Secret()); err != nil {
			b.Fatal(err)
		}
		ours, base = ours+t1.Sub(t0), base+time.Since(t1)
	}
	b.ReportMetric(float64(ours)/float64(base), "x-baseline")
}

// deepCopy copies ss through JSON, as the API server would.
func deepCopy(t testing.TB, ss *SealedSecret) *SealedSecret {
	t.Helper()
	b, err := json.Marshal(ss)
	if err != nil {
		t.Fatal(err)
	}
	var out SealedSecret
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}
