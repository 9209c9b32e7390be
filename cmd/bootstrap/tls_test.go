package main

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// tlsEntry is one target of the TLS tests: a config entry with %s where its
// tls settings go, served by a real server that speaks TLS with a
// certificate of the test CA for localhost and 127.0.0.1.
type tlsEntry struct {
	target string
	entry  func(tls string) string
	// pgTLS: PostgreSQL says sslmode beside tls; the others say tls only.
	pgTLS bool
}

func tlsEntries(t *testing.T) []tlsEntry {
	pg := testenv.Postgres(t, "health")
	redisAddr := testenv.RedisTLS(t, "health")
	amqps, mgmt := testenv.RabbitMQTLS(t)
	rmq := testenv.RabbitMQ(t)
	mio := testenv.MinIOTLS(t)
	_, amqpsPort, _ := net.SplitHostPort(amqps)
	_, mgmtPort, _ := net.SplitHostPort(mgmt)
	t.Setenv("BOOTSTRAP_TEST_TLS_PG", pg.Password)
	t.Setenv("BOOTSTRAP_TEST_TLS_REDIS", testenv.Redis(t, "health").Password)
	t.Setenv("BOOTSTRAP_TEST_TLS_RABBIT", rmq.Password)
	t.Setenv("BOOTSTRAP_TEST_TLS_S3_USER", mio.AccessKey)
	t.Setenv("BOOTSTRAP_TEST_TLS_S3_KEY", mio.SecretKey)
	for _, s := range []string{pg.Password, rmq.Password, mio.SecretKey} {
		suite.secret(s)
	}
	return []tlsEntry{
		{"postgres/tls", func(tls string) string {
			return fmt.Sprintf("postgres:\n  - {name: tls, host: %s, port: %d, %s, admin: {password: {secret: pg}}}", pg.Host, pg.Port, tls)
		}, true},
		{"redis/tls", func(tls string) string {
			return fmt.Sprintf("redis:\n  - {name: tls, address: %q, tls: %s, password: {secret: redis}}", redisAddr, tls)
		}, false},
		{"minio/tls", func(tls string) string {
			return fmt.Sprintf("minio:\n  - {name: tls, endpoint: %q, tls: %s, accessKey: {secret: s3-user}, secretKey: {secret: s3-key}}", mio.Endpoint, tls)
		}, false},
		{"rabbitmq/tls", func(tls string) string {
			return fmt.Sprintf("rabbitmq:\n  - {name: tls, host: %s, port: %s, managementPort: %s, tls: %s, user: %s, password: {secret: rabbit}}",
				rmq.Host, amqpsPort, mgmtPort, tls, rmq.User)
		}, false},
	}
}

// tlsSetting renders a tls block (and PostgreSQL's sslmode).
func (e tlsEntry) tlsSetting(caFile, serverName string) string {
	block := "{caFile: " + caFile
	if serverName != "" {
		block += ", serverName: " + serverName
	}
	block += "}"
	if e.pgTLS {
		return "sslmode: verify-full, tls: " + block
	}
	return block
}

func tlsConfig(entry string) string {
	return "version: 1\ndefaults: {waitTimeout: 60s, timeouts: {connect: 5s, request: 10s}}\n" +
		"secrets:\n  source: {type: env, env: {prefix: BOOTSTRAP_TEST_TLS_}}\n" + entry + "\n"
}

// failedWith returns the error of the report's failed resource of target.
func failedWith(r reconcile.Report, target string) string {
	for _, ch := range r.Changes {
		if ch.Status == reconcile.Failed && strings.HasPrefix(ch.Resource, target) {
			return ch.Error
		}
	}
	return ""
}

// TestTLSVerifiesEveryServer: against real servers speaking TLS, the right
// CA connects; a CA that did not sign the server's certificate, or a server
// name the certificate does not hold, fails at once (no waiting: it cannot
// heal), exit 1, naming the target and the reason — the client stopped in
// the handshake, before any credential was sent.
func TestTLSVerifiesEveryServer(t *testing.T) {
	files := testenv.TLS(t)
	for _, e := range tlsEntries(t) {
		t.Run(e.target, func(t *testing.T) {
			code, _, stderr := runConfig(t, 60*time.Second, tlsConfig(e.entry(e.tlsSetting(files.CA, ""))), "plan")
			if code != exitOK {
				t.Fatalf("right CA: exit %d, want 0:\n%s", code, stderr)
			}
			for _, c := range []struct{ name, ca, serverName, want string }{
				{"other CA", files.OtherCA, "", "certificate signed by unknown authority"},
				{"wrong server name", files.CA, "db.invalid", "not db.invalid"},
			} {
				start := time.Now()
				code, r, stderr := runConfig(t, 60*time.Second, tlsConfig(e.entry(e.tlsSetting(c.ca, c.serverName))), "plan")
				msg := failedWith(r, e.target)
				switch {
				case code != exitFailed:
					t.Errorf("%s: exit %d, want 1:\n%s", c.name, code, stderr)
				case !strings.Contains(msg, c.want):
					t.Errorf("%s: the failure of %s does not say %q: %q", c.name, e.target, c.want, msg)
				case time.Since(start) > 20*time.Second:
					t.Errorf("%s: took %s: a certificate that does not verify was waited on", c.name, time.Since(start))
				}
				t.Logf("%s: %s", c.name, msg)
			}
		})
	}
}

// TestTLSSkipVerifyWarns: insecureSkipVerify (PostgreSQL: sslmode require)
// connects to a server whose CA we do not know, and says on every run that
// nothing was checked.
func TestTLSSkipVerifyWarns(t *testing.T) {
	for _, e := range tlsEntries(t) {
		t.Run(e.target, func(t *testing.T) {
			setting := "{insecureSkipVerify: true}"
			if e.pgTLS {
				setting = "sslmode: require"
			}
			for run := range 2 {
				code, _, stderr := runConfig(t, 60*time.Second, tlsConfig(e.entry(setting)), "plan")
				if code != exitOK {
					t.Fatalf("exit %d, want 0:\n%s", code, stderr)
				}
				if !strings.Contains(stderr, "certificate is not checked") || !strings.Contains(stderr, "target="+e.target) {
					t.Errorf("run %d: no warning naming %s:\n%s", run+1, e.target, stderr)
				}
			}
		})
	}
}

// TestPostgresRefusesCleartextPassword: a server that asks for the password
// in clear (here a real PostgreSQL whose pg_hba says `password` for one
// role; in the wild, whoever sits in between) gets nothing: with TLS on,
// only SCRAM bound to the TLS channel is accepted. Without that rule pgx
// would send the password and log in.
func TestPostgresRefusesCleartextPassword(t *testing.T) {
	files := testenv.TLS(t)
	pg := testenv.Postgres(t, "health")
	t.Setenv("BOOTSTRAP_TEST_TLS_PG", pg.Password)
	suite.secret(pg.Password)
	entry := fmt.Sprintf("postgres:\n  - {name: cleartext, host: %s, port: %d, sslmode: verify-full, tls: {caFile: %s}, admin: {user: bootstrap_cleartext, password: {secret: pg}}}",
		pg.Host, pg.Port, files.CA)
	code, r, stderr := runConfig(t, 60*time.Second, tlsConfig(entry), "plan")
	msg := failedWith(r, "postgres/cleartext")
	if code != exitFailed || !strings.Contains(msg, "password") || strings.Contains(msg, "superuser") {
		t.Fatalf("exit %d, failure %q: want 1 and the server's request for a cleartext password refused (not a login that then lacks superuser):\n%s", code, msg, stderr)
	}
	t.Logf("refused: %s", msg)
}
