package postgres

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/bidi"
	"golang.org/x/text/unicode/norm"
)

// SCRAM-SHA-256 verifiers as PostgreSQL stores them in pg_authid.rolpassword
// (RFC 5802, RFC 7677):
//
//	SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>
//
// Computing the verifier here means the server, its statement log and
// pg_stat_activity only ever see the verifier, never the password.

const (
	scramPrefix     = "SCRAM-SHA-256$"
	scramIterations = 4096 // PostgreSQL's default scram_iterations
	scramSaltLen    = 16   // as PostgreSQL generates them
)

// scramVerifier is a parsed SCRAM-SHA-256 verifier.
type scramVerifier struct {
	Iterations int
	Salt       []byte
	StoredKey  []byte
	ServerKey  []byte
}

// String renders the verifier in PostgreSQL's rolpassword format.
func (v scramVerifier) String() string {
	enc := base64.StdEncoding
	return scramPrefix + strconv.Itoa(v.Iterations) + ":" + enc.EncodeToString(v.Salt) +
		"$" + enc.EncodeToString(v.StoredKey) + ":" + enc.EncodeToString(v.ServerKey)
}

// newSCRAMVerifier computes a verifier for password with a fresh random salt.
func newSCRAMVerifier(password string) (string, error) {
	salt := make([]byte, scramSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("scram salt: %w", err)
	}
	v, err := computeSCRAM(password, salt, scramIterations)
	if err != nil {
		return "", err
	}
	return v.String(), nil
}

// computeSCRAM derives StoredKey and ServerKey from password, salt and
// iteration count.
func computeSCRAM(password string, salt []byte, iterations int) (scramVerifier, error) {
	salted, err := pbkdf2.Key(sha256.New, saslPrep(password), salt, iterations, sha256.Size)
	if err != nil {
		return scramVerifier{}, fmt.Errorf("scram pbkdf2: %w", err)
	}
	clientKey := hmacSHA256(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	return scramVerifier{
		Iterations: iterations,
		Salt:       salt,
		StoredKey:  stored[:],
		ServerKey:  hmacSHA256(salted, "Server Key"),
	}, nil
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// errNotSCRAM means rolpassword does not hold a SCRAM-SHA-256 verifier.
var errNotSCRAM = errors.New("not a SCRAM-SHA-256 verifier")

// parseSCRAMVerifier parses PostgreSQL's rolpassword format. It never
// returns the input in its error, since a malformed verifier might still be
// sensitive.
func parseSCRAMVerifier(s string) (scramVerifier, error) {
	rest, ok := strings.CutPrefix(s, scramPrefix)
	if !ok {
		return scramVerifier{}, errNotSCRAM
	}
	iterSalt, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return scramVerifier{}, fmt.Errorf("%w: missing keys", errNotSCRAM)
	}
	iterText, saltText, ok := strings.Cut(iterSalt, ":")
	if !ok {
		return scramVerifier{}, fmt.Errorf("%w: missing salt", errNotSCRAM)
	}
	storedText, serverText, ok := strings.Cut(keys, ":")
	if !ok {
		return scramVerifier{}, fmt.Errorf("%w: missing server key", errNotSCRAM)
	}
	iter, err := strconv.Atoi(iterText)
	// PostgreSQL accepts any positive count; cap it so verifying a hostile
	// verifier cannot stall a plan.
	if err != nil || iter < 1 || iter > 1<<22 {
		return scramVerifier{}, fmt.Errorf("%w: bad iteration count", errNotSCRAM)
	}
	enc := base64.StdEncoding.Strict()
	salt, err := enc.DecodeString(saltText)
	if err != nil || len(salt) == 0 {
		return scramVerifier{}, fmt.Errorf("%w: bad salt", errNotSCRAM)
	}
	stored, err := enc.DecodeString(storedText)
	if err != nil || len(stored) != sha256.Size {
		return scramVerifier{}, fmt.Errorf("%w: bad stored key", errNotSCRAM)
	}
	server, err := enc.DecodeString(serverText)
	if err != nil || len(server) != sha256.Size {
		return scramVerifier{}, fmt.Errorf("%w: bad server key", errNotSCRAM)
	}
	return scramVerifier{Iterations: iter, Salt: salt, StoredKey: stored, ServerKey: server}, nil
}

// verifySCRAM reports whether password matches the stored verifier: it
// recomputes the keys with the verifier's own salt and iteration count, so a
// password that has not changed is never rotated.
func verifySCRAM(password, stored string) (bool, error) {
	v, err := parseSCRAMVerifier(stored)
	if err != nil {
		return false, err
	}
	got, err := computeSCRAM(password, v.Salt, v.Iterations)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got.StoredKey, v.StoredKey) == 1 &&
		subtle.ConstantTimeCompare(got.ServerKey, v.ServerKey) == 1, nil
}

