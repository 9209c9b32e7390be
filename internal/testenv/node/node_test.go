package node_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/health-data-ai/bootstrap/internal/testenv"
	"github.com/health-data-ai/bootstrap/internal/testenv/node"
)

// readArchive returns the files of an image archive by name.
func readArchive(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = data
	}
}

func blobOf(t *testing.T, files map[string][]byte, digest string) []byte {
	t.Helper()
	b, ok := files["blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")]
	if !ok {
		t.Fatalf("blob %s missing", digest)
	}
	sum := sha256.Sum256(b)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
		t.Fatalf("blob %s has digest %s", digest, got)
	}
	return b
}

func TestWriteArchive(t *testing.T) {
	src := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(src, []byte("#!static\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	img := node.Image{
		Name:       "localhost/bootstrap-testenv/unit:1",
		Files:      []node.File{{Path: "/bin/prog", Source: src}},
		Entrypoint: []string{"/bin/prog"},
		User:       "65532:65532",
		OS:         "linux",
		Arch:       "arm64",
	}
	var a, b bytes.Buffer
	if err := img.WriteArchive(&a); err != nil {
		t.Fatal(err)
	}
	if err := img.WriteArchive(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("the same image gave different archives")
	}
	files := readArchive(t, a.Bytes())
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %s", files["oci-layout"])
	}
	var index struct {
		Manifests []struct {
			Digest      string
			Annotations map[string]string
			Platform    struct{ Architecture, OS string }
		}
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v: %s", err, files["index.json"])
	}
	m := index.Manifests[0]
	if m.Annotations["io.containerd.image.name"] != img.Name || m.Annotations["org.opencontainers.image.ref.name"] != "1" {
		t.Errorf("annotations = %v", m.Annotations)
	}
	if m.Platform.OS != "linux" || m.Platform.Architecture != "arm64" {
		t.Errorf("platform = %+v", m.Platform)
	}
	var manifest struct {
		Config struct{ Digest string }
		Layers []struct{ Digest, MediaType string }
	}
	if err := json.Unmarshal(blobOf(t, files, m.Digest), &manifest); err != nil || len(manifest.Layers) != 1 {
		t.Fatalf("manifest: %v", err)
	}
	var config struct {
		Architecture string
		Config       struct {
			Entrypoint []string
			User       string
		}
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		}
	}
	if err := json.Unmarshal(blobOf(t, files, manifest.Config.Digest), &config); err != nil {
		t.Fatal(err)
	}
	if config.Architecture != "arm64" || config.Config.User != "65532:65532" || fmt.Sprint(config.Config.Entrypoint) != "[/bin/prog]" {
		t.Errorf("config = %+v", config)
	}
	if len(config.RootFS.DiffIDs) != 1 || config.RootFS.DiffIDs[0] != manifest.Layers[0].Digest {
		t.Errorf("diff_ids %v, layer %s", config.RootFS.DiffIDs, manifest.Layers[0].Digest)
	}
	layer := readArchive(t, blobOf(t, files, manifest.Layers[0].Digest))
	if _, ok := layer["bin/"]; !ok {
		t.Errorf("layer has no bin/: %v", layer)
	}
	if string(layer["bin/prog"]) != "#!static\n" {
		t.Errorf("layer bin/prog = %q", layer["bin/prog"])
	}
}

