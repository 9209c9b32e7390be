package seal

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"syscall"
	"time"

	sscrypto "github.com/bitnami-labs/sealed-secrets/pkg/crypto"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// The sealing certificate decides who can read every Secret sealed with it:
// whoever hands us a certificate of their own reads them all. So it is
// accepted only
//
//   - from a file, over https (verified against the system's roots), or
//     from the controller through the API server's service proxy (the API
//     server's TLS); plain http only to a loopback address, where client
//     and server are one machine and no network lies between (a kubectl
//     port-forward, the tests' controller);
//   - with an RSA key of at least MinRSABits bits;
//   - within its validity period (NotBefore to NotAfter);
//   - matching Options.SHA256 when a pin is configured.
//
// A refusal is a *CertError.

// MinRSABits is the smallest sealing key accepted (the controller makes
// 4096-bit keys by default).
const MinRSABits = 2048

// Cert is the controller's public key, from its certificate.
type Cert struct {
	Key *rsa.PublicKey
	// Fingerprint is sealed-secrets' fingerprint of Key.
	Fingerprint string
	// SHA256 is the hex SHA-256 of the certificate's DER bytes: the value
	// secrets.output.sealing.certSHA256 pins.
	SHA256    string
	NotBefore time.Time
	NotAfter  time.Time
	// From says where it came from, for messages.
	From string
	// PlainHTTP is set when it came over plain http from a loopback
	// address: allowed, and worth a warning.
	PlainHTTP bool
}

// Options say what else a certificate must satisfy.
type Options struct {
	// SHA256 pins the certificate: the hex SHA-256 of its DER bytes, 64 hex
	// digits, optionally with ':' between bytes (openssl's -fingerprint
	// form), any case. Empty: no pin.
	SHA256 string
	// RootCAs verifies https servers; nil means the system's roots.
	RootCAs *x509.CertPool
	// Now is the clock for the validity period; nil means time.Now.
	Now func() time.Time
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// CertError is a certificate, or a place to get one, that the rules above
// refuse.
type CertError struct {
	From   string
	Reason string
	// Retry is set when waiting may help: a certificate not valid yet (a
	// clock behind the controller's that made it a moment ago), or an
	// https server whose own certificate is not trusted (yet).
	Retry bool
}

func (e *CertError) Error() string { return "certificate from " + e.From + ": " + e.Reason }

// sha256Re is the form of a pinned fingerprint.
var sha256Re = regexp.MustCompile(`^([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$`)

// parsePin decodes a pinned fingerprint.
func parsePin(s string) ([]byte, error) {
	if !sha256Re.MatchString(s) {
		return nil, fmt.Errorf("pinned secrets.output.sealing.certSHA256 %q: want 64 hex digits, ':' between bytes allowed", s)
	}
	return hex.DecodeString(strings.ReplaceAll(s, ":", ""))
}

// check applies the pin, key and validity rules to c.
func (o Options) check(c *x509.Certificate, from string) (*rsa.PublicKey, error) {
	reject := func(format string, args ...any) *CertError {
		return &CertError{From: from, Reason: fmt.Sprintf(format, args...)}
	}
	sum := sha256.Sum256(c.Raw)
	if o.SHA256 != "" {
		want, err := parsePin(o.SHA256)
		if err != nil {
			return nil, reject("%v", err)
		}
		if !bytes.Equal(sum[:], want) {
			return nil, reject("SHA-256 %x does not match the pinned secrets.output.sealing.certSHA256 %x: another certificate (did the controller renew its key? then check and update the pin)", sum, want)
		}
	}
	k, ok := c.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, reject("want an RSA key, got %T", c.PublicKey)
	}
	if bits := k.N.BitLen(); bits < MinRSABits {
		return nil, reject("RSA key of %d bits: want at least %d", bits, MinRSABits)
	}
	now := o.now()
	if now.Before(c.NotBefore) {
		e := reject("not valid before %s (now %s): is this clock behind the controller's?", c.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		e.Retry = true
		return nil, e
	}
	if now.After(c.NotAfter) {
		return nil, reject("expired on %s: fetch the controller's current certificate", c.NotAfter.UTC().Format(time.DateOnly))
	}
	return k, nil
}

// ParseCert reads the first certificate of a PEM bundle and applies the
// rules (see Options).
func ParseCert(data []byte, from string, o Options) (*Cert, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("certificate from %s: no PEM certificate found", from)
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate from %s: %w", from, err)
		}
		k, err := o.check(c, from)
		if err != nil {
			return nil, err
		}
		fp, err := sscrypto.PublicKeyFingerprint(k)
		if err != nil {
			return nil, fmt.Errorf("certificate from %s: %w", from, err)
		}
		sum := sha256.Sum256(c.Raw)
		return &Cert{Key: k, Fingerprint: fp, SHA256: hex.EncodeToString(sum[:]), NotBefore: c.NotBefore, NotAfter: c.NotAfter, From: from}, nil
	}
}

// LoadCert reads the certificate from a file path (or file:// URL), an
// https:// URL, or an http:// URL whose host is a loopback address
// (127.0.0.0/8, ::1, localhost). Any other http:// URL, scheme or redirect
// is a *CertError.
func LoadCert(ctx context.Context, ref string, o Options) (*Cert, error) {
	if !strings.Contains(ref, "://") || strings.HasPrefix(ref, "file://") {
		path := strings.TrimPrefix(ref, "file://")
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("certificate: %w", err)
		}
		return ParseCert(b, path, o)
	}
	u, err := url.Parse(ref)
	if err != nil {
		return nil, &CertError{From: "secrets.output.sealing.cert", Reason: "not a valid URL"}
	}
	if err := checkURL(u); err != nil {
		return nil, err
	}
	return fetch(ctx, u, o)
}

