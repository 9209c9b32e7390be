package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// cluster drives the test environment's one-node Kubernetes with the real
// kubectl and Helm, in one namespace of the test's own.
type cluster struct {
	t          *testing.T
	kubeconfig string
	kubectlBin string
	helm       string
	ns         string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	kube := testenv.Kube(t)
	c := &cluster{
		t:          t,
		kubeconfig: kube.Kubeconfig,
		kubectlBin: testenv.Tool(t, "kubectl"),
		helm:       testenv.Tool(t, "helm"),
		ns:         testenv.Unique("e2e-"),
	}
	if testenv.Getenv("BOOTSTRAP_TEST_NODE_CONTAINERD") == "" {
		testenv.Missing(t, "the test environment's node (scripts/testenv.sh up node)")
	}
	c.mustKubectl("create", "namespace", c.ns)
	t.Cleanup(func() {
		if _, err := c.kubectl("delete", "namespace", c.ns, "--wait=true", "--timeout=120s"); err != nil {
			t.Logf("delete namespace %s: %v", c.ns, err)
		}
	})
	return c
}

// exec runs a command with a deadline and returns its stdout; stderr goes
// into the error.
func (c *cluster) exec(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s%s", filepath.Base(name), strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

func (c *cluster) kubectl(args ...string) (string, error) {
	return c.exec(3*time.Minute, c.kubectlBin, append([]string{"--kubeconfig", c.kubeconfig, "-n", c.ns}, args...)...)
}

func (c *cluster) mustKubectl(args ...string) string {
	c.t.Helper()
	out, err := c.kubectl(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// helmCmd runs helm against the cluster in the test's namespace.
func (c *cluster) helmCmd(args ...string) (string, error) {
	return c.exec(10*time.Minute, c.helm, append(args, "--kubeconfig", c.kubeconfig, "-n", c.ns)...)
}

// get decodes `kubectl get -o yaml`.
func (c *cluster) get(args ...string) map[string]any {
	c.t.Helper()
	out := c.mustKubectl(append([]string{"get", "-o", "yaml"}, args...)...)
	var m map[string]any
	if err := yaml.Unmarshal([]byte(out), &m); err != nil {
		c.t.Fatalf("kubectl get %v: %v", args, err)
	}
	return m
}

// items lists the objects of a kind.
func (c *cluster) items(kind string, selector ...string) []map[string]any {
	c.t.Helper()
	args := []string{kind}
	if len(selector) > 0 {
		args = append(args, "-l", strings.Join(selector, ","))
	}
	var out []map[string]any
	for _, it := range list(c.get(args...)["items"]) {
		out = append(out, asMap(it))
	}
	return out
}

// jobLogs returns the logs of a Job's pods (every attempt).
func (c *cluster) jobLogs(job string) string {
	c.t.Helper()
	out, err := c.kubectl("logs", "--all-containers", "--prefix=false", "-l", "job-name="+job, "--tail=-1")
	if err != nil {
		c.t.Fatalf("logs of job %s: %v", job, err)
	}
	return out
}

// waitJob waits for a Job to complete, failing with its logs.
func (c *cluster) waitJob(job string, timeout time.Duration) {
	c.t.Helper()
	if _, err := c.kubectl("wait", "--for=condition=complete", "--timeout="+timeout.String(), "job/"+job); err != nil {
		logs, _ := c.kubectl("logs", "--all-containers", "-l", "job-name="+job, "--tail=50")
		c.t.Fatalf("job %s did not complete: %v\n%s", job, err, logs)
	}
}

// podLogs collects the logs of every container that ran in the namespace,
// from the node's pod log folder (what `kubectl logs` reads, also for pods
// already deleted).
var podLogsMu sync.Mutex

func podLogs(t *testing.T, ns string) map[string][]byte {
	t.Helper()
	podLogsMu.Lock()
	defer podLogsMu.Unlock()
	dir := testenv.Getenv("BOOTSTRAP_TEST_NODE_POD_LOGS")
	if dir == "" {
		testenv.Missing(t, "BOOTSTRAP_TEST_NODE_POD_LOGS")
	}
	out := map[string][]byte{}
	// <podLogsDir>/<namespace>_<pod>_<uid>/<container>/<n>.log
	pods, _ := filepath.Glob(filepath.Join(dir, ns+"_*"))
	for _, p := range pods {
		_ = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			b, err := os.ReadFile(path)
			if err == nil {
				rel, _ := filepath.Rel(dir, path)
				out[rel] = b
			}
			return nil
		})
	}
	return out
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m := asMap(v)
		if m == nil {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}
