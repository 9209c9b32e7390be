package testenv

import (
	"os"
	"strings"
	"testing"
)

// TLSFiles are the PEM files of the test environment's CA. Every TLS server
// of scripts/testenv.sh presents a certificate from CA for localhost and
// 127.0.0.1, so any other server name fails verification.
type TLSFiles struct {
	CA string
	// OtherCA is an unrelated CA: a client trusting it must refuse every server.
	OtherCA string
	// ClientCert and ClientKey are a client certificate from CA.
	ClientCert string
	ClientKey  string
}

// TLS returns the CA files, for tests of a TLS client against the real servers.
func TLS(t testing.TB) TLSFiles {
	t.Helper()
	v := need(t, "BOOTSTRAP_TEST_TLS_CA", "BOOTSTRAP_TEST_TLS_OTHER_CA",
		"BOOTSTRAP_TEST_TLS_CLIENT_CERT", "BOOTSTRAP_TEST_TLS_CLIENT_KEY")
	for _, p := range v {
		if _, err := os.Stat(p); err != nil {
			Missing(t, "TLS file "+p)
		}
	}
	return TLSFiles{CA: v[0], OtherCA: v[1], ClientCert: v[2], ClientKey: v[3]}
}

// RedisTLS returns the TLS address of Redis instance "health" or "auth": the
// same server, and password, as Redis(t, instance).
func RedisTLS(t testing.TB, instance string) string {
	t.Helper()
	addr := need(t, "BOOTSTRAP_TEST_REDIS_"+strings.ToUpper(instance)+"_TLS")[0]
	reachable(t, "Redis "+instance+" TLS", addr)
	return addr
}

// RabbitMQTLS returns the AMQPS and HTTPS management addresses of the broker
// of RabbitMQ(t), which takes the same user.
func RabbitMQTLS(t testing.TB) (amqps, mgmt string) {
	t.Helper()
	v := need(t, "BOOTSTRAP_TEST_RABBITMQ_TLS", "BOOTSTRAP_TEST_RABBITMQ_MGMT_TLS")
	reachable(t, "RabbitMQ TLS", v[0])
	reachable(t, "RabbitMQ management TLS", v[1])
	return v[0], v[1]
}

// MinIOTLS returns a second MinIO, with the credentials of MinIO(t), that
// speaks only HTTPS: MinIO has no plain and TLS port side by side.
func MinIOTLS(t testing.TB) MinIOServer {
	t.Helper()
	v := need(t, "BOOTSTRAP_TEST_MINIO_TLS", "BOOTSTRAP_TEST_MINIO_USER", "BOOTSTRAP_TEST_MINIO_PASSWORD")
	reachable(t, "MinIO TLS", v[0])
	return MinIOServer{Endpoint: v[0], AccessKey: v[1], SecretKey: v[2]}
}