// checkURL applies the transport rule to a certificate URL.
func checkURL(u *url.URL) error {
	from := u.Redacted()
	switch {
	case u.Scheme == "https" && u.Host != "":
		return nil
	case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
		return nil
	case u.Scheme == "http":
		return &CertError{From: from, Reason: "plain http is allowed only to a loopback address (127.0.0.0/8, ::1, localhost): anyone on the network path could hand over their own certificate and read every Secret sealed with it; use https://, a file, or no sealing.cert (the controller through the API server)"}
	}
	return &CertError{From: from, Reason: "want a file path, an https:// URL, or an http:// URL to a loopback address"}
}

// isLoopbackHost reports whether host names this machine alone: an IP in
// 127.0.0.0/8 or ::1, or "localhost" (which the dialer then holds to a
// loopback address). Nothing but the local kernel lies between such a
// client and server, so there is no network path to tamper on.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

var errNotLoopback = errors.New("plain http resolved to an address that is not loopback")

// loopbackOnly is the dialer's check for plain http: whatever a name
// resolved to, the connection goes to a loopback address or nowhere.
func loopbackOnly(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return errNotLoopback
	}
	return nil
}

// fetch GETs a checked URL: TLS 1.2 or later for https, no proxy and a
// loopback-only dialer for http. A redirect must pass checkURL and keep the
// scheme: https never downgrades to http, and the loopback-only dialer of
// http would refuse any other host anyway.
func fetch(ctx context.Context, u *url.URL, o Options) (*Cert, error) {
	from := u.Redacted()
	plain := u.Scheme == "http"
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: o.RootCAs},
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	if plain {
		tr.Proxy = nil
		dialer.Control = loopbackOnly
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		Timeout:   30 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return &CertError{From: from, Reason: "too many redirects"}
			}
			if req.URL.Scheme != u.Scheme {
				return &CertError{From: from, Reason: fmt.Sprintf("redirected from %s to %s: refused", u.Scheme, req.URL.Redacted())}
			}
			return checkURL(req.URL)
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("certificate from %s: %w", from, err)
	}
	resp, err := client.Do(req)
	var ce *CertError
	switch {
	case errors.As(err, &ce):
		return nil, ce
	case errors.Is(err, errNotLoopback):
		return nil, &CertError{From: from, Reason: errNotLoopback.Error()}
	case err != nil:
		// Retry: an ingress may serve a placeholder until its
		// certificate is issued.
		var tlsErr *tls.CertificateVerificationError
		if errors.As(err, &tlsErr) {
			return nil, &CertError{From: from, Reason: "the server's TLS certificate: " + tlsErr.Err.Error(), Retry: true}
		}
		return nil, fmt.Errorf("certificate from %s: %w", from, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("certificate from %s: %s", from, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("certificate from %s: %w", from, err)
	}
	cert, err := ParseCert(b, from, o)
	if err != nil {
		return nil, err
	}
	cert.PlainHTTP = plain
	return cert, nil
}

// ServiceClient is what FetchCert needs of the API server (package
// kubecore has it).
type ServiceClient interface {
	Service(ctx context.Context, namespace, name string) (*corev1.Service, error)
	// ProxyGet GETs path from a Service's port through the API server's
	// service proxy.
	ProxyGet(ctx context.Context, namespace, scheme, name, port, path string) ([]byte, error)
}

// FetchCert asks the controller for its certificate through the API
// server's service proxy, as kubeseal does: GET the Service for its first
// port's name, then GET /v1/cert.pem through
// /api/v1/namespaces/NS/services/http:NAME:PORT/proxy. The hop from the
// API server to the controller is the cluster's network; ours is the API
// server's TLS. The rules of Options apply as to any certificate.
func FetchCert(ctx context.Context, cs ServiceClient, namespace, name string, o Options) (*Cert, error) {
	from := fmt.Sprintf("controller %s/%s", namespace, name)
	svc, err := cs.Service(ctx, namespace, name)
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("certificate from %s: service not found: set secrets.output.sealing.controllerName and controllerNamespace to the controller's Service, or sealing.cert to its certificate", from)
	case apierrors.IsForbidden(err):
		return nil, fmt.Errorf("certificate from %s: %w (grant get on services %s in %s, or set sealing.cert)", from, err, name, namespace)
	case err != nil:
		return nil, fmt.Errorf("certificate from %s: %w", from, err)
	}
	if len(svc.Spec.Ports) == 0 {
		return nil, fmt.Errorf("certificate from %s: the service has no ports", from)
	}
	port := svc.Spec.Ports[0].Name
	if port == "" {
		port = fmt.Sprint(svc.Spec.Ports[0].Port)
	}
	b, err := cs.ProxyGet(ctx, namespace, "http", name, port, "/v1/cert.pem")
	if err != nil {
		if apierrors.IsForbidden(err) {
			return nil, fmt.Errorf("certificate from %s: %w (grant get on services/proxy %s in %s, or set sealing.cert)", from, err, name, namespace)
		}
		if apierrors.IsServiceUnavailable(err) {
			return nil, fmt.Errorf("certificate from %s: through the service proxy: %w (nothing answers behind the Service yet: is the controller running?)", from, err)
		}
		return nil, fmt.Errorf("certificate from %s: through the service proxy: %w", from, err)
	}
	return ParseCert(b, from, o)
}
