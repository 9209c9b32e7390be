// Package charts tests the deployable half: the health-platform umbrella chart
// with its infrastructure subchart and the real Bitnami charts under it, the
// Dockerfile's binary and the compose file. Charts are rendered with the real
// Helm CLI, every object of every subchart included, and sent to a real
// kube-apiserver (dry run); bootstrap configs go through the real `bootstrap
// validate`. What ties the umbrella to the Bitnami charts (Secrets, Services,
// resources, images) is read from the rendered objects, never restated.
//
// The Bitnami packages come from scripts/chart-deps.sh: a folder named by
// BOOTSTRAP_BITNAMI_CHARTS (CI: ../shared/bitnami-charts), or `helm
// dependency build` where the registry answers. Without them the chart tests
// skip, and fail under BOOTSTRAP_TEST_REQUIRE=1.
//
// Nothing is installed: objects reach the API server as server-side dry
// runs, except a ServiceAccount and the RBAC objects, created for real in
// throwaway namespaces (deleted afterwards) so the authorizer can be asked.
// No container is built or run; the binary is built as the Dockerfile builds
// it.
package charts

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

const (
	umbrella  = "health-platform"
	namespace = "health-data"
	obsNS     = "health-observability"
)

// ---------------------------------------------------------------------------
// helpers

var (
	rootOnce sync.Once
	rootDir  string
)

// repo is the repository root (tests run in charts/).
func repo(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		wd, err := os.Getwd()
		if err != nil {
			panic(err)
		}
		rootDir = filepath.Dir(wd)
	})
	return rootDir
}

var (
	chartOnce sync.Once
	chartTmp  string
	chartErr  error
)

// chartDir is a copy of the umbrella chart, made once per test run, with the
// pinned Bitnami packages in charts/infrastructure/charts, so that every
// render includes every subchart. They are the repository's own when `make
// chart-deps` put them there, or else come from the folder
// BOOTSTRAP_BITNAMI_CHARTS names. The tests never fetch them: nothing here
// reaches outside the machine.
func chartDir(t testing.TB) string {
	t.Helper()
	chartOnce.Do(func() {
		if chartTmp, chartErr = os.MkdirTemp("", "charts-umbrella-"); chartErr != nil {
			return
		}
		dst := filepath.Join(chartTmp, umbrella)
		if chartErr = os.CopyFS(dst, os.DirFS(filepath.Join(repo(t), "charts", umbrella))); chartErr != nil {
			return
		}
		infra := filepath.Join(dst, "charts", "infrastructure")
		out, err := run(t, "", nil, helmBin(t), "dependency", "list", infra)
		if err == nil && !strings.Contains(out, "missing") && !strings.Contains(out, "wrong version") {
			return // already in the repository
		}
		dir := testenv.Getenv("BOOTSTRAP_BITNAMI_CHARTS")
		if dir == "" {
			chartErr = errors.New("not in charts/health-platform/charts/infrastructure/charts (make chart-deps) and BOOTSTRAP_BITNAMI_CHARTS names no folder of them")
			return
		}
		env := []string{"HELM=" + helmBin(t), "BOOTSTRAP_BITNAMI_CHARTS=" + dir}
		_, chartErr = run(t, repo(t), env, filepath.Join(repo(t), "scripts", "chart-deps.sh"), infra)
	})
	if chartErr != nil {
		testenv.Missing(t, fmt.Sprintf("the Bitnami chart packages: %v", chartErr))
	}
	return filepath.Join(chartTmp, umbrella)
}

func infraDir(t testing.TB) string { return filepath.Join(chartDir(t), "charts", "infrastructure") }

// run runs a command and returns stdout; stderr goes into the error.
func run(t testing.TB, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s%s", filepath.Base(name), strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

// mustRun is run that fails the test on error.
func mustRun(t testing.TB, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := run(t, dir, env, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range []string{binDir, chartTmp} {
		if d != "" {
			os.RemoveAll(d)
		}
	}
	os.Exit(code)
}

// bootstrapBin builds the bootstrap binary once per test run, static and
// version-stamped as the Dockerfile builds it.
func bootstrapBin(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "charts-test-")
		if binErr != nil {
			return
		}
		// Readable by the nonroot user a test runs it as.
		if binErr = os.Chmod(binDir, 0o755); binErr != nil {
			return
		}
		_, binErr = run(t, repo(t), []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath",
			"-ldflags", "-X main.version=charts-test", "-o", filepath.Join(binDir, "bootstrap"), "./cmd/bootstrap")
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, "bootstrap")
}

