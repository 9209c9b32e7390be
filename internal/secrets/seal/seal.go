// Package seal turns credentials into SealedSecret objects for the Sealed
// Secrets controller: it loads the controller's certificate (file, URL, or
// the controller itself through the API server's service proxy, as kubeseal
// does), seals with the configured scope, and decides whether an existing
// SealedSecret still holds the desired values without decrypting it and
// without comparing ciphertext: the object carries a salted argon2id hash of
// its plaintext, recomputed with the stored salt. It never writes anything
// anywhere; the sink package delivers what it builds.
package seal

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	sscrypto "github.com/bitnami-labs/sealed-secrets/pkg/crypto"
	"github.com/health-data-ai/bootstrap/internal/credential"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
)

// Annotations bootstrap keeps on the SealedSecret (never on the Secret the
// controller makes from it).
const (
	// AnnotationDataHash holds the argon2id PHC string of the plaintext data.
	AnnotationDataHash = "bootstrap.health-data.ai/data-hash"
	// AnnotationSealingKey is the fingerprint of the certificate's key, so
	// a renewed controller key leads to re-sealing.
	AnnotationSealingKey = "bootstrap.health-data.ai/sealing-key"
	// LabelManagedBy marks what bootstrap delivers.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "bootstrap"
)

// Cert is the controller's public key, from its certificate.
type Cert struct {
	Key *rsa.PublicKey
	// Fingerprint is sealed-secrets' fingerprint of Key.
	Fingerprint string
	NotAfter    time.Time
	// From says where it came from, for messages.
	From string
}

// ParseCert reads the first certificate of a PEM bundle. Like kubeseal, an
// expired certificate is refused.
func ParseCert(data []byte, from string) (*Cert, error) {
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
		k, ok := c.PublicKey.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("certificate from %s: want an RSA key, got %T", from, c.PublicKey)
		}
		if time.Now().After(c.NotAfter) {
			return nil, fmt.Errorf("certificate from %s expired on %s: fetch the controller's current certificate", from, c.NotAfter.Format(time.DateOnly))
		}
		fp, err := sscrypto.PublicKeyFingerprint(k)
		if err != nil {
			return nil, fmt.Errorf("certificate from %s: %w", from, err)
		}
		return &Cert{Key: k, Fingerprint: fp, NotAfter: c.NotAfter, From: from}, nil
	}
}

// LoadCert reads the certificate from a file path or an http(s) URL.
func LoadCert(ctx context.Context, ref string) (*Cert, error) {
	u, err := url.Parse(ref)
	if err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ref, nil)
		if err != nil {
			return nil, fmt.Errorf("certificate from %s: %w", ref, err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("certificate from %s: %w", ref, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("certificate from %s: %s", ref, resp.Status)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("certificate from %s: %w", ref, err)
		}
		return ParseCert(b, ref)
	}
	path := strings.TrimPrefix(ref, "file://")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	return ParseCert(b, path)
}

// FetchCert asks the controller for its certificate through the API
// server's service proxy, as kubeseal does: GET the Service for its first
// port's name, then GET /v1/cert.pem through
// /api/v1/namespaces/NS/services/http:NAME:PORT/proxy.
func FetchCert(ctx context.Context, cs kubernetes.Interface, namespace, name string) (*Cert, error) {
	from := fmt.Sprintf("controller %s/%s", namespace, name)
	svc, err := cs.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
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
	b, err := cs.CoreV1().Services(namespace).ProxyGet("http", name, port, "/v1/cert.pem", nil).DoRaw(ctx)
	if err != nil {
		if apierrors.IsForbidden(err) {
			return nil, fmt.Errorf("certificate from %s: %w (grant get on services/proxy %s in %s, or set sealing.cert)", from, err, name, namespace)
		}
		if apierrors.IsServiceUnavailable(err) {
			return nil, fmt.Errorf("certificate from %s: through the service proxy: %w (nothing answers behind the Service yet: is the controller running?)", from, err)
		}
		return nil, fmt.Errorf("certificate from %s: through the service proxy: %w", from, err)
	}
	return ParseCert(b, from)
}

// ParseScope maps the config's scope names to sealed-secrets' scopes.
func ParseScope(s string) (ssv1alpha1.SealingScope, error) {
	var sc ssv1alpha1.SealingScope
	if err := sc.Set(s); err != nil {
		return sc, fmt.Errorf("scope %q: %w", s, err)
	}
	return sc, nil
}

