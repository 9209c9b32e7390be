package config

import (
	"strings"
	"testing"
	"time"
)

// TestTimeouts: every target gets defaults.timeouts, field by field, unless
// it sets its own; defaults.timeouts has a default for each; a bound that is
// not a positive duration is a problem at its path.
func TestTimeouts(t *testing.T) {
	c, err := Load([]byte(minimal), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := Timeouts{
		Connect:   Duration{DefaultConnectTimeout, DefaultConnectTimeout.String()},
		Request:   Duration{DefaultRequestTimeout, DefaultRequestTimeout.String()},
		Statement: Duration{DefaultStatementTimeout, DefaultStatementTimeout.String()},
		Lock:      Duration{DefaultLockTimeout, DefaultLockTimeout.String()},
	}
	if c.Defaults.Timeouts != want || c.Postgres[0].Timeouts != want {
		t.Errorf("defaults %+v, postgres %+v; want %+v", c.Defaults.Timeouts, c.Postgres[0].Timeouts, want)
	}

	c, err = Load([]byte(`
version: 1
defaults:
  timeouts: {connect: 3s, lock: 5s}
postgres:
  - name: health
    host: db
    admin: {password: {secret: pg-admin}}
    timeouts: {lock: 1s}
redis:
  - {name: cache, address: "r:6379"}
`), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	pg, rd := c.Postgres[0].Timeouts, c.Redis[0].Timeouts
	if pg.Lock.Duration != time.Second || pg.Connect.Duration != 3*time.Second || pg.Request.Duration != DefaultRequestTimeout {
		t.Errorf("postgres timeouts %+v: want its own lock, the defaults' connect, the built-in request", pg)
	}
	if rd.Lock.Duration != 5*time.Second || rd.Connect.Duration != 3*time.Second {
		t.Errorf("redis timeouts %+v: want the defaults' lock and connect", rd)
	}

	_, err = Load([]byte(`
version: 1
defaults:
  timeouts: {request: 0s}
postgres:
  - name: health
    host: db
    admin: {password: {secret: pg-admin}}
    timeouts: {statement: -1s}
`), noEnv)
	for _, want := range []string{
		`defaults.timeouts.request: want a positive duration such as 10s or 5m, got "0s"`,
		`postgres[0].timeouts.statement: want a positive duration such as 10s or 5m, got "-1s"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: want %q", err, want)
		}
	}
}
