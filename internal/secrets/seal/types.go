package seal

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The SealedSecret API (bitnami.com/v1alpha1), as much of it as bootstrap
// reads and writes, with the JSON names of sealed-secrets' own types.
//
// Declared here, not imported: sealed-secrets' API package registers
// client-go's whole scheme (every API group) when the program starts, which
// cost bootstrap about 15 MiB of binary and 10 MiB of memory for a handful
// of fields (BENCHMARKS.md, "Binary size"). The encryption is still the
// library's (pkg/crypto); TestSealUnsealsWithTheLibrary checks that its
// Unseal, the controller's code, opens what Seal makes, in every scope.

// Annotations and the condition the Sealed Secrets controller defines.
const (
	AnnotationClusterWide   = "sealedsecrets.bitnami.com/cluster-wide"
	AnnotationNamespaceWide = "sealedsecrets.bitnami.com/namespace-wide"
	// AnnotationManaged on a plain Secret lets the controller replace it.
	AnnotationManaged = "sealedsecrets.bitnami.com/managed"
	ConditionSynced   = "Synced"
)

// GroupVersion is the SealedSecret's API group and version.
var GroupVersion = metav1.GroupVersion{Group: "bitnami.com", Version: "v1alpha1"}

// SealedSecret is a bitnami.com/v1alpha1 SealedSecret.
type SealedSecret struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   SealedSecretSpec    `json:"spec"`
	Status *SealedSecretStatus `json:"status,omitempty"`
}

// SealedSecretSpec holds the encrypted values and the Secret's template.
type SealedSecretSpec struct {
	Template      SecretTemplateSpec `json:"template,omitempty"`
	EncryptedData map[string]string  `json:"encryptedData"`
}

// SecretTemplateSpec is what the controller puts on the Secret it makes.
type SecretTemplateSpec struct {
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Type      corev1.SecretType `json:"type,omitempty"`
	Immutable *bool             `json:"immutable,omitempty"`
	Data      map[string]string `json:"data,omitempty"`
}

// SealedSecretStatus is the controller's report.
type SealedSecretStatus struct {
	ObservedGeneration int64                   `json:"observedGeneration,omitempty"`
	Conditions         []SealedSecretCondition `json:"conditions,omitempty"`
}

// SealedSecretCondition is one condition of the report; the controller
// sets Synced.
type SealedSecretCondition struct {
	Type    string                 `json:"type"`
	Status  corev1.ConditionStatus `json:"status"`
	Reason  string                 `json:"reason,omitempty"`
	Message string                 `json:"message,omitempty"`
}

// Scope is where a SealedSecret may be unsealed: the encryption label
// binds it to its namespace and name (strict), its namespace, or nothing
// (cluster-wide). The values are sealed-secrets' SealingScope's.
type Scope int

const (
	StrictScope Scope = iota
	NamespaceWideScope
	ClusterWideScope
)

// ParseScope maps the config's scope names ("" is strict) to scopes.
func ParseScope(s string) (Scope, error) {
	switch s {
	case "", "strict":
		return StrictScope, nil
	case "namespace-wide":
		return NamespaceWideScope, nil
	case "cluster-wide":
		return ClusterWideScope, nil
	}
	return StrictScope, fmt.Errorf("scope %q: must be one of: strict, namespace-wide, cluster-wide", s)
}

func (s Scope) String() string {
	switch s {
	case StrictScope:
		return "strict"
	case NamespaceWideScope:
		return "namespace-wide"
	case ClusterWideScope:
		return "cluster-wide"
	}
	return fmt.Sprintf("undefined-%d", int(s))
}

// label is the RSA-OAEP label a value is sealed with: the controller
// decrypts only with the same one, which is what pins a scope.
func (s Scope) label(namespace, name string) []byte {
	switch s {
	case ClusterWideScope:
		return []byte{}
	case NamespaceWideScope:
		return []byte(namespace)
	}
	return []byte(namespace + "/" + name)
}

// annotations sets the scope's annotation on anno (made when nil),
// removing the other scope's.
func (s Scope) annotations(anno map[string]string) map[string]string {
	if anno == nil {
		anno = map[string]string{}
	}
	delete(anno, AnnotationNamespaceWide)
	delete(anno, AnnotationClusterWide)
	switch s {
	case NamespaceWideScope:
		anno[AnnotationNamespaceWide] = "true"
	case ClusterWideScope:
		anno[AnnotationClusterWide] = "true"
	}
	return anno
}

// scopeOf is the scope a template's annotations declare.
func scopeOf(anno map[string]string) Scope {
	switch {
	case anno[AnnotationClusterWide] == "true":
		return ClusterWideScope
	case anno[AnnotationNamespaceWide] == "true":
		return NamespaceWideScope
	}
	return StrictScope
}

// Scope is the scope ss was sealed with, as its template declares it.
func (ss *SealedSecret) Scope() Scope { return scopeOf(ss.Spec.Template.Annotations) }
