package amqp

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"strings"
	"testing"
)

// The two vectors are the worked examples of RabbitMQ's password guide
// (salt 908DC60A + "test12" with SHA-256; salt CAD5089B + "simon" with the
// legacy MD5 module).
func TestHashWithSalt(t *testing.T) {
	for _, tc := range []struct {
		salt, password, want string
		sha256               bool
	}{
		{"908DC60A", "test12", "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR", true},
		{"CAD5089B", "simon", "ytUIm8s3AnKsXQjptplKFytfVxI=", false},
	} {
		salt, _ := hex.DecodeString(tc.salt)
		h := md5.New
		if tc.sha256 {
			h = sha256.New
		}
		if got := hashWithSalt(salt, tc.password, h); got != tc.want {
			t.Errorf("hashWithSalt(%s, %q) = %s, want %s", tc.salt, tc.password, got, tc.want)
		}
	}
}

func TestVerifyPassword(t *testing.T) {
	fresh, err := hashPassword("s3cret-ü")
	if err != nil {
		t.Fatal(err)
	}
	const sha = "rabbit_password_hashing_sha256"
	const vec = "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
	for _, tc := range []struct {
		name, stored, algo, password string
		want                         bool
	}{
		{"sha256 vector", vec, sha, "test12", true},
		{"sha256 wrong password", vec, sha, "test13", false},
		{"sha256 empty password", vec, sha, "", false},
		{"algorithm empty means sha256", vec, "", "test12", true},
		{"md5 vector", "ytUIm8s3AnKsXQjptplKFytfVxI=", "rabbit_password_hashing_md5", "simon", true},
		{"md5 hash read as sha256", "ytUIm8s3AnKsXQjptplKFytfVxI=", sha, "simon", false},
		{"sha512 round trip", hashWithSalt([]byte{1, 2, 3, 4}, "pw", sha512.New), "rabbit_password_hashing_sha512", "pw", true},
		{"sha512 wrong password", hashWithSalt([]byte{1, 2, 3, 4}, "pw", sha512.New), "rabbit_password_hashing_sha512", "pW", false},
		{"fresh hash, non-ASCII", fresh, sha, "s3cret-ü", true},
		{"fresh hash, other password", fresh, sha, "s3cret-u", false},
		{"no password set", "", sha, "", false},
		{"not base64", "!!!", sha, "test12", false},
		{"truncated", vec[:32], sha, "test12", false},
		{"unknown algorithm", vec, "rabbit_password_hashing_bcrypt", "test12", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := verifyPassword(tc.stored, tc.algo, tc.password); got != tc.want {
				t.Errorf("verifyPassword = %t, want %t", got, tc.want)
			}
		})
	}
}

func TestHashPasswordSalted(t *testing.T) {
	a, _ := hashPassword("same")
	b, _ := hashPassword("same")
	if a == b {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	if strings.Contains(a, "same") || len(a) != 48 {
		t.Errorf("unexpected hash form %q", a)
	}
}