// saslPrep normalises a password the way PostgreSQL's pg_saslprep does
// before hashing (RFC 4013): pure ASCII is used as is; otherwise non-ASCII
// spaces become spaces, "mapped to nothing" characters are dropped, the
// result is NFKC-normalised, and if it then holds a prohibited character or
// breaks the bidi rule the raw password is used instead (PostgreSQL accepts
// passwords SASLprep rejects). Known gap: PostgreSQL also falls back to the
// raw password for code points unassigned in Unicode 3.2 (emoji, for
// instance); here those are normalised like any other, which only matters
// when NFKC changes another character of the same password.
func saslPrep(password string) string {
	ascii := true
	for i := 0; i < len(password); i++ {
		if password[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii || !utf8.ValidString(password) {
		return password
	}
	mapped := make([]rune, 0, len(password))
	for _, r := range password {
		switch {
		case inRanges(r, nonASCIISpace):
			mapped = append(mapped, ' ')
		case inRanges(r, mappedToNothing):
		default:
			mapped = append(mapped, r)
		}
	}
	out := norm.NFKC.String(string(mapped))
	if out == "" {
		return password
	}
	var hasRandAL, hasL bool
	for _, r := range out {
		if inRanges(r, prohibited) || r&0xFFFE == 0xFFFE {
			return password
		}
		switch bidiClass(r) {
		case bidi.R, bidi.AL:
			hasRandAL = true
		case bidi.L:
			hasL = true
		}
	}
	if hasRandAL {
		first, _ := utf8.DecodeRuneInString(out)
		last, _ := utf8.DecodeLastRuneInString(out)
		if hasL || !isRandAL(first) || !isRandAL(last) {
			return password
		}
	}
	return out
}

func bidiClass(r rune) bidi.Class {
	p, _ := bidi.LookupRune(r)
	return p.Class()
}

func isRandAL(r rune) bool {
	c := bidiClass(r)
	return c == bidi.R || c == bidi.AL
}

type runeRange struct{ lo, hi rune }

func inRanges(r rune, rs []runeRange) bool {
	for _, x := range rs {
		if r >= x.lo && r <= x.hi {
			return true
		}
	}
	return false
}

// RFC 3454 table C.1.2.
var nonASCIISpace = []runeRange{
	{0x00A0, 0x00A0}, {0x1680, 0x1680}, {0x2000, 0x200B}, {0x202F, 0x202F},
	{0x205F, 0x205F}, {0x3000, 0x3000},
}

// RFC 3454 table B.1.
var mappedToNothing = []runeRange{
	{0x00AD, 0x00AD}, {0x034F, 0x034F}, {0x1806, 0x1806}, {0x180B, 0x180D},
	{0x200B, 0x200D}, {0x2060, 0x2060}, {0xFE00, 0xFE0F}, {0xFEFF, 0xFEFF},
}

// RFC 3454 tables C.1.2, C.2.1, C.2.2, C.3, C.5, C.6, C.7, C.8, C.9 (C.4's
// xFFFE/xFFFF non-characters are checked separately; its FDD0-FDEF block is
// here).
var prohibited = []runeRange{
	{0x0000, 0x001F}, {0x007F, 0x009F}, {0x00A0, 0x00A0}, {0x0340, 0x0341},
	{0x06DD, 0x06DD}, {0x070F, 0x070F}, {0x1680, 0x1680}, {0x180E, 0x180E},
	{0x2000, 0x200F}, {0x2028, 0x202F}, {0x205F, 0x2063}, {0x206A, 0x206F},
	{0x2FF0, 0x2FFB}, {0x3000, 0x3000}, {0xD800, 0xF8FF}, {0xFDD0, 0xFDEF},
	{0xFEFF, 0xFEFF}, {0xFFF9, 0xFFFD}, {0x1D173, 0x1D17A}, {0xE0001, 0xE0001},
	{0xE0020, 0xE007F}, {0xF0000, 0xFFFFD}, {0x100000, 0x10FFFD},
}
