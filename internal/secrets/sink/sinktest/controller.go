// Package sinktest runs the real Sealed Secrets controller against the
// test environment's kube-apiserver, for the sink's and the CLI's
// end-to-end tests. Test support only.
package sinktest

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// Controller runs the real Sealed Secrets controller (built from v0.27.1)
// against the test API server, scoped to namespace ns, and returns the URL
// of its certificate. It only knows in-cluster config, so it runs in a
// private mount namespace where /run/secrets/kubernetes.io/serviceaccount
// holds a token file and the CA (no credential on its command line).
func Controller(t testing.TB, kubeconfig, ns string) string {
	t.Helper()
	bin := testenv.Tool(t, "sealed-secrets-controller")
	if _, err := exec.LookPath("unshare"); err != nil {
		testenv.Missing(t, "unshare (util-linux)")
	}
	raw, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ctxName := raw.CurrentContext
	auth := raw.AuthInfos[raw.Contexts[ctxName].AuthInfo]
	cl := raw.Clusters[raw.Contexts[ctxName].Cluster]
	sa := t.TempDir()
	ca, err := os.ReadFile(cl.CertificateAuthority)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{"token": []byte(auth.Token), "ca.crt": ca, "namespace": []byte(ns)} {
		if err := os.WriteFile(filepath.Join(sa, name), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	port, mport := freePort(t), freePort(t)
	host, apiPort, _ := net.SplitHostPort(strings.TrimPrefix(cl.Server, "https://"))
	script := `mount -t tmpfs tmpfs /run && mkdir -p /run/secrets/kubernetes.io/serviceaccount && cp "$1"/* /run/secrets/kubernetes.io/serviceaccount/ && shift && exec "$@"`
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", sa, bin,
		"--all-namespaces=false", "--key-size", "2048", "--update-status=true",
		"--listen-addr", "127.0.0.1:"+port, "--listen-metrics-addr", "127.0.0.1:"+mport)
	cmd.Env = append(os.Environ(), "KUBERNETES_SERVICE_HOST="+host, "KUBERNETES_SERVICE_PORT="+apiPort, "POD_NAMESPACE="+ns)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("controller output:\n%s", out.String())
		}
	})
	url := "http://127.0.0.1:" + port + "/v1/cert.pem"
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the controller did not serve its certificate within 90s:\n%s", out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p
}
