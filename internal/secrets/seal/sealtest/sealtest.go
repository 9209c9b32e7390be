// Package sealtest unseals for tests with sealed-secrets' own code, the
// controller's: what bootstrap seals is proven to open where it matters.
// Only tests import it, so the library's API package (and the client-go
// scheme it registers) stays out of the binary.
package sealtest

import (
	"crypto/rsa"
	"encoding/json"
	"errors"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	sscrypto "github.com/bitnami-labs/sealed-secrets/pkg/crypto"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
)

// Unseal decrypts a SealedSecret — any value that marshals to one: ours
// (seal.SealedSecret) or the library's — with keys, as the controller
// does.
func Unseal(ss any, keys ...*rsa.PrivateKey) (*corev1.Secret, error) {
	b, err := json.Marshal(ss)
	if err != nil {
		return nil, err
	}
	var lib ssv1alpha1.SealedSecret
	if err := json.Unmarshal(b, &lib); err != nil {
		return nil, err
	}
	m := map[string]*rsa.PrivateKey{}
	for _, k := range keys {
		fp, err := sscrypto.PublicKeyFingerprint(&k.PublicKey)
		if err != nil {
			return nil, err
		}
		m[fp] = k
	}
	sec, err := lib.Unseal(scheme.Codecs, m)
	if err != nil {
		// The library's multierror text names keys, never values.
		return nil, errors.New("unseal: " + err.Error())
	}
	return sec, nil
}
