package seal

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	keysOnce sync.Once
	rsa2048  *rsa.PrivateKey
	rsa1024  *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey
)

// testKeys generates the keys once per test binary: RSA is slow to make.
func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if rsa2048, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if rsa1024, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
			panic(err)
		}
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
}

// makeCert returns a self-signed PEM certificate for key, valid from
// notBefore to notAfter, like the controller's.
func makeCert(t testing.TB, key any, notBefore, notAfter time.Time) []byte {
	t.Helper()
	tpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "sealed-secrets-test"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageEncipherOnly,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, key.(crypto.Signer).Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// sha256Hex is the pin of a PEM certificate, computed independently.
func sha256Hex(t testing.TB, pemCert []byte) string {
	t.Helper()
	b, _ := pem.Decode(pemCert)
	sum := sha256.Sum256(b.Bytes)
	return hex.EncodeToString(sum[:])
}

// opensslForm writes a pin as openssl x509 -fingerprint -sha256 does.
func opensslForm(h string) string {
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, strings.ToUpper(h[i:i+2]))
	}
	return strings.Join(parts, ":")
}

func TestCertRules(t *testing.T) {
	testKeys(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	year := 365 * 24 * time.Hour
	good := makeCert(t, rsa2048, now.Add(-time.Hour), now.Add(year))
	other := makeCert(t, rsa2048, now.Add(-time.Hour), now.Add(year))
	pin := sha256Hex(t, good)
	expired := makeCert(t, rsa2048, now.Add(-2*year), now.Add(-year))
	cases := []struct {
		name  string
		cert  []byte
		pin   string
		want  string // "" = accepted; else a part of the error
		retry bool
	}{
		{"rsa 2048", good, "", "", false},
		{"rsa 1024", makeCert(t, rsa1024, now.Add(-time.Hour), now.Add(year)), "", "RSA key of 1024 bits: want at least 2048", false},
		{"not rsa", makeCert(t, ecKey, now.Add(-time.Hour), now.Add(year)), "", "want an RSA key", false},
		{"expired", makeCert(t, rsa2048, now.Add(-2*year), now.Add(-time.Second)), "", "expired on 2026-03-01", false},
		{"not yet valid", makeCert(t, rsa2048, now.Add(time.Minute), now.Add(year)), "", "not valid before 2026-03-01T12:01:00Z", true},
		{"valid from now", makeCert(t, rsa2048, now, now.Add(year)), "", "", false},
		{"right pin", good, pin, "", false},
		{"right pin, openssl form", good, opensslForm(pin), "", false},
		{"wrong pin", other, pin, "does not match the pinned secrets.output.sealing.certSHA256 " + pin, false},
		{"malformed pin", good, pin[:62], "want 64 hex digits", false},
		// The pin is checked first: a pinned certificate that is also
		// weak names the pin, the real problem.
		{"wrong pin, small key", makeCert(t, rsa1024, now.Add(-time.Hour), now.Add(year)), pin, "does not match the pinned", false},
		// A pin does not excuse the other rules.
		{"right pin, expired", expired, sha256Hex(t, expired), "expired on 2025-03-01", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cert, err := ParseCert(c.cert, "test.pem", Options{SHA256: c.pin, Now: func() time.Time { return now }})
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if cert.SHA256 != sha256Hex(t, c.cert) || cert.Key.N.BitLen() < MinRSABits {
					t.Fatalf("cert %+v", cert)
				}
				return
			}
			var ce *CertError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), c.want) || ce.Retry != c.retry {
				t.Fatalf("got %v (retry %v), want a CertError with %q (retry %v)", err, ce != nil && ce.Retry, c.want, c.retry)
			}
			if !strings.HasPrefix(err.Error(), "certificate from test.pem: ") {
				t.Fatalf("error does not name the source: %v", err)
			}
		})
	}
}

// certServer serves pemCert at /v1/cert.pem over TLS with a certificate
// of its own (the https layer, unrelated to the sealing key).
func certServer(t *testing.T, pemCert []byte) (*httptest.Server, *x509.CertPool) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/cert.pem":
			_, _ = w.Write(pemCert)
		case "/downgrade":
			http.Redirect(w, r, "http://127.0.0.1:1/v1/cert.pem", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	return srv, roots
}

