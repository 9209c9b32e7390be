package seal

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

// argonCall is what MatchHash asked argon2 to compute.
type argonCall struct {
	time, memory uint32
	threads      uint8
	keyLen       uint32
}

// watchArgon replaces idKey for the test with one that records each call
// and computes only our parameters: a forged one is recorded, never run.
func watchArgon(t *testing.T) *[]argonCall {
	t.Helper()
	var calls []argonCall
	orig := idKey
	idKey = func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
		calls = append(calls, argonCall{time, memory, threads, keyLen})
		if time != argonTime || memory != argonMemory || threads != argonThreads || keyLen != argonKeyLen {
			return make([]byte, keyLen)
		}
		return orig(password, salt, time, memory, threads, keyLen)
	}
	t.Cleanup(func() { idKey = orig })
	return &calls
}

// TestMatchHashOnlyOurParameters: whoever may edit a SealedSecret writes
// its hash annotation. Parameters other than ours, however plausible, are
// an unknown hash (re-seal), and argon2 is never asked to compute them: a
// forged m=4194304 would otherwise take 4 GiB of a 256 Mi pod.
func TestMatchHashOnlyOurParameters(t *testing.T) {
	calls := watchArgon(t)
	data := map[string][]byte{"password": []byte("s3cret-value-0123456789")}
	good, err := HashData(data)
	if err != nil {
		t.Fatal(err)
	}
	*calls = nil
	saltHash := good[len(argonPrefix):]
	salt, hash, _ := strings.Cut(saltHash, "$")
	for name, forged := range map[string]string{
		"huge memory":        "$argon2id$v=19$m=4194304,t=3,p=1$" + saltHash,
		"max uint32 memory":  "$argon2id$v=19$m=4294967295,t=1,p=1$" + saltHash,
		"within old bounds":  "$argon2id$v=19$m=1048576,t=16,p=16$" + saltHash,
		"cheaper":            "$argon2id$v=19$m=8192,t=1,p=1$" + saltHash,
		"many passes":        "$argon2id$v=19$m=65536,t=1000000,p=1$" + saltHash,
		"more lanes":         "$argon2id$v=19$m=65536,t=3,p=255$" + saltHash,
		"leading zero":       "$argon2id$v=19$m=065536,t=3,p=1$" + saltHash,
		"old version":        "$argon2id$v=16$m=65536,t=3,p=1$" + saltHash,
		"argon2i":            "$argon2i$v=19$m=65536,t=3,p=1$" + saltHash,
		"long output":        argonPrefix + salt + "$" + hash + hash,
		"long salt":          argonPrefix + salt + salt + "$" + hash,
		"short salt":         argonPrefix + salt[:11] + "$" + hash,
		"padding":            argonPrefix + salt + "==$" + hash,
		"extra field":        good + "$x",
		"empty":              "",
		"not base64":         argonPrefix + strings.Repeat("!", len(salt)) + "$" + hash,
		"huge annotation":    argonPrefix + strings.Repeat("A", 1<<20),
		"prefix inside junk": "x" + good,
	} {
		ok, err := MatchHash(forged, data)
		if ok || !errors.Is(err, ErrUnknownHash) {
			t.Errorf("%s: ok=%v err=%v, want ErrUnknownHash", name, ok, err)
		}
	}
	if len(*calls) != 0 {
		t.Fatalf("argon2 computed forged parameters: %+v", *calls)
	}
	// Ours are computed, once, with exactly our parameters.
	if ok, err := MatchHash(good, data); !ok || err != nil {
		t.Fatalf("our hash: %v %v", ok, err)
	}
	want := argonCall{argonTime, argonMemory, argonThreads, argonKeyLen}
	if len(*calls) != 1 || (*calls)[0] != want {
		t.Fatalf("calls %+v, want one %+v", *calls, want)
	}
	if argon2.Version != 19 || !strings.HasPrefix(good, "$argon2id$v=19$m=65536,t=3,p=1$") {
		t.Fatalf("hash %q", good)
	}
}

// TestDiffForgedHashReseals: through Diff, a forged annotation means
// re-seal, at no argon2 cost.
func TestDiffForgedHashReseals(t *testing.T) {
	_, pemCert := testCert(t)
	cert, err := ParseCert(pemCert, "test", Options{})
	if err != nil {
		t.Fatal(err)
	}
	sp := spec(StrictScope)
	live, err := Seal(cert, sp)
	if err != nil {
		t.Fatal(err)
	}
	calls := watchArgon(t)
	forged := deepCopy(t, live)
	h := forged.Annotations[AnnotationDataHash]
	forged.Annotations[AnnotationDataHash] = strings.Replace(h, "m=65536", "m=4194304", 1)
	d, err := Diff(forged, cert, sp)
	if err != nil || !strings.Contains(d, "no usable data hash (unknown hash") {
		t.Fatalf("diff %q, %v", d, err)
	}
	if len(*calls) != 0 {
		t.Fatalf("argon2 computed a forged hash: %+v", *calls)
	}
	if d, _ := Diff(live, cert, sp); d != "" || len(*calls) != 1 {
		t.Fatalf("our own hash: diff %q after %d calls", d, len(*calls))
	}
}
