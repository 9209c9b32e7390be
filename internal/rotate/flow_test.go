package rotate

import (
	"testing"

	"github.com/health-data-ai/bootstrap/internal/credential"
)

// TestOld: which login a rotation retires. Never the standby being set
// (a value is staged), never the current identity (a previous value of the
// same login was changed by hand), on Redis the previous password of the
// one user.
func TestOld(t *testing.T) {
	l := func(u, p string) credential.Login { return credential.Login{Username: u, Password: credential.New(p)} }
	for _, tc := range []struct {
		name string
		kind string
		s    state
		want string // username retired, "" for none
	}{
		{"no previous", "postgres", state{current: l("app_a", "1")}, ""},
		{"other identity", "postgres", state{current: l("app_b", "2"), previous: l("app_a", "1"), hasPrevious: true}, "app_a"},
		{"legacy login", "rabbitmq", state{current: l("app_a", "2"), previous: l("app", "1"), hasPrevious: true}, "app"},
		{"staged: previous is the standby", "postgres", state{current: l("app_b", "2"), previous: l("app_a", "1"), hasPrevious: true, pending: l("app_a", "3"), hasPending: true}, ""},
		{"same login changed by hand", "postgres", state{current: l("app", "2"), previous: l("app", "1"), hasPrevious: true}, ""},
		{"redis: previous password", "redis", state{current: l("app", "2"), previous: l("app", "1"), hasPrevious: true}, "app"},
		{"redis: same password", "redis", state{current: l("app", "2"), previous: l("app", "2"), hasPrevious: true}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.s.old(tc.kind)
			if !ok {
				got.Username = ""
			}
			if got.Username != tc.want {
				t.Fatalf("old() = %q, want %q", got.Username, tc.want)
			}
		})
	}
}