// validate runs `bootstrap validate -f` on a config and fails with its output.
func validate(t testing.TB, name string, cfg []byte) {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "", nil, bootstrapBin(t), "validate", "-f", f)
	if err != nil {
		t.Fatalf("bootstrap validate rejects %s: %v\n%s", name, err, cfg)
	}
	if !strings.Contains(out, "is valid") {
		t.Fatalf("bootstrap validate %s: unexpected output %q", name, out)
	}
}

func helmBin(t testing.TB) string { return testenv.Tool(t, "helm") }

// object is one rendered Kubernetes object.
type object map[string]any

func (o object) kind() string { return str(o["kind"]) }
func (o object) name() string { return str(dig(o, "metadata", "name")) }
func (o object) annotation(k string) string {
	return str(dig(o, "metadata", "annotations", k))
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// dig follows map keys; nil when a step is missing.
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

// asMap returns a decoded mapping (yaml.v3 gives nested maps the type of
// the value decoded into).
func asMap(v any) map[string]any {
	switch x := v.(type) {
	case object:
		return x
	case map[string]any:
		return x
	}
	return nil
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

// render runs helm template on the umbrella (release hp) and decodes every
// object.
func render(t testing.TB, ns string, args ...string) []object {
	t.Helper()
	return renderAs(t, "hp", ns, args...)
}

func renderAs(t testing.TB, release, ns string, args ...string) []object {
	t.Helper()
	a := append([]string{"template", release, chartDir(t), "--namespace", ns}, args...)
	out := mustRun(t, repo(t), nil, helmBin(t), a...)
	return decodeAll(t, out)
}

func decodeAll(t testing.TB, s string) []object {
	t.Helper()
	var objs []object
	dec := yaml.NewDecoder(strings.NewReader(s))
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("decode rendered YAML: %v", err)
		}
		if len(o) > 0 {
			objs = append(objs, o)
		}
	}
	return objs
}

func find(t testing.TB, objs []object, kind, name string) object {
	t.Helper()
	for _, o := range objs {
		if o.kind() == kind && o.name() == name {
			return o
		}
	}
	t.Fatalf("no %s %s among the rendered objects", kind, name)
	return nil
}

func readYAML(t testing.TB, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// infraValues returns charts/infrastructure/values.yaml with, for the
// production case, the umbrella's infrastructure overrides merged in.
func infraValues(t testing.TB, production bool) map[string]any {
	t.Helper()
	v := readYAML(t, filepath.Join(infraDir(t), "values.yaml"))
	if production {
		p := readYAML(t, filepath.Join(chartDir(t), "values-production.yaml"))
		if o, ok := p["infrastructure"].(map[string]any); ok {
			merge(v, o)
		}
	}
	return v
}

// merge copies src into dst the way Helm coalesces values: maps merge,
// everything else replaces.
func merge(dst, src map[string]any) {
	for k, sv := range src {
		if sm, ok := sv.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = sv
	}
}

// quantity parses a Kubernetes quantity as the API server does: CPU to
// millicores, anything else to bytes; an absent one is 0.
func quantity(t testing.TB, s string, cpu bool) int64 {
	t.Helper()
	if s == "" {
		return 0
	}
	q, err := resource.ParseQuantity(s)
	if err != nil {
		t.Fatalf("quantity %q: %v", s, err)
	}
	if cpu {
		return q.MilliValue()
	}
	return q.Value()
}

// bootstrapConfig returns the bootstrap.yaml the chart rendered.
func bootstrapConfig(t testing.TB, objs []object) []byte {
	t.Helper()
	cm := find(t, objs, "ConfigMap", "hp-bootstrap-config")
	s := str(dig(cm, "data", "bootstrap.yaml"))
	if s == "" {
		t.Fatal("ConfigMap hp-bootstrap-config has no bootstrap.yaml")
	}
	return []byte(s)
}

func loadConfig(t testing.TB, b []byte) *config.Config {
	t.Helper()
	cfg, err := config.Load(b, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("load rendered bootstrap.yaml: %v\n%s", err, b)
	}
	return cfg
}

// deliveredSecrets is what bootstrap delivers: Secret name -> key -> source
// secret.
func deliveredSecrets(cfg *config.Config) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, ks := range cfg.Secrets.KubernetesSecrets {
		out[ks.Name] = ks.Data
	}
	return out
}
