package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// suite collects every output (report, log) of every run in this package's
// tests and every credential value they used; after the tests, leakScanned
// fails the package if any value appears in any output.
var suite recorder

type recorder struct {
	mu      sync.Mutex
	out     bytes.Buffer
	secrets map[string]bool
}

func (r *recorder) output(b []byte) {
	r.mu.Lock()
	r.out.Write(b)
	r.out.WriteByte('\n')
	r.mu.Unlock()
}

func (r *recorder) secret(v string) {
	r.mu.Lock()
	if r.secrets == nil {
		r.secrets = map[string]bool{}
	}
	r.secrets[v] = true
	r.mu.Unlock()
}

type leakScanned struct{ m *testing.M }

func (l leakScanned) Run() int {
	code := l.m.Run()
	// The servers' own credentials are used by every test too.
	for _, k := range []string{"BOOTSTRAP_TEST_PG_PASSWORD", "BOOTSTRAP_TEST_REDIS_PASSWORD", "BOOTSTRAP_TEST_RABBITMQ_PASSWORD", "BOOTSTRAP_TEST_MINIO_PASSWORD", "BOOTSTRAP_TEST_MINIO_USER"} {
		if v := testenv.Getenv(k); v != "" {
			suite.secret(v)
		}
	}
	suite.mu.Lock()
	defer suite.mu.Unlock()
	all := suite.out.String()
	leaks := 0
	for v := range suite.secrets {
		if len(v) >= 8 && strings.Contains(all, v) {
			leaks++
		}
	}
	fmt.Fprintf(os.Stderr, "leak scan: %d credential value(s) against %d bytes of reports and logs: %d found\n", len(suite.secrets), len(all), leaks)
	if leaks > 0 && code == 0 {
		return 1
	}
	return code
}
