package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// Verifiers PostgreSQL 15 stored for `SET password_encryption =
// 'scram-sha-256'; CREATE ROLE ... PASSWORD '<password>'`.
var serverVectors = []struct{ password, stored string }{
	{"pencil", "SCRAM-SHA-256$4096:m4AfujY33Wegk4STfN4R7g==$pkYecJQGQ3IcmDkJnP6+YWMaiDyIEBHfEtNNOJqMusQ=:oFbME0oIxzKTk3Y3AZYi/9O0Gebu2pdoR0WhydJ3pg4="},
	// Composed umlauts: NFKC leaves them alone.
	{"p\u00e4ssw\u00f6rd", "SCRAM-SHA-256$4096:70tPEU3tLSRQLwCqzVmucw==$MykYmnOpAforhzD/wbpDY7mBfSUQYkPlAYBCj6e+umo=:Q5q0v9ByZpkqORiiVS9dOs5GVGYM0S0FLQVZtkXzK3k="},
	// Full-width letters and a Roman numeral: SASLprep's NFKC folds them.
	{"\uff50\uff41\uff53\uff53 \u2168", "SCRAM-SHA-256$4096:3bqTh/RVhifd+ENMrzBz6A==$lQ4SinBed/nf0ZQtWGRc3RdpxXxUemo472UQZsoE3sg=:lRM5B2zEnqAxXVvCHmvz6GZ2X7NgM/Mc60FO3oJoh5M="},
}

func TestVerifySCRAMKnownVectors(t *testing.T) {
	for _, v := range serverVectors {
		ok, err := verifySCRAM(v.password, v.stored)
		if err != nil || !ok {
			t.Errorf("verify(%q) = %v, %v; want true", v.password, ok, err)
		}
		ok, err = verifySCRAM(v.password+"x", v.stored)
		if err != nil || ok {
			t.Errorf("verify(%q+x) = %v, %v; want false", v.password, ok, err)
		}
	}
}

func TestNewSCRAMVerifierRoundTrip(t *testing.T) {
	for _, pw := range []string{"pencil", "", "with 'quote' and \\", "p\u00e4ssw\u00f6rd", "\u05d0\u05d1"} {
		s, err := newSCRAMVerifier(pw)
		if err != nil {
			t.Fatal(err)
		}
		v, err := parseSCRAMVerifier(s)
		if err != nil {
			t.Fatalf("parse own verifier: %v", err)
		}
		if v.Iterations != 4096 || len(v.Salt) != 16 {
			t.Errorf("iterations %d salt %d bytes, want 4096 and 16", v.Iterations, len(v.Salt))
		}
		if v.String() != s {
			t.Errorf("format round trip: %q != %q", v.String(), s)
		}
		if ok, _ := verifySCRAM(pw, s); !ok {
			t.Errorf("own verifier for %q does not verify", pw)
		}
		if strings.Contains(s, "'") || (pw != "" && strings.Contains(s, pw)) {
			t.Errorf("verifier %q holds a quote or the password", s)
		}
		s2, _ := newSCRAMVerifier(pw)
		if s2 == s {
			t.Error("two verifiers of one password share a salt")
		}
	}
}

func TestParseSCRAMVerifier(t *testing.T) {
	good := serverVectors[0].stored
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"server", good, true},
		{"md5", "md5" + strings.Repeat("a", 32), false},
		{"empty", "", false},
		{"prefix only", "SCRAM-SHA-256$", false},
		{"no keys", "SCRAM-SHA-256$4096:m4AfujY33Wegk4STfN4R7g==", false},
		{"no salt", strings.Replace(good, ":m4AfujY33Wegk4STfN4R7g==", "", 1), false},
		{"zero iterations", strings.Replace(good, "$4096:", "$0:", 1), false},
		{"huge iterations", strings.Replace(good, "$4096:", "$99999999:", 1), false},
		{"bad base64", strings.Replace(good, "m4Af", "m4A!", 1), false},
		{"short key", strings.Replace(good, "pkYecJQGQ3IcmDkJnP6+YWMaiDyIEBHfEtNNOJqMusQ=", "pkYe", 1), false},
		{"no server key", good[:strings.LastIndex(good, ":")], false},
		{"sha1", strings.Replace(good, "SCRAM-SHA-256", "SCRAM-SHA-1", 1), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseSCRAMVerifier(tc.in)
			if (err == nil) != tc.ok {
				t.Errorf("parse(%q) error = %v, want ok=%v", tc.in, err, tc.ok)
			}
			if err != nil && tc.in != "" && strings.Contains(err.Error(), tc.in) {
				t.Errorf("error echoes the input: %v", err)
			}
		})
	}
}

