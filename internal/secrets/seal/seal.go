// Package seal turns credentials into SealedSecret objects for the Sealed
// Secrets controller. It loads the controller's certificate (a file, an
// https URL, plain http to loopback only, or the controller itself through
// the API server's service proxy, as kubeseal does) and accepts it only
// under the rules in cert.go: transport, optional SHA-256 pin, RSA key size
// and validity period. It seals with the configured scope, and decides
// whether an existing SealedSecret still holds the desired values without
// decrypting it and without comparing ciphertext: the object carries a
// salted argon2id hash of its plaintext, recomputed with the stored salt
// when its parameters are exactly ours (see hash.go). It never writes
// anything anywhere; the sink package delivers what it builds.
package seal

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"

	sscrypto "github.com/bitnami-labs/sealed-secrets/pkg/crypto"
	"github.com/health-data-ai/bootstrap/internal/credential"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// Spec is one Kubernetes Secret to deliver.
type Spec struct {
	Name      string
	Namespace string
	// Data maps each key to its credential.
	Data  map[string]credential.Credential
	Scope Scope
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

// Seal encrypts every value of spec with cert's key for spec's scope, as
// sealed-secrets' NewSealedSecret does, and returns a complete SealedSecret
// (apiVersion and kind set), annotated with the data hash and the key
// fingerprint.
func Seal(cert *Cert, spec Spec) (*SealedSecret, error) {
	if spec.Scope != ClusterWideScope && spec.Namespace == "" {
		return nil, fmt.Errorf("seal %s: a %s SealedSecret needs a namespace", spec.Name, spec.Scope)
	}
	meta := func() metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: spec.Name, Namespace: spec.Namespace, Labels: spec.labels(), Annotations: spec.Scope.annotations(nil)}
	}
	ss := &SealedSecret{
		TypeMeta:   metav1.TypeMeta{APIVersion: GroupVersion.String(), Kind: "SealedSecret"},
		ObjectMeta: meta(),
		Spec: SealedSecretSpec{
			// The template's annotations say only what the controller needs.
			Template:      SecretTemplateSpec{ObjectMeta: meta(), Type: corev1.SecretTypeOpaque},
			EncryptedData: make(map[string]string, len(spec.Data)),
		},
	}
	label := spec.Scope.label(spec.Namespace, spec.Name)
	for k, c := range spec.Data {
		ct, err := sscrypto.HybridEncrypt(rand.Reader, cert.Key, []byte(c.Reveal()), label)
		if err != nil {
			return nil, fmt.Errorf("seal %s: key %s: %w", spec.Name, k, err)
		}
		ss.Spec.EncryptedData[k] = base64.StdEncoding.EncodeToString(ct)
	}
	hash, err := HashData(spec.plaintext())
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", spec.Name, err)
	}
	ss.Annotations[AnnotationDataHash] = hash
	ss.Annotations[AnnotationSealingKey] = cert.Fingerprint
	return ss, nil
}

// Diff says why the live SealedSecret must be re-sealed, or "" when it
// already holds spec's values for this key and scope. It never decrypts:
// values are checked against the stored salted hash.
func Diff(live *SealedSecret, cert *Cert, spec Spec) (string, error) {
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

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
