package seal

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters: RFC 9106's second recommended setting (t=3,
// 64 MiB), one lane. They are the only ones MatchHash computes: the hash
// is read back from the SealedSecret, and whoever may edit that object
// must not choose what verifying it costs (a forged m=1048576 would take
// 1 GiB of a 256 Mi pod). Changing them makes every stored hash unknown,
// so each Secret is re-sealed once.
const (
	argonTime    = 3
	argonMemory  = 64 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

var (
	b64 = base64.RawStdEncoding
	// argonPrefix is the start of every hash we write and accept.
	argonPrefix = fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$", argon2.Version, argonMemory, argonTime, argonThreads)
	// idKey is argon2.IDKey; tests watch what it is asked to compute.
	idKey = argon2.IDKey
)

// ErrUnknownHash is returned by MatchHash for anything but a hash in the
// exact form and parameters HashData writes: the caller re-seals rather
// than compute it.
var ErrUnknownHash = errors.New("unknown hash: not an argon2id hash with our parameters")

// HashData returns the PHC string
// $argon2id$v=19$m=65536,t=3,p=1$SALT$HASH of data's canonical encoding,
// with a fresh random salt. The hash is slow and salted on purpose: it sits
// in Git next to the ciphertext and must not let anyone test guesses
// cheaply, nor show that two Secrets hold the same value.
func HashData(data map[string][]byte) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash: %w", err)
	}
	h := idKey(canonical(data), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return argonPrefix + b64.EncodeToString(salt) + "$" + b64.EncodeToString(h), nil
}

// MatchHash reports whether encoded (from HashData) is the hash of data,
// recomputed with the stored salt. Only our own parameters are computed
// (argonPrefix, a 16-byte salt, a 32-byte hash); anything else, including
// other argon2 parameters, is ErrUnknownHash and costs nothing.
func MatchHash(encoded string, data map[string][]byte) (bool, error) {
	rest, ok := strings.CutPrefix(encoded, argonPrefix)
	if !ok || len(rest) != b64.EncodedLen(argonSaltLen)+1+b64.EncodedLen(argonKeyLen) {
		return false, ErrUnknownHash
	}
	s, h, ok := strings.Cut(rest, "$")
	if !ok {
		return false, ErrUnknownHash
	}
	salt, err := b64.Strict().DecodeString(s)
	if err != nil || len(salt) != argonSaltLen {
		return false, ErrUnknownHash
	}
	want, err := b64.Strict().DecodeString(h)
	if err != nil || len(want) != argonKeyLen {
		return false, ErrUnknownHash
	}
	got := idKey(canonical(data), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// canonical encodes data as its sorted keys, each key and value prefixed
// with its length, so no two different maps encode alike.
func canonical(data map[string][]byte) []byte {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []byte
	for _, k := range keys {
		out = binary.AppendUvarint(out, uint64(len(k)))
		out = append(out, k...)
		out = binary.AppendUvarint(out, uint64(len(data[k])))
		out = append(out, data[k]...)
	}
	return out
}
