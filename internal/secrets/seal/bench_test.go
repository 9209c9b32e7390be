package seal

import (
	"testing"
	"time"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/health-data-ai/bootstrap/internal/benchtest"
)

// BenchmarkUnchanged measures deciding that a sealed Secret is unchanged
// our way (Diff: argon2id of the plaintext with the salt kept on the
// object, 64 MiB and 3 passes, so the hash is expensive to guess from)
// against the baseline, sealing again (what kubeseal does on every run).
// It is slow on purpose; x-baseline is the ratio of medians.
func BenchmarkUnchanged(b *testing.B) {
	_, pemCert := testCert(b)
	cert, err := ParseCert(pemCert, "bench", Options{})
	if err != nil {
		b.Fatal(err)
	}
	sp := spec(StrictScope)
	live, err := Seal(cert, sp)
	if err != nil {
		b.Fatal(err)
	}
	var ours, base benchtest.Series
	for b.Loop() {
		t0 := time.Now()
		if d, err := Diff(live, cert, sp); d != "" || err != nil {
			b.Fatalf("diff %q, %v", d, err)
		}
		t1 := time.Now()
		if _, err := ssv1alpha1.NewSealedSecret(scheme.Codecs, cert.Key, sp.Secret()); err != nil {
			b.Fatal(err)
		}
		ours.AddMs(t1.Sub(t0))
		base.AddMs(time.Since(t1))
	}
	ours.Report(b, "diff-ms")
	base.Report(b, "reseal-ms")
	benchtest.Ratio(b, "x-baseline", ours, base)
}
