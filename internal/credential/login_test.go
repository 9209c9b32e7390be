package credential

import (
	"fmt"
	"strings"
	"testing"
)

// TestLogin: a rotating credential's value round-trips; a plain value (or
// one that only looks like JSON) is the declared login's password; no
// printing of a Login shows the password.
func TestLogin(t *testing.T) {
	l := Login{Username: "app_b", Password: New(`p"w{1}`)}
	if got := DecodeLogin(l.Encode(), "app"); got.Username != "app_b" || got.Password.Reveal() != `p"w{1}` {
		t.Fatalf("round trip: %q %q", got.Username, got.Password.Reveal())
	}
	for _, plain := range []string{"s3cret", "{not json", `{"username":"x"}`, `{"password":"y"}`} {
		if got := DecodeLogin(New(plain), "app"); got.Username != "app" || got.Password.Reveal() != plain {
			t.Errorf("%q: got %q %q, want the declared login with the value as password", plain, got.Username, got.Password.Reveal())
		}
	}
	for _, s := range []string{fmt.Sprint(l), fmt.Sprintf("%+v %#v", l, l), fmt.Sprint(l.Encode())} {
		if strings.Contains(s, "p\"w") {
			t.Errorf("printed %q", s)
		}
	}
}
