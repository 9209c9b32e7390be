package redis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

func TestParseRole(t *testing.T) {
	for _, tc := range []struct{ info, want string }{
		{"# Replication\r\nrole:master\r\nconnected_slaves:0\r\n", "master"},
		{"# Replication\r\nrole:slave\r\nmaster_host:10.0.0.1\r\n", "replica"},
		{"role:replica\n", "replica"},
		{"  role:MASTER  \n", "master"},
		{"# Replication\r\nconnected_slaves:0\r\n", ""},
		{"", ""},
	} {
		if got := parseRole(tc.info); got != tc.want {
			t.Errorf("parseRole(%q) = %q, want %q", tc.info, got, tc.want)
		}
	}
}

func TestNormaliseRole(t *testing.T) {
	for in, want := range map[string]string{"slave": "replica", "Replica": "replica", " master ": "master", "sentinel": "sentinel"} {
		if got := normaliseRole(in); got != want {
			t.Errorf("normaliseRole(%q) = %q, want %q", in, got, want)
		}
	}
}

// redisErr stands in for a server reply; go-redis's own type is internal.
type redisErr string

func (e redisErr) Error() string { return string(e) }
func (redisErr) RedisError()     {}

func TestUnavailable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{redisErr("ERR unknown command 'CONFIG', with args beginning with: 'GET' 'appendonly' "), true},
		{redisErr("ERR unknown command `CONFIG`, with args beginning with: "), true},
		{redisErr("NOPERM User check has no permissions to run the 'config|get' command"), true},
		{redisErr("NOPERM this user has no permissions to run the 'info' command"), true},
		{redisErr("ERR CONFIG command disabled"), true},
		{fmt.Errorf("read appendonly: %w", redisErr("ERR unknown command 'CONFIG'")), true},
		{redisErr("LOADING Redis is loading the dataset in memory"), false},
		{redisErr("WRONGPASS invalid username-password pair or user is disabled."), false},
		{errors.New("unknown command"), false}, // not a server reply
		{errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), false},
	} {
		if got := unavailable(tc.err); got != tc.want {
			t.Errorf("unavailable(%q) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestIsAuthMessage(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{redisErr("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"), true},
		{redisErr("ERR invalid password"), true},
		{redisErr("ERR unknown command 'CONFIG'"), false},
		{errors.New("invalid password"), false},
	} {
		if got := isAuthMessage(tc.err); got != tc.want {
			t.Errorf("isAuthMessage(%q) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestSettings(t *testing.T) {
	tgt := New(config.Redis{Name: "x", Expect: config.RedisExpect{MaxmemoryPolicy: "AllKeys-LRU", Appendonly: boolp(true)}}, nil, nil)
	got := fmt.Sprint(tgt.settings())
	if want := "[{maxmemory-policy allkeys-lru} {appendonly yes}]"; got != want {
		t.Errorf("settings %s, want %s", got, want)
	}
	if s := New(config.Redis{Name: "x"}, nil, nil).settings(); len(s) != 0 {
		t.Errorf("no expectations gave settings %v", s)
	}
}

func TestScrub(t *testing.T) {
	tgt := New(config.Redis{Name: "x"}, nil, nil)
	tgt.pw = credential.New("hunter2secret")
	base := errors.New("server said: hunter2secret is wrong")
	err := tgt.scrub(fmt.Errorf("auth: %w", base))
	if strings.Contains(err.Error(), "hunter2secret") || !strings.Contains(err.Error(), credential.Redacted) {
		t.Errorf("scrub left %q", err)
	}
	if !errors.Is(err, base) {
		t.Error("scrub broke the error chain")
	}
	clean := errors.New("connection refused")
	if tgt.scrub(clean) != clean {
		t.Error("scrub rewrote an error without the password")
	}
}

func TestNotConnected(t *testing.T) {
	tgt := New(config.Redis{Name: "x"}, nil, nil)
	if _, err := tgt.Plan(context.Background()); err == nil {
		t.Error("plan before connect succeeded")
	}
	if err := tgt.Close(); err != nil {
		t.Errorf("close before connect: %v", err)
	}
}

func TestConnectErrorClassification(t *testing.T) {
	tgt := New(config.Redis{Name: "x", Address: "10.0.0.5:6379"}, nil, nil)
	for _, tc := range []struct {
		err       error
		permanent bool
	}{
		{redisErr("LOADING Redis is loading the dataset in memory"), false},
		{errors.New("dial tcp 10.0.0.5:6379: connect: connection refused"), false},
		{redisErr("WRONGPASS invalid username-password pair or user is disabled."), true},
		{redisErr("NOAUTH Authentication required."), true},
		{redisErr("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"), true},
		{redisErr("NOPERM User x has no permissions to run the 'ping' command"), true},
		{tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, true},
		{fmt.Errorf("dial: %w", x509.UnknownAuthorityError{}), true},
	} {
		err := tgt.connectError(context.Background(), tc.err)
		if got := reconcile.IsPermanent(err); got != tc.permanent {
			t.Errorf("%q: permanent %v, want %v", tc.err, got, tc.permanent)
		}
		if !strings.Contains(err.Error(), "redis/x") || !strings.Contains(err.Error(), "10.0.0.5:6379") {
			t.Errorf("%q: error %q does not name the instance and address", tc.err, err)
		}
	}
}