func TestWriteArchiveRejects(t *testing.T) {
	err := node.Image{Name: "probe", Files: []node.File{{Path: "rel", Source: "x"}}}.WriteArchive(io.Discard)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`image name "probe"`, "no entrypoint", `file path "rel"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// kubectl runs kubectl against the test env's API server.
type kubectl struct {
	bin, kubeconfig string
}

func (k kubectl) run(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, k.bin, append([]string{"--kubeconfig", k.kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// poll runs f every 200ms until it returns true or the deadline passes.
func poll(ctx context.Context, within time.Duration, f func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		ok, err := f()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return err
			}
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// probeJob is a Job running the probe image as a hardened pod: non-root,
// read-only root file system, no capabilities, never pulling.
func probeJob(ns, name, image string, hostNetwork bool, env map[string]string) []byte {
	var envs []map[string]any
	for k, v := range env {
		envs = append(envs, map[string]any{"name": k, "value": v})
	}
	job := map[string]any{
		"apiVersion": "batch/v1",
		"kind":       "Job",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"backoffLimit": 0,
			"template": map[string]any{
				"spec": map[string]any{
					"restartPolicy":                 "Never",
					"hostNetwork":                   hostNetwork,
					"dnsPolicy":                     "Default",
					"enableServiceLinks":            false,
					"terminationGracePeriodSeconds": 5,
					"securityContext": map[string]any{
						"runAsNonRoot":   true,
						"runAsUser":      65532,
						"runAsGroup":     65532,
						"seccompProfile": map[string]any{"type": "RuntimeDefault"},
					},
					"containers": []any{map[string]any{
						"name":            "probe",
						"image":           image,
						"imagePullPolicy": "Never",
						"env":             envs,
						"securityContext": map[string]any{
							"allowPrivilegeEscalation": false,
							"readOnlyRootFilesystem":   true,
							"capabilities":             map[string]any{"drop": []string{"ALL"}},
						},
						"resources": map[string]any{
							"requests": map[string]any{"cpu": "10m", "memory": "16Mi"},
							"limits":   map[string]any{"memory": "64Mi"},
						},
					}},
				},
			},
		},
	}
	b, _ := json.Marshal(job)
	return b
}

// TestNodeRunsJob runs a locally built image as Jobs on the test env's node:
// one on the host's network that reaches Redis on 127.0.0.1 and the API
// server with its projected token, one on the CNI bridge. Both must
// complete, and `kubectl logs` (API server -> kubelet) must show their lines.
func TestNodeRunsJob(t *testing.T) {
	n := testenv.Node(t)
	redis := testenv.Redis(t, "health")
	k := kubectl{bin: testenv.Tool(t, "kubectl"), kubeconfig: n.Kubeconfig}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	start := time.Now()
	dir := t.TempDir()
	bin := filepath.Join(dir, "probe")
	if err := node.Compile(ctx, ".", "./testdata/probe", bin); err != nil {
		t.Fatal(err)
	}
	img := node.Image{
		Name:       "localhost/bootstrap-testenv/probe:" + testenv.Unique("t"),
		Files:      []node.File{{Path: "/probe", Source: bin}},
		Entrypoint: []string{"/probe"},
		User:       "65532:65532",
	}
	archive := filepath.Join(dir, "probe.tar")
	if err := img.WriteArchiveFile(archive); err != nil {
		t.Fatal(err)
	}
	if err := node.Import(ctx, n.Ctr, n.Containerd, archive); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := node.Remove(context.Background(), n.Ctr, n.Containerd, img.Name); err != nil {
			t.Error(err)
		}
	})
	t.Logf("image %s built and imported in %s", img.Name, time.Since(start).Round(time.Millisecond))

	ns := testenv.Unique("node-smoke-")
	if _, err := k.run(ctx, nil, "create", "namespace", ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := k.run(context.Background(), nil, "delete", "namespace", ns, "--wait=false"); err != nil {
			t.Error(err)
		}
	})
	// kube-controller-manager makes both for every namespace.
	if err := poll(ctx, 30*time.Second, func() (bool, error) {
		_, err := k.run(ctx, nil, "get", "-n", ns, "serviceaccount/default", "configmap/kube-root-ca.crt")
		return err == nil, err
	}); err != nil {
		t.Fatalf("no default ServiceAccount or kube-root-ca.crt in %s: %v", ns, err)
	}

	start = time.Now()
	host := probeJob(ns, "host", img.Name, true, map[string]string{
		"PROBE_TCP":    redis.Addr,
		"PROBE_API":    n.Server,
		"PROBE_SA_DIR": "/var/run/secrets/kubernetes.io/serviceaccount",
	})
	bridge := probeJob(ns, "bridge", img.Name, false, nil)
	for _, job := range [][]byte{host, bridge} {
		if _, err := k.run(ctx, job, "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
	}
	for _, job := range []string{"host", "bridge"} {
		err := poll(ctx, 2*time.Minute, func() (bool, error) {
			out, err := k.run(ctx, nil, "get", "-n", ns, "job", job, "-o", "jsonpath={.status.succeeded}/{.status.failed}")
			if err != nil {
				return false, err
			}
			if strings.HasSuffix(out, "/1") {
				return false, fmt.Errorf("job %s failed", job)
			}
			return out == "1/", fmt.Errorf("job %s: succeeded/failed = %s", job, out)
		})
		if err != nil {
			desc, _ := k.run(context.Background(), nil, "describe", "-n", ns, "pods", "-l", "job-name="+job)
			logs, _ := k.run(context.Background(), nil, "logs", "-n", ns, "job/"+job)
			t.Fatalf("%v\n%s\nlogs:\n%s", err, desc, logs)
		}
	}
	t.Logf("both Jobs completed %s after they were created", time.Since(start).Round(time.Millisecond))

	logs, err := k.run(ctx, nil, "logs", "-n", ns, "job/host")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl logs job/host:\n%s", logs)
	for _, want := range []string{
		"probe ok: " + redis.Addr + " answered",
		"probe ok: kube-apiserver v1.",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("kubectl logs job/host lacks %q:\n%s", want, logs)
		}
	}
	// The pod's own line, read from the kubelet's pod log directory as well.
	files, _ := filepath.Glob(filepath.Join(n.PodLogs, ns+"_host-*", "probe", "*.log"))
	if len(files) == 0 {
		t.Errorf("no log of job/host under %s", n.PodLogs)
	} else if b, err := os.ReadFile(files[0]); err != nil || !bytes.Contains(b, []byte("probe ok: "+redis.Addr)) {
		t.Errorf("pod log %s: %v:\n%s", files[0], err, b)
	}

	// The bridge pod has an address of the node's CNI network.
	ip, err := k.run(ctx, nil, "get", "-n", ns, "pods", "-l", "job-name=bridge", "-o", "jsonpath={.items[0].status.podIP}")
	if err != nil {
		t.Fatal(err)
	}
	_, subnet, _ := net.ParseCIDR("10.253.0.0/24")
	if !subnet.Contains(net.ParseIP(ip)) {
		t.Errorf("bridge pod IP %q is not in %s", ip, subnet)
	}
	logs, err = k.run(ctx, nil, "logs", "-n", ns, "job/bridge")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs, ip+"/24") {
		t.Errorf("kubectl logs job/bridge lacks %s/24:\n%s", ip, logs)
	}
}