func TestSASLPrep(t *testing.T) {
	tests := []struct{ in, want string }{
		{"pencil", "pencil"},
		{"ctrl\x01ascii", "ctrl\x01ascii"}, // pure ASCII is used as is
		{"I\u00adX", "IX"},                 // soft hyphen maps to nothing
		{"a\u00a0b", "a b"},                // non-ASCII space maps to space
		{"\u2168", "IX"},                   // NFKC
		{"\uff41", "a"},                    // full width
		{"a\u0007\u00e9", "a\u0007\u00e9"}, // prohibited control: raw
		{"\ue000x", "\ue000x"},             // private use: raw
		{"\u05d0a", "\u05d0a"},             // mixed bidi: raw
		{"\u05d0\u05d1", "\u05d0\u05d1"},   // RandAL only: fine
		{"\xff\xfe", "\xff\xfe"},           // invalid UTF-8: raw
	}
	for _, tc := range tests {
		if got := saslPrep(tc.in); got != tc.want {
			t.Errorf("saslPrep(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestVerifySCRAMAgainstServer has the real server hash passwords itself and
// checks that verify accepts what it stored, and that the server accepts
// logins with verifiers computed here (the apply path).
func TestVerifySCRAMAgainstServer(t *testing.T) {
	for _, inst := range []string{"health", "auth"} {
		t.Run(inst, func(t *testing.T) {
			pg := testenv.Postgres(t, inst)
			ctx := context.Background()
			admin := adminConn(t, pg, "postgres")
			for i, pw := range []string{"pencil", "p\u00e4ssw\u00f6rd", "\uff50\uff41\uff53\uff53 \u2168", "I\u00adX y", randomPassword()} {
				role := testenv.Unique("scramvec")
				t.Cleanup(func() { dropRoles(t, pg, role) })
				// Keep the plaintext out of the server log: logging is
				// decided when a query arrives, so turn it off first.
				if _, err := admin.Exec(ctx, "SET log_statement = 'none'"); err != nil {
					t.Fatal(err)
				}
				_, err := admin.Exec(ctx, "SET password_encryption = 'scram-sha-256'; CREATE ROLE "+ident(role)+" LOGIN PASSWORD "+literal(pw))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := admin.Exec(ctx, "RESET log_statement"); err != nil {
					t.Fatal(err)
				}
				var stored string
				if err := admin.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", role).Scan(&stored); err != nil {
					t.Fatal(err)
				}
				if ok, err := verifySCRAM(pw, stored); err != nil || !ok {
					t.Errorf("vector %d: verify against the server's verifier = %v, %v", i, ok, err)
				}
				if ok, _ := verifySCRAM(pw+"!", stored); ok {
					t.Errorf("vector %d: a wrong password verifies", i)
				}
			}
		})
	}
}

func FuzzParseVerifier(f *testing.F) {
	for _, v := range serverVectors {
		f.Add(v.stored)
	}
	f.Add("SCRAM-SHA-256$1:AA==$" + strings.Repeat("A", 43) + "=:" + strings.Repeat("A", 43) + "=")
	f.Add("md5abc")
	f.Add("SCRAM-SHA-256$$:")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseSCRAMVerifier(s)
		if err != nil {
			return
		}
		again, err := parseSCRAMVerifier(v.String())
		if err != nil {
			t.Fatalf("formatted verifier does not parse: %v", err)
		}
		if again.String() != v.String() {
			t.Fatalf("round trip changed the verifier: %q -> %q", v.String(), again.String())
		}
		if v.Iterations > 64 {
			return // keep the fuzzer fast
		}
		if _, err := verifySCRAM("x", s); err != nil {
			t.Fatalf("verify of a parsed verifier failed: %v", err)
		}
	})
}