func TestLoadCertHTTPS(t *testing.T) {
	_, pemCert := testCert(t)
	srv, roots := certServer(t, pemCert)
	ctx := context.Background()
	url := srv.URL + "/v1/cert.pem"
	pin := sha256Hex(t, pemCert)

	cert, err := LoadCert(ctx, url, Options{SHA256: pin, RootCAs: roots})
	if err != nil {
		t.Fatalf("right pin: %v", err)
	}
	if cert.PlainHTTP || cert.SHA256 != pin || cert.From != url {
		t.Fatalf("cert %+v", cert)
	}
	_, other := testCert(t)
	var ce *CertError
	_, err = LoadCert(ctx, url, Options{SHA256: sha256Hex(t, other), RootCAs: roots})
	if !errors.As(err, &ce) || ce.Retry || !strings.Contains(err.Error(), "certificate from "+url+": SHA-256 "+pin+" does not match") {
		t.Fatalf("wrong pin: %v", err)
	}
	// The https server's own certificate is verified: the test CA is not
	// among the system's roots.
	_, err = LoadCert(ctx, url, Options{SHA256: pin})
	if !errors.As(err, &ce) || !ce.Retry || !strings.Contains(err.Error(), "the server's TLS certificate") {
		t.Fatalf("untrusted https server: %v", err)
	}
	// https never downgrades to http, even to loopback.
	_, err = LoadCert(ctx, srv.URL+"/downgrade", Options{RootCAs: roots})
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "redirected from https to http://127.0.0.1:1/v1/cert.pem: refused") {
		t.Fatalf("downgrade: %v", err)
	}
}

func TestLoadCertTransportRules(t *testing.T) {
	_, pemCert := testCert(t)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/up" {
			http.Redirect(w, r, "https://example.com/v1/cert.pem", http.StatusFound)
			return
		}
		_, _ = w.Write(pemCert)
	}))
	defer plain.Close()
	port := plain.URL[strings.LastIndex(plain.URL, ":")+1:]
	ctx := context.Background()
	for _, c := range []struct {
		url  string
		want string // "" = accepted
	}{
		{plain.URL + "/v1/cert.pem", ""},
		{"http://localhost:" + port + "/v1/cert.pem", ""},
		// Refused before any connection: nothing listens there.
		{"http://10.255.255.1/v1/cert.pem", "plain http is allowed only to a loopback address"},
		{"http://sealed-secrets.kube-system.svc:8080/v1/cert.pem", "plain http is allowed only to a loopback address"},
		{"http://127.0.0.1.example.com/v1/cert.pem", "plain http is allowed only to a loopback address"},
		{"http://user:secret@10.0.0.1/cert.pem", "http://user:xxxxx@10.0.0.1/cert.pem: plain http"},
		{"ftp://127.0.0.1/cert.pem", "want a file path, an https:// URL, or an http:// URL to a loopback address"},
		{"https:///cert.pem", "want a file path"},
		// A loopback server may not send us elsewhere.
		{plain.URL + "/up", "redirected from http to https://example.com/v1/cert.pem: refused"},
	} {
		t.Run(c.url, func(t *testing.T) {
			cert, err := LoadCert(ctx, c.url, Options{})
			if c.want == "" {
				if err != nil || !cert.PlainHTTP {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ce *CertError
			if !errors.As(err, &ce) || ce.Retry || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want a CertError with %q", err, c.want)
			}
			if strings.Contains(err.Error(), "secret@") {
				t.Fatalf("the URL's password is in the error: %v", err)
			}
		})
	}
}

// TestLoopbackDialer: a name accepted as loopback (localhost) connects
// only to a loopback address, whatever it resolved to.
func TestLoopbackDialer(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:8080": true, "127.9.9.9:80": true, "[::1]:80": true,
		"10.0.0.1:80": false, "[2001:db8::1]:80": false, "192.168.1.1:8080": false, "nonsense": false,
	} {
		if err := loopbackOnly("tcp", addr, nil); (err == nil) != ok {
			t.Errorf("%s: %v", addr, err)
		}
	}
}
