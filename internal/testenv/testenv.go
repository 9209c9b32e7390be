// Package testenv gives tests the real servers started by scripts/testenv.sh.
// Tests find them through BOOTSTRAP_TEST_* environment variables (or the env
// file the script writes) and skip when a server is absent — except under
// BOOTSTRAP_TEST_REQUIRE=1, which CI sets, where a missing server fails the
// test instead of silently passing.
package testenv

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// DefaultDir is where scripts/testenv.sh keeps its data and env file unless
// BOOTSTRAP_TESTENV_DIR says otherwise.
const DefaultDir = "/var/tmp/bootstrap-testenv"

var (
	fileOnce sync.Once
	fileVars map[string]string
)

// Dir is the test environment's data folder.
func Dir() string {
	if d := os.Getenv("BOOTSTRAP_TESTENV_DIR"); d != "" {
		return d
	}
	return DefaultDir
}

// Getenv returns a BOOTSTRAP_TEST_* variable from the process environment or,
// failing that, from the env file the test-environment script wrote.
func Getenv(key string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	fileOnce.Do(func() {
		fileVars = map[string]string{}
		f, err := os.Open(filepath.Join(Dir(), "env"))
		if err != nil {
			return
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export ")
			k, v, ok := strings.Cut(line, "=")
			if !ok || strings.HasPrefix(k, "#") {
				continue
			}
			fileVars[k] = strings.Trim(v, `'"`)
		}
	})
	return fileVars[key]
}

// Required reports whether missing servers fail tests (BOOTSTRAP_TEST_REQUIRE=1).
func Required() bool { return os.Getenv("BOOTSTRAP_TEST_REQUIRE") == "1" }

// Missing skips the test, or fails it under BOOTSTRAP_TEST_REQUIRE=1.
func Missing(t testing.TB, what string) {
	t.Helper()
	msg := what + " is not available (run scripts/testenv.sh up)"
	if Required() {
		t.Fatal(msg + "; BOOTSTRAP_TEST_REQUIRE=1 makes this a failure")
	}
	t.Skip(msg)
}

func need(t testing.TB, keys ...string) []string {
	t.Helper()
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = Getenv(k)
		if out[i] == "" {
			Missing(t, k)
		}
	}
	return out
}

func reachable(t testing.TB, what, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		Missing(t, what+" at "+addr+" ("+err.Error()+")")
		return
	}
	c.Close()
}