// Spec is one Kubernetes Secret to deliver.
type Spec struct {
	Name      string
	Namespace string
	// Data maps each key to its credential.
	Data  map[string]credential.Credential
	Scope ssv1alpha1.SealingScope
	// Labels go on the SealedSecret and on the Secret it produces.
	Labels map[string]string
}

// Secret is the plain Secret the spec describes; its Data holds plaintext,
// so it lives only in memory.
func (s Spec) Secret() *corev1.Secret {
	sec := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, Labels: s.labels()},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{},
	}
	for k, c := range s.Data {
		sec.Data[k] = []byte(c.Reveal())
	}
	return sec
}

func (s Spec) labels() map[string]string {
	l := map[string]string{LabelManagedBy: ManagedBy}
	for k, v := range s.Labels {
		l[k] = v
	}
	return l
}

func (s Spec) plaintext() map[string][]byte {
	out := make(map[string][]byte, len(s.Data))
	for k, c := range s.Data {
		out[k] = []byte(c.Reveal())
	}
	return out
}

// Seal encrypts every value of spec with cert's key for spec's scope and
// returns a complete SealedSecret (apiVersion and kind set), annotated with
// the data hash and the key fingerprint.
func Seal(cert *Cert, spec Spec) (*ssv1alpha1.SealedSecret, error) {
	sec := spec.Secret()
	sec.Annotations = ssv1alpha1.UpdateScopeAnnotations(nil, spec.Scope)
	if spec.Scope == ssv1alpha1.ClusterWideScope && spec.Namespace == "" {
		sec.Namespace = ""
	}
	ss, err := ssv1alpha1.NewSealedSecret(scheme.Codecs, cert.Key, sec)
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", spec.Name, err)
	}
	hash, err := HashData(spec.plaintext())
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", spec.Name, err)
	}
	ss.TypeMeta = metav1.TypeMeta{APIVersion: ssv1alpha1.SchemeGroupVersion.String(), Kind: "SealedSecret"}
	ss.Labels = spec.labels()
	ss.Annotations[AnnotationDataHash] = hash
	ss.Annotations[AnnotationSealingKey] = cert.Fingerprint
	// The template's annotations say only what the controller needs.
	return ss, nil
}

// Diff says why the live SealedSecret must be re-sealed, or "" when it
// already holds spec's values for this key and scope. It never decrypts:
// values are checked against the stored salted hash.
func Diff(live *ssv1alpha1.SealedSecret, cert *Cert, spec Spec) (string, error) {
	var why []string
	ok, err := MatchHash(live.Annotations[AnnotationDataHash], spec.plaintext())
	if err != nil {
		why = append(why, "no usable data hash ("+err.Error()+")")
	} else if !ok {
		why = append(why, "values changed")
	}
	if keys := sortedKeys(live.Spec.EncryptedData); strings.Join(keys, ",") != strings.Join(sortedKeys(spec.Data), ",") {
		why = append(why, fmt.Sprintf("keys %s -> %s", strings.Join(keys, ","), strings.Join(sortedKeys(spec.Data), ",")))
	}
	if fp := live.Annotations[AnnotationSealingKey]; fp != cert.Fingerprint {
		why = append(why, "sealed with another controller key: re-seal with the current one")
	}
	if got := live.Scope(); got != spec.Scope {
		why = append(why, fmt.Sprintf("scope %s -> %s", got.String(), spec.Scope.String()))
	}
	for k, v := range spec.labels() {
		if live.Labels[k] != v || live.Spec.Template.Labels[k] != v {
			why = append(why, fmt.Sprintf("label %s", k))
			break
		}
	}
	if live.Spec.Template.Type != "" && live.Spec.Template.Type != corev1.SecretTypeOpaque {
		why = append(why, fmt.Sprintf("type %s -> %s", live.Spec.Template.Type, corev1.SecretTypeOpaque))
	}
	return strings.Join(why, "; "), nil
}

// Unseal decrypts ss with keys: for tests and recovery only.
func Unseal(ss *ssv1alpha1.SealedSecret, keys ...*rsa.PrivateKey) (*corev1.Secret, error) {
	m := map[string]*rsa.PrivateKey{}
	for _, k := range keys {
		fp, err := sscrypto.PublicKeyFingerprint(&k.PublicKey)
		if err != nil {
			return nil, err
		}
		m[fp] = k
	}
	sec, err := ss.DeepCopy().Unseal(scheme.Codecs, m)
	if err != nil {
		return nil, errors.New("unseal: " + err.Error())
	}
	return sec, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
