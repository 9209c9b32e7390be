package amqp

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"hash"
)

// hashAlgorithm is the algorithm bootstrap sends passwords with.
const hashAlgorithm = "rabbit_password_hashing_sha256"

// hashPassword returns RabbitMQ's stored form of password:
// base64(salt + sha256(salt + password)) with a random 4-byte salt. The
// server never sees the plaintext.
func hashPassword(password string) (string, error) {
	var salt [4]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return "", err
	}
	return hashWithSalt(salt[:], password, sha256.New), nil
}

func hashWithSalt(salt []byte, password string, newHash func() hash.Hash) string {
	h := newHash()
	h.Write(salt)
	h.Write([]byte(password))
	return base64.StdEncoding.EncodeToString(append(append([]byte{}, salt...), h.Sum(nil)...))
}

// verifyPassword reports whether password matches a stored hash made with
// algorithm (RabbitMQ's module name; "" means the server default, SHA-256).
// An empty or malformed hash, or an unknown algorithm, never matches, so
// the password is set again.
func verifyPassword(stored, algorithm, password string) bool {
	var newHash func() hash.Hash
	switch algorithm {
	case "", "rabbit_password_hashing_sha256":
		newHash = sha256.New
	case "rabbit_password_hashing_sha512":
		newHash = sha512.New
	case "rabbit_password_hashing_md5":
		newHash = md5.New
	default:
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(stored)
	if err != nil || len(raw) != 4+newHash().Size() {
		return false
	}
	want := hashWithSalt(raw[:4], password, newHash)
	return subtle.ConstantTimeCompare([]byte(want), []byte(stored)) == 1
}