func splitPort(t testing.TB, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("testenv: bad address %q: %v", addr, err)
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

// PG is a PostgreSQL server with scram-sha-256 auth and a superuser.
type PG struct {
	Host     string
	Port     int
	User     string
	Password string
	// LogFile is the server log (log_statement=all), for leak scans.
	LogFile string
}

// Postgres returns PostgreSQL instance "health" or "auth": Debian's
// (BOOTSTRAP_TEST_PG_HEALTH, _AUTH), or under BOOTSTRAP_TEST_PG_MAJOR=16 the
// instances of that major (BOOTSTRAP_TEST_PG16_HEALTH, _AUTH), which must
// then run that major.
func Postgres(t testing.TB, instance string) PG {
	t.Helper()
	up := "BOOTSTRAP_TEST_PG_" + strings.ToUpper(instance)
	if m := PGMajor(); m != "" {
		up = "BOOTSTRAP_TEST_PG" + m + "_" + strings.ToUpper(instance)
	}
	v := need(t, up, "BOOTSTRAP_TEST_PG_PASSWORD")
	reachable(t, "PostgreSQL "+instance, v[0])
	h, p := splitPort(t, v[0])
	pg := PG{Host: h, Port: p, User: "postgres", Password: v[1], LogFile: Getenv(up + "_LOG")}
	pg.checkMajor(t)
	return pg
}

// RedisServer is a Redis server with requirepass.
type RedisServer struct {
	Addr     string
	Password string
	// Port is the port alone, for tests that stop and restart it.
	Port int
}

// Redis returns Redis instance "health" or "auth".
func Redis(t testing.TB, instance string) RedisServer {
	t.Helper()
	v := need(t, "BOOTSTRAP_TEST_REDIS_"+strings.ToUpper(instance), "BOOTSTRAP_TEST_REDIS_PASSWORD")
	reachable(t, "Redis "+instance, v[0])
	_, p := splitPort(t, v[0])
	return RedisServer{Addr: v[0], Password: v[1], Port: p}
}

// RabbitServer is a RabbitMQ broker with the management plugin.
type RabbitServer struct {
	Host           string
	Port           int
	ManagementPort int
	User           string
	Password       string
}

// RabbitMQ returns the RabbitMQ broker.
func RabbitMQ(t testing.TB) RabbitServer {
	t.Helper()
	v := need(t, "BOOTSTRAP_TEST_RABBITMQ", "BOOTSTRAP_TEST_RABBITMQ_MGMT", "BOOTSTRAP_TEST_RABBITMQ_USER", "BOOTSTRAP_TEST_RABBITMQ_PASSWORD")
	reachable(t, "RabbitMQ", v[0])
	reachable(t, "RabbitMQ management", v[1])
	h, p := splitPort(t, v[0])
	_, mp := splitPort(t, v[1])
	return RabbitServer{Host: h, Port: p, ManagementPort: mp, User: v[2], Password: v[3]}
}

// MinIOServer is an S3 endpoint.
type MinIOServer struct {
	Endpoint  string
	AccessKey string
	SecretKey string
}

// MinIO returns the MinIO server.
func MinIO(t testing.TB) MinIOServer {
	t.Helper()
	v := need(t, "BOOTSTRAP_TEST_MINIO", "BOOTSTRAP_TEST_MINIO_USER", "BOOTSTRAP_TEST_MINIO_PASSWORD")
	reachable(t, "MinIO", v[0])
	return MinIOServer{Endpoint: v[0], AccessKey: v[1], SecretKey: v[2]}
}

// Unique returns prefix plus a random suffix: lower case letters and digits,
// valid as a role, database, bucket, vhost or queue name on every server.
func Unique(prefix string) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// KubeServer is a real kube-apiserver (with etcd) and an admin kubeconfig.
type KubeServer struct {
	// Kubeconfig is the path of an admin kubeconfig for the server.
	Kubeconfig string
	// Server is the API server URL.
	Server string
}

// Kube returns the kube-apiserver started by scripts/testenv.d/kube.sh.
func Kube(t testing.TB) KubeServer {
	t.Helper()
	v := need(t, "BOOTSTRAP_TEST_KUBECONFIG", "BOOTSTRAP_TEST_KUBE_APISERVER")
	host := strings.TrimPrefix(strings.TrimPrefix(v[1], "https://"), "http://")
	reachable(t, "kube-apiserver", host)
	return KubeServer{Kubeconfig: v[0], Server: v[1]}
}

// Tool returns the path of a tool the test environment installed (helm,
// kubectl, kubeseal, ...), from BOOTSTRAP_TEST_<NAME>.
func Tool(t testing.TB, name string) string {
	t.Helper()
	key := "BOOTSTRAP_TEST_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	p := need(t, key)[0]
	if _, err := os.Stat(p); err != nil {
		Missing(t, name+" at "+p)
	}
	return p
}

// NodeServer is the one Kubernetes node of scripts/testenv.d/node.sh: a
// kubelet (node Name) with containerd, kube-controller-manager and
// kube-scheduler, for the API server of Kube. Nothing is pulled: images are
// imported into containerd (package internal/testenv/node writes them), and
// pods say imagePullPolicy: Never. Pods reach the test env's servers, all on
// 127.0.0.1, with hostNetwork: true.
type NodeServer struct {
	KubeServer
	// Name is the node's name.
	Name string
	// Containerd is the path of containerd's socket, for
	// `ctr --address Containerd -n k8s.io images import ARCHIVE`.
	Containerd string
	// Ctr is the path of the ctr binary.
	Ctr string
	// PodLogs is the kubelet's podLogsDir, readable here.
	PodLogs string
	// PauseImage is the sandbox image containerd runs in every pod.
	PauseImage string
}

// Node returns the node started by scripts/testenv.d/node.sh.
func Node(t testing.TB) NodeServer {
	t.Helper()
	k := Kube(t)
	v := need(t, "BOOTSTRAP_TEST_NODE_NAME", "BOOTSTRAP_TEST_NODE_CONTAINERD", "BOOTSTRAP_TEST_NODE_CTR",
		"BOOTSTRAP_TEST_NODE_POD_LOGS", "BOOTSTRAP_TEST_NODE_PAUSE_IMAGE")
	if _, err := os.Stat(v[1]); err != nil {
		Missing(t, "containerd of the node at "+v[1])
	}
	return NodeServer{KubeServer: k, Name: v[0], Containerd: v[1], Ctr: v[2], PodLogs: v[3], PauseImage: v[4]}
}
