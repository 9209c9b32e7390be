package redis

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/health-data-ai/bootstrap/internal/credential"
)

// TestParseUser reads ACL GETUSER's reply as Redis 7 and Redis 6 give it:
// on, off and nopass are set apart from the other flags, passwords are
// hashes, and the rest is rendered for comparison.
func TestParseUser(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply []any
		want  aclUser
	}{
		{"redis 7", []any{
			"flags", []any{"on", "sanitize-payload"},
			"passwords", []any{"aa", "bb"},
			"commands", "+@all -@dangerous",
			"keys", "~health:*",
			"channels", "&chan:*",
			"selectors", []any{},
		}, aclUser{exists: true, on: true, hashes: []string{"aa", "bb"}, rules: map[string]string{
			"flags": "sanitize-payload", "commands": "+@all -@dangerous", "keys": "~health:*", "channels": "&chan:*", "selectors": "[]",
		}}},
		{"redis 6", []any{
			"flags", []any{"off", "nopass", "allchannels"},
			"passwords", []any{},
			"commands", "-@all +get",
			"keys", []any{"health:*", "other:*"},
			"channels", []any{"*"},
		}, aclUser{exists: true, nopass: true, hashes: []string{}, rules: map[string]string{
			"flags": "allchannels", "commands": "-@all +get", "keys": "[health:* other:*]", "channels": "[*]",
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseUser(tc.reply)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	if _, err := parseUser([]any{"flags"}); err == nil {
		t.Error("an odd reply parsed")
	}
}

func TestRuleDiff(t *testing.T) {
	have := map[string]string{"commands": "+@all", "keys": "~a:*", "flags": "sanitize-payload"}
	want := map[string]string{"commands": "+@all -@dangerous", "keys": "~a:*", "flags": "sanitize-payload", "channels": "&c"}
	got := ruleDiff(have, want)
	exp := []string{`channels "" -> &c`, "commands +@all -> +@all -@dangerous"}
	if !reflect.DeepEqual(got, exp) {
		t.Errorf("got %q, want %q", got, exp)
	}
	if d := ruleDiff(want, want); d != nil {
		t.Errorf("equal rules differ: %q", d)
	}
}

func TestSessionsOf(t *testing.T) {
	list := "id=3 addr=10.0.0.5:51234 laddr=10.0.0.1:6379 fd=8 name=worker age=9 db=0 user=app lib-name=go-redis\n" +
		"id=4 addr=10.0.0.6:40000 fd=9 name= age=1 db=0 user=app lib-name=redis-py\n" +
		"id=5 addr=10.0.0.7:40001 fd=9 name= age=1 db=0 user=app\n" +
		"id=6 addr=10.0.0.8:40002 fd=10 name=admin age=1 db=0 user=default\n" +
		"id=7 addr=10.0.0.9:40003 fd=11 name= age=1 db=0 user=apple\n"
	got := sessionsOf(list, "app")
	want := []string{"10.0.0.5:51234 (worker)", "10.0.0.6:40000 (redis-py)", "10.0.0.7:40001"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if s := sessionsOf(list, "nobody"); s != nil {
		t.Errorf("no sessions: %q, want nil", s)
	}
}

func TestRedact(t *testing.T) {
	pw := credential.New("s3cret-value")
	err := fmt.Errorf("ACL SETUSER app: %w", redisErr("ERR Error in ACL SETUSER modifier '#"+passwordHash(pw)+"': bad; '>s3cret-value'"))
	got := redact(err, pw)
	if strings.Contains(got.Error(), pw.Reveal()) || strings.Contains(got.Error(), passwordHash(pw)) {
		t.Errorf("not redacted: %v", got)
	}
	var re redisErr
	if !errors.As(got, &re) {
		t.Error("the cause is no longer wrapped")
	}
	plain := errors.New("connection refused")
	if redact(plain, pw) != plain || redact(nil, pw) != nil {
		t.Error("an error without a secret must pass unchanged")
	}
}

func TestPasswordHash(t *testing.T) {
	// echo -n foobar | sha256sum
	if h := passwordHash(credential.New("foobar")); h != "c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2" {
		t.Errorf("hash %s", h)
	}
}
