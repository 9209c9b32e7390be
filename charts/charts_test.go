// Package charts tests the deployable half: the health-platform umbrella chart
// with its infrastructure subchart, the Dockerfile's binary and the compose
// file. Charts are rendered with the real Helm CLI and their objects sent to a
// real kube-apiserver (dry run); bootstrap configs go through the real
// `bootstrap validate`. The Bitnami dependencies cannot be fetched here, so
// their values are checked against key lists taken from the pinned chart
// versions (testdata/bitnami) instead of by rendering them.
//
// Nothing is installed: objects reach the API server as server-side dry
// runs, except a ServiceAccount and the RBAC objects, created for real in
// throwaway namespaces (deleted afterwards) so the authorizer can be asked.
// No container is built or run; the binary is built as the Dockerfile builds
// it.
package charts

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/secrets/sink"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

const (
	umbrella  = "health-platform"
	namespace = "health-data"
	obsNS     = "health-observability"
)

// The six data services: alias, Bitnami chart and version, and the figures
// DESIGN.md gives for each (requests of the service's own container, volume).
var services = []struct {
	alias, chart, version string
	cpu, memory, storage  string
}{
	{"postgresql-health", "postgresql", "13.2.24", "300m", "1Gi", "60Gi"},
	{"postgresql-auth", "postgresql", "13.2.24", "150m", "512Mi", "20Gi"},
	{"redis-health", "redis", "18.4.0", "100m", "256Mi", "5Gi"},
	{"redis-auth", "redis", "18.4.0", "100m", "256Mi", "5Gi"},
	{"minio", "minio", "12.11.3", "200m", "512Mi", "80Gi"},
	{"rabbitmq", "rabbitmq", "12.9.1", "300m", "512Mi", "15Gi"},
}

// The free tier: 4 Ampere OCPUs, 24 GiB, 200 GB of block volumes.
const (
	budgetMilliCPU = 4000
	budgetMemory   = 24 << 30
	budgetStorage  = 200e9
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

func chartDir(t testing.TB) string { return filepath.Join(repo(t), "charts", umbrella) }

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
	if binDir != "" {
		os.RemoveAll(binDir)
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

// quantity parses a Kubernetes quantity: CPU to millicores, anything else
// to bytes (binary and decimal suffixes).
func quantity(t testing.TB, s string, cpu bool) int64 {
	t.Helper()
	units := []struct {
		suffix string
		mul    float64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"m", 1e-3}}
	mul := 1.0
	num := s
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			mul, num = u.mul, strings.TrimSuffix(s, u.suffix)
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		t.Fatalf("bad quantity %q", s)
	}
	if cpu {
		return int64(math.Round(f * mul * 1000))
	}
	return int64(math.Round(f * mul))
}

// flatten lists the leaf paths of a values tree ("a.b.c").
func flatten(prefix string, v any, out *[]string) {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		*out = append(*out, prefix)
		return
	}
	for k, sv := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		flatten(p, sv, out)
	}
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

// ---------------------------------------------------------------------------
// Chart metadata and the infrastructure values

func TestChartDependencies(t *testing.T) {
	c := readYAML(t, filepath.Join(infraDir(t), "Chart.yaml"))
	deps := list(c["dependencies"])
	if len(deps) != len(services) {
		t.Fatalf("infrastructure has %d dependencies, want %d", len(deps), len(services))
	}
	for i, s := range services {
		d := deps[i]
		for k, want := range map[string]string{
			"name": s.chart, "version": s.version, "alias": s.alias,
			"repository": "oci://registry-1.docker.io/bitnamicharts",
			"condition":  s.alias + ".enabled",
		} {
			if got := str(dig(d, k)); got != want {
				t.Errorf("dependency %d (%s): %s = %q, want %q", i, s.alias, k, got, want)
			}
		}
	}
	// The umbrella finds the subchart in its charts/ folder: no repository.
	u := readYAML(t, filepath.Join(chartDir(t), "Chart.yaml"))
	ud := list(u["dependencies"])
	if len(ud) != 1 || str(dig(ud[0], "name")) != "infrastructure" || str(dig(ud[0], "repository")) != "" ||
		str(dig(ud[0], "version")) != str(c["version"]) || str(dig(ud[0], "condition")) != "infrastructure.enabled" {
		t.Errorf("umbrella dependencies = %v, want infrastructure %v from charts/ with condition infrastructure.enabled", ud, c["version"])
	}
}

// TestInfrastructureValuesUseRealKeys: a misspelt key is silently ignored by
// Helm, so every key set for a Bitnami chart must be one that chart version has.
func TestInfrastructureValuesUseRealKeys(t *testing.T) {
	for _, production := range []bool{false, true} {
		v := infraValues(t, production)
		for _, s := range services {
			raw, err := os.ReadFile(filepath.Join("testdata", "bitnami", s.chart+"-"+s.version+".keys"))
			if err != nil {
				t.Fatal(err)
			}
			var exact, prefixes []string
			for _, line := range strings.Split(string(raw), "\n") {
				line = strings.TrimSpace(line)
				switch {
				case line == "" || strings.HasPrefix(line, "#"):
				case strings.HasSuffix(line, ".*"):
					prefixes = append(prefixes, strings.TrimSuffix(line, "*"))
				default:
					exact = append(exact, line)
				}
			}
			var paths []string
			flatten("", v[s.alias], &paths)
			for _, p := range paths {
				if p == "enabled" { // the dependency condition, read by Helm
					continue
				}
				ok := slices.Contains(exact, p)
				for _, pre := range prefixes {
					ok = ok || strings.HasPrefix(p, pre)
				}
				if !ok {
					t.Errorf("production=%v: %s.%s is not a value of %s %s", production, s.alias, p, s.chart, s.version)
				}
			}
		}
	}
}

func TestInfrastructureValues(t *testing.T) {
	v := infraValues(t, false)
	for _, s := range services {
		t.Run(s.alias, func(t *testing.T) {
			a, _ := v[s.alias].(map[string]any)
			if a == nil {
				t.Fatal("no values")
			}
			if str(a["enabled"]) != "true" {
				t.Error("not enabled")
			}
			if got := str(a["fullnameOverride"]); got != "infrastructure-"+s.alias {
				t.Errorf("fullnameOverride = %q: the Service must be infrastructure-%s", got, s.alias)
			}

			// Where the service's own container, pod and volume are configured.
			main := a
			switch s.chart {
			case "postgresql":
				main, _ = a["primary"].(map[string]any)
			case "redis":
				main, _ = a["master"].(map[string]any)
			}
			if got := str(dig(main, "resources", "requests", "cpu")); got != s.cpu {
				t.Errorf("cpu request = %q, want %s", got, s.cpu)
			}
			if got := str(dig(main, "resources", "requests", "memory")); got != s.memory {
				t.Errorf("memory request = %q, want %s", got, s.memory)
			}
			for _, k := range []string{"cpu", "memory"} {
				if dig(main, "resources", "limits", k) == nil {
					t.Errorf("no %s limit", k)
				}
			}
			if got := str(dig(main, "persistence", "size")); got != s.storage {
				t.Errorf("persistence.size = %q, want %s", got, s.storage)
			}
			if str(dig(main, "persistence", "enabled")) != "true" || str(dig(main, "persistence", "storageClass")) != "oci-bv" {
				t.Errorf("persistence = %v, want enabled with storage class oci-bv", dig(main, "persistence"))
			}
			if str(dig(main, "podSecurityContext", "enabled")) != "true" || str(dig(main, "podSecurityContext", "fsGroup")) != "1001" {
				t.Errorf("podSecurityContext = %v, want enabled, fsGroup 1001", main["podSecurityContext"])
			}
			checkContainerSecurity(t, "containerSecurityContext", dig(main, "containerSecurityContext"))
			if m, ok := a["metrics"].(map[string]any); ok && m["containerSecurityContext"] != nil {
				checkContainerSecurity(t, "metrics.containerSecurityContext", m["containerSecurityContext"])
				if str(dig(m, "containerSecurityContext", "readOnlyRootFilesystem")) != "true" {
					t.Error("the exporter writes nothing: metrics.containerSecurityContext.readOnlyRootFilesystem should be true")
				}
			}

			sm := dig(a, "metrics", "serviceMonitor")
			if str(dig(sm, "enabled")) != "true" || str(dig(sm, "namespace")) != obsNS {
				t.Errorf("metrics.serviceMonitor = %v, want enabled in %s", sm, obsNS)
			}
			if s.chart != "minio" && str(dig(a, "metrics", "enabled")) != "true" {
				t.Error("metrics.enabled is not true")
			}

			secret := str(dig(a, "auth", "existingSecret"))
			if s.chart == "rabbitmq" {
				secret = str(dig(a, "auth", "existingPasswordSecret"))
				if str(dig(a, "auth", "existingErlangSecret")) == "" {
					t.Error("auth.existingErlangSecret is empty: the chart would generate a cookie")
				}
			}
			if secret == "" {
				t.Error("credentials do not come from an existing Secret")
			}

			// Every image of the chart, used or not, from bitnamilegacy.
			var images int
			var walk func(path string, m map[string]any)
			walk = func(path string, m map[string]any) {
				for k, sv := range m {
					sub, ok := sv.(map[string]any)
					if !ok {
						continue
					}
					if k == "image" || k == "clientImage" {
						images++
						if r := str(sub["repository"]); !strings.HasPrefix(r, "bitnamilegacy/") || str(sub["registry"]) != "docker.io" {
							t.Errorf("%s%s: %s/%s, want docker.io/bitnamilegacy/...", path, k, sub["registry"], r)
						}
					}
					walk(path+k+".", sub)
				}
			}
			walk("", a)
			if images == 0 {
				t.Error("no image overridden")
			}
		})
	}
	// The Secret keys the pinned charts read.
	pg := dig(v, "postgresql-health", "auth", "secretKeys")
	if str(dig(pg, "adminPasswordKey")) != "postgres-password" || str(dig(pg, "userPasswordKey")) != "password" {
		t.Errorf("postgresql secretKeys = %v, want the chart's postgres-password and password", pg)
	}
	for _, r := range []string{"redis-health", "redis-auth"} {
		if got := str(dig(v, r, "auth", "existingSecretPasswordKey")); got != "redis-password" {
			t.Errorf("%s.auth.existingSecretPasswordKey = %q, want redis-password", r, got)
		}
	}
	fixed := dig(v, "fixedSecretKeys")
	if str(dig(fixed, "minio", "rootUser")) != "root-user" || str(dig(fixed, "minio", "rootPassword")) != "root-password" ||
		str(dig(fixed, "rabbitmq", "password")) != "rabbitmq-password" || str(dig(fixed, "rabbitmq", "erlangCookie")) != "rabbitmq-erlang-cookie" {
		t.Errorf("fixedSecretKeys = %v, want the keys minio 12.11.3 and rabbitmq 12.9.1 read", fixed)
	}
}

func checkContainerSecurity(t *testing.T, name string, v any) {
	t.Helper()
	for k, want := range map[string]string{"enabled": "true", "runAsUser": "1001", "runAsNonRoot": "true", "allowPrivilegeEscalation": "false"} {
		if got := str(dig(v, k)); got != want {
			t.Errorf("%s.%s = %q, want %s", name, k, got, want)
		}
	}
	if !slices.Equal(list(dig(v, "capabilities", "drop")), []any{"ALL"}) {
		t.Errorf("%s.capabilities.drop = %v, want [ALL]", name, dig(v, "capabilities", "drop"))
	}
	if str(dig(v, "seccompProfile", "type")) != "RuntimeDefault" {
		t.Errorf("%s.seccompProfile = %v, want RuntimeDefault", name, dig(v, "seccompProfile"))
	}
}

// TestBudget adds up what the module asks for and checks it against the free
// tier, and that the data services' requests are DESIGN.md's figures.
func TestBudget(t *testing.T) {
	for _, production := range []bool{false, true} {
		v := infraValues(t, production)
		u := readYAML(t, filepath.Join(chartDir(t), "values.yaml"))
		var reqCPU, reqMem, limCPU, limMem, mainCPU, mainMem, storage, provisioned int64
		add := func(res any) {
			reqCPU += quantity(t, str(dig(res, "requests", "cpu")), true)
			reqMem += quantity(t, str(dig(res, "requests", "memory")), false)
			limCPU += quantity(t, str(dig(res, "limits", "cpu")), true)
			limMem += quantity(t, str(dig(res, "limits", "memory")), false)
		}
		for _, s := range services {
			a := v[s.alias]
			main := a
			switch s.chart {
			case "postgresql":
				main = dig(a, "primary")
			case "redis":
				main = dig(a, "master")
			}
			add(dig(main, "resources"))
			mainCPU += quantity(t, str(dig(main, "resources", "requests", "cpu")), true)
			mainMem += quantity(t, str(dig(main, "resources", "requests", "memory")), false)
			if r := dig(a, "metrics", "resources"); r != nil { // exporter sidecars
				add(r)
			}
			size := quantity(t, str(dig(main, "persistence", "size")), false)
			storage += size
			// OCI block volumes are at least 50 GB: smaller claims are rounded up.
			provisioned += max(size, 50e9)
		}
		// One bootstrap hook pod at a time (hooks run one after the other),
		// and the daemon beside it where it is on.
		add(dig(u, "bootstrap", "resources"))
		b := readYAML(t, filepath.Join(chartDir(t), "values.yaml"))
		if production {
			merge(b, readYAML(t, filepath.Join(chartDir(t), "values-production.yaml")))
		}
		if str(dig(b, "bootstrap", "serve", "enabled")) == "true" {
			res := dig(b, "bootstrap", "serve", "resources")
			if len(asMap(res)) == 0 {
				res = dig(b, "bootstrap", "resources")
			}
			add(res)
		}

		if mainCPU != 1150 || mainMem != 3<<30 {
			t.Errorf("data services request %dm CPU and %d MiB, DESIGN.md says 1150m and 3072 MiB", mainCPU, mainMem>>20)
		}
		for _, c := range []struct {
			what       string
			got, limit int64
		}{
			{"CPU requests (m)", reqCPU, budgetMilliCPU},
			{"CPU limits (m)", limCPU, budgetMilliCPU},
			{"memory requests", reqMem, budgetMemory},
			{"memory limits", limMem, budgetMemory},
			{"storage requested (bytes)", storage, budgetStorage},
		} {
			if c.got > c.limit {
				t.Errorf("production=%v: %s %d exceeds the free tier's %d", production, c.what, c.got, c.limit)
			}
		}
		t.Logf("production=%v: requests %dm CPU / %d MiB, limits %dm CPU / %d MiB, storage %.1f GB requested (%.0f%% of 200 GB); "+
			"OCI rounds each volume up to 50 GB: %.1f GB provisioned",
			production, reqCPU, reqMem>>20, limCPU, limMem>>20, float64(storage)/1e9, float64(storage)/budgetStorage*100, float64(provisioned)/1e9)
	}
}

// ---------------------------------------------------------------------------
// Rendering: lint, hooks, RBAC, security, and the bootstrap config

func TestHelmLint(t *testing.T) {
	h := helmBin(t)
	for _, args := range [][]string{
		{"lint", "--strict", chartDir(t)},
		{"lint", "--strict", chartDir(t), "-f", filepath.Join(chartDir(t), "values-production.yaml")},
		{"lint", "--strict", chartDir(t), "--set", "bootstrap.serve.enabled=true", "--set", "bootstrap.secrets.output.type=plain"},
	} {
		out, err := run(t, repo(t), nil, h, args...)
		if err != nil || strings.Contains(out, "[ERROR]") || strings.Contains(out, "[WARNING]") {
			t.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// The subchart alone: its one finding offline is the Bitnami charts
	// `helm dependency build` fetches; anything else fails.
	out, _ := run(t, repo(t), nil, h, "lint", infraDir(t))
	for _, line := range strings.Split(out, "\n") {
		if (strings.Contains(line, "[ERROR]") || strings.Contains(line, "[WARNING]")) &&
			!strings.Contains(line, "chart directory is missing these dependencies: postgresql,postgresql,redis,redis,minio,rabbitmq") {
			t.Errorf("helm lint infrastructure: %s", line)
		}
	}
}

// valueSets are the ways the chart is rendered in these tests; serve says
// whether the set turns the bootstrap daemon on (production does).
var valueSets = []struct {
	name  string
	args  []string
	serve bool
}{
	{"default", nil, false},
	{"production", []string{"-f", "values-production.yaml"}, true},
	{"plain", []string{"--set", "bootstrap.secrets.output.type=plain"}, false},
	{"sealed-cert-file", []string{"--set", "bootstrap.secrets.output.sealing.cert=/etc/sealed-secrets/cert.pem"}, false},
	{"output-none", []string{"--set", "bootstrap.secrets.output.type=none"}, false},
	{"sealed-to-dir", []string{"--set", "bootstrap.secrets.output.target=dir", "--set", "bootstrap.secrets.output.dir=/tmp/sealed"}, false},
	{"serve-plain", []string{"--set", "bootstrap.serve.enabled=true", "--set", "bootstrap.secrets.output.type=plain"}, true},
	{"serve-cert-file-no-monitor", []string{"--set", "bootstrap.serve.enabled=true", "--set", "bootstrap.serve.serviceMonitor.enabled=false",
		"--set", "bootstrap.secrets.output.sealing.cert=/etc/sealed-secrets/cert.pem"}, true},
	{"serve-output-none", []string{"--set", "bootstrap.serve.enabled=true", "--set", "bootstrap.secrets.output.type=none",
		"--set", "bootstrap.serve.interval=90s"}, true},
}

func renderSet(t testing.TB, ns string, args []string) []object {
	t.Helper()
	var full []string
	for i := 0; i < len(args); i++ {
		if args[i] == "-f" {
			full = append(full, "-f", filepath.Join(chartDir(t), args[i+1]))
			i++
			continue
		}
		full = append(full, args[i])
	}
	return render(t, ns, full...)
}

func TestHooks(t *testing.T) {
	objs := render(t, namespace)
	weight := func(o object) int {
		n, err := strconv.Atoi(o.annotation("helm.sh/hook-weight"))
		if err != nil {
			t.Fatalf("%s %s: hook weight %q", o.kind(), o.name(), o.annotation("helm.sh/hook-weight"))
		}
		return n
	}
	secretsJob := find(t, objs, "Job", "hp-bootstrap-secrets")
	servicesJob := find(t, objs, "Job", "hp-bootstrap-services")
	testPod := find(t, objs, "Pod", "hp-bootstrap-verify")
	for _, c := range []struct {
		o     object
		hook  string
		phase []string
	}{
		{secretsJob, "pre-install,pre-upgrade", []string{"apply", "--phase", "secrets"}},
		{servicesJob, "post-install,post-upgrade", []string{"apply", "--phase", "services"}},
		{testPod, "test", []string{"verify"}},
	} {
		if got := c.o.annotation("helm.sh/hook"); got != c.hook {
			t.Errorf("%s: hook %q, want %q", c.o.name(), got, c.hook)
		}
		spec := dig(c.o, "spec")
		if c.o.kind() == "Job" {
			for _, k := range []string{"backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"} {
				if dig(spec, k) == nil {
					t.Errorf("%s: no %s", c.o.name(), k)
				}
			}
			spec = dig(spec, "template", "spec")
		} else if dig(spec, "activeDeadlineSeconds") == nil {
			t.Errorf("%s: no activeDeadlineSeconds", c.o.name())
		}
		args := list(dig(list(dig(spec, "containers"))[0], "args"))
		var sargs []string
		for _, a := range args {
			sargs = append(sargs, str(a))
		}
		if !slices.Equal(sargs[:len(c.phase)], c.phase) {
			t.Errorf("%s runs %v, want %v ...", c.o.name(), sargs, c.phase)
		}
		if str(dig(spec, "restartPolicy")) != "Never" {
			t.Errorf("%s: restartPolicy %v", c.o.name(), dig(spec, "restartPolicy"))
		}
	}

	// Everything the pre-install Job uses is a pre-install hook that runs before it.
	sw := weight(secretsJob)
	needs := map[string]bool{"ServiceAccount/hp-bootstrap": false, "Role/hp-bootstrap": false, "RoleBinding/hp-bootstrap": false,
		"ConfigMap/hp-bootstrap-config": false, "ConfigMap/hp-bootstrap-migrations": false,
		"Role/hp-bootstrap-sealing-cert": false, "RoleBinding/hp-bootstrap-sealing-cert": false}
	for _, o := range objs {
		hook := o.annotation("helm.sh/hook")
		if hook == "" {
			continue
		}
		if got := o.annotation("helm.sh/hook-delete-policy"); got != "before-hook-creation" {
			t.Errorf("%s %s: hook-delete-policy %q, want before-hook-creation", o.kind(), o.name(), got)
		}
		key := o.kind() + "/" + o.name()
		if _, ok := needs[key]; ok {
			needs[key] = true
			if hook != "pre-install,pre-upgrade" || weight(o) >= sw {
				t.Errorf("%s: hook %q weight %d; the secrets Job (weight %d) needs it first", key, hook, weight(o), sw)
			}
		}
	}
	for k, seen := range needs {
		if !seen {
			t.Errorf("%s is not a hook (or not rendered)", k)
		}
	}
	// RoleBindings after their Roles.
	if weight(find(t, objs, "RoleBinding", "hp-bootstrap")) <= weight(find(t, objs, "Role", "hp-bootstrap")) {
		t.Error("the RoleBinding's weight is not above its Role's")
	}
	if weight(servicesJob) < 0 {
		t.Error("the services Job should not run before other post-install hooks")
	}
	// The manual re-run: an ordinary, suspended CronJob running every phase.
	cj := find(t, objs, "CronJob", "hp-bootstrap")
	if cj.annotation("helm.sh/hook") != "" || str(dig(cj, "spec", "suspend")) != "true" {
		t.Errorf("re-run CronJob: hook %q, suspend %v; want an ordinary suspended CronJob", cj.annotation("helm.sh/hook"), dig(cj, "spec", "suspend"))
	}
}

func TestRBAC(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			objs := renderSet(t, namespace, vs.args)
			cfg := loadConfig(t, bootstrapConfig(t, objs))
			var names []any
			for _, ks := range cfg.Secrets.KubernetesSecrets {
				names = append(names, ks.Name)
			}
			out := cfg.Secrets.Output
			secretVerbs := map[string]bool{}
			var sealedRules, roles int
			for _, o := range objs {
				switch o.kind() {
				case "ClusterRole", "ClusterRoleBinding":
					t.Errorf("%s %s: bootstrap needs no cluster scope", o.kind(), o.name())
				case "Role":
					roles++
					for _, r := range list(o["rules"]) {
						for _, field := range []string{"apiGroups", "resources", "verbs", "resourceNames"} {
							for _, x := range list(dig(r, field)) {
								if strings.Contains(str(x), "*") {
									t.Errorf("Role %s: wildcard in %s: %v", o.name(), field, r)
								}
							}
						}
						res := list(dig(r, "resources"))
						if slices.Contains(res, "secrets") {
							rn := list(dig(r, "resourceNames"))
							for _, v := range list(dig(r, "verbs")) {
								secretVerbs[str(v)] = true
								if str(v) != "create" && rn == nil {
									t.Errorf("Role %s: %v on every Secret of the namespace", o.name(), v)
								}
							}
							if rn != nil && !slices.Equal(rn, names) {
								t.Errorf("Role %s: secrets resourceNames %v, want the config's %v", o.name(), rn, names)
							}
						}
						if slices.Contains(res, "sealedsecrets") {
							sealedRules++
							if rn := list(dig(r, "resourceNames")); rn != nil && !slices.Equal(rn, names) {
								t.Errorf("Role %s: sealedsecrets resourceNames %v, want %v", o.name(), rn, names)
							}
						}
						if slices.Contains(res, "services/proxy") && str(dig(o, "metadata", "namespace")) != out.Sealing.ControllerNamespace {
							t.Errorf("Role %s: the service proxy rule belongs in %s", o.name(), out.Sealing.ControllerNamespace)
						}
					}
				}
			}
			// Sealed: patch (the managed annotation) on the named Secrets only.
			write := secretVerbs["create"] || secretVerbs["update"] || secretVerbs["delete"]
			switch {
			case out.Type == "plain":
				if !secretVerbs["create"] || !secretVerbs["update"] {
					t.Errorf("output plain: secrets verbs %v, want create and update", secretVerbs)
				}
			case out.Type == "sealed" && out.Target == "cluster":
				if write {
					t.Errorf("output sealed: write access to plain Secrets %v", secretVerbs)
				}
				if sealedRules == 0 {
					t.Error("output sealed: no rule for sealedsecrets")
				}
			case out.Type == "none":
				if roles != 0 {
					t.Errorf("output none: %d Roles rendered; bootstrap needs no API access", roles)
				}
			}
			_, nsRole := findOpt(objs, "Role", "hp-bootstrap")
			if want := out.Type != "none" && out.Target == "cluster"; nsRole != want {
				t.Errorf("Role hp-bootstrap rendered = %v, want %v (type %s, target %s)", nsRole, want, out.Type, out.Target)
			}
			_, certRole := findOpt(objs, "Role", "hp-bootstrap-sealing-cert")
			if want := out.Type == "sealed" && out.Sealing.Cert == ""; certRole != want {
				t.Errorf("sealing-cert Role rendered = %v, want %v (type %s, cert %q)", certRole, want, out.Type, out.Sealing.Cert)
			}
		})
	}
}

func findOpt(objs []object, kind, name string) (object, bool) {
	for _, o := range objs {
		if o.kind() == kind && o.name() == name {
			return o, true
		}
	}
	return nil, false
}

// TestPodSecurity: every bootstrap pod runs as nonroot on a read-only root
// filesystem without privileges, and gets an API token only when it needs one.
func TestPodSecurity(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			objs := renderSet(t, namespace, vs.args)
			out := loadConfig(t, bootstrapConfig(t, objs)).Secrets.Output
			var pods int
			for _, o := range objs {
				var spec any
				switch o.kind() {
				case "Pod":
					spec = o["spec"]
				case "Job":
					spec = dig(o, "spec", "template", "spec")
				case "CronJob":
					spec = dig(o, "spec", "jobTemplate", "spec", "template", "spec")
				case "Deployment":
					spec = dig(o, "spec", "template", "spec")
				default:
					continue
				}
				pods++
				psc := dig(spec, "securityContext")
				if str(dig(psc, "runAsNonRoot")) != "true" || str(dig(psc, "runAsUser")) != "65532" || str(dig(psc, "seccompProfile", "type")) != "RuntimeDefault" {
					t.Errorf("%s %s: pod securityContext %v", o.kind(), o.name(), psc)
				}
				want := out.Type != "none" && out.Target == "cluster" || out.Type == "sealed" && out.Sealing.Cert == ""
				if got := str(dig(spec, "automountServiceAccountToken")); got != strconv.FormatBool(want) {
					t.Errorf("%s %s: automountServiceAccountToken %s, want %v", o.kind(), o.name(), got, want)
				}
				for _, c := range list(dig(spec, "containers")) {
					sc := dig(c, "securityContext")
					if str(dig(sc, "readOnlyRootFilesystem")) != "true" || str(dig(sc, "allowPrivilegeEscalation")) != "false" ||
						!slices.Equal(list(dig(sc, "capabilities", "drop")), []any{"ALL"}) {
						t.Errorf("%s %s: container securityContext %v", o.kind(), o.name(), sc)
					}
					if dig(c, "resources", "limits") == nil || dig(c, "resources", "requests") == nil {
						t.Errorf("%s %s: no resource requests and limits", o.kind(), o.name())
					}
				}
			}
			want := 4
			if vs.serve {
				want++
			}
			if pods != want {
				t.Errorf("%d bootstrap workloads, want %d (two hook Jobs, the test Pod, the re-run CronJob, and the serve Deployment when on)", pods, want)
			}
		})
	}
}

// setArg returns the value a --set in args gives key.
func setArg(args []string, key string) (string, bool) {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--set" && strings.HasPrefix(args[i+1], key+"=") {
			return strings.TrimPrefix(args[i+1], key+"="), true
		}
	}
	return "", false
}

// flagValue returns the argument after flag in a command line.
func flagValue(args []any, flag string) (string, bool) {
	for i := 0; i+1 < len(args); i++ {
		if str(args[i]) == flag {
			return str(args[i+1]), true
		}
	}
	return "", false
}

// subset: every label of sel is in labels with the same value.
func subset(sel, labels any) bool {
	if len(asMap(sel)) == 0 {
		return false
	}
	for k, v := range asMap(sel) {
		if str(dig(labels, k)) != str(v) {
			return false
		}
	}
	return true
}

// isServe says whether an object belongs to the daemon.
func isServe(o object) bool {
	return strings.HasPrefix(o.name(), "hp-bootstrap-serve") || o.kind() == "Deployment" || o.kind() == "ServiceMonitor" ||
		o.kind() == "Service" && str(dig(o, "metadata", "labels", "app.kubernetes.io/component")) == "bootstrap"
}

// TestServe: the daemon renders only with bootstrap.serve.enabled, as an
// ordinary one-replica Deployment running `bootstrap serve` with the Jobs'
// image, config, migrations and security context, its probes on the right
// paths of the named port, and a Service and ServiceMonitor that find it.
func TestServe(t *testing.T) {
	t.Run("only when enabled", func(t *testing.T) {
		for _, args := range [][]string{
			nil,
			{"--set", "bootstrap.serve.enabled=false", "--set", "bootstrap.serve.serviceMonitor.enabled=true"},
			{"--set", "bootstrap.serve.enabled=true", "--set", "bootstrap.enabled=false"},
		} {
			for _, o := range render(t, namespace, args...) {
				if isServe(o) {
					t.Errorf("%v: %s %s rendered", args, o.kind(), o.name())
				}
			}
		}
	})

	prod := readYAML(t, filepath.Join(chartDir(t), "values-production.yaml"))
	for _, vs := range valueSets {
		if !vs.serve {
			continue
		}
		t.Run(vs.name, func(t *testing.T) {
			objs := renderSet(t, namespace, vs.args)
			wantInterval := "5m"
			if vs.name == "production" {
				wantInterval = str(dig(prod, "bootstrap", "serve", "interval"))
			}
			if v, ok := setArg(vs.args, "bootstrap.serve.interval"); ok {
				wantInterval = v
			}
			for _, o := range objs {
				if isServe(o) && o.annotation("helm.sh/hook") != "" {
					t.Errorf("%s %s is a hook; the daemon's objects must outlive hook deletion", o.kind(), o.name())
				}
			}

			d := find(t, objs, "Deployment", "hp-bootstrap-serve")
			if str(dig(d, "spec", "replicas")) != "1" || str(dig(d, "spec", "strategy", "type")) != "Recreate" {
				t.Errorf("Deployment: replicas %v, strategy %v; want 1, Recreate", dig(d, "spec", "replicas"), dig(d, "spec", "strategy"))
			}
			podLabels := dig(d, "spec", "template", "metadata", "labels")
			if !subset(dig(d, "spec", "selector", "matchLabels"), podLabels) {
				t.Errorf("Deployment selector %v does not match its pod labels %v", dig(d, "spec", "selector", "matchLabels"), podLabels)
			}
			spec := dig(d, "spec", "template", "spec")
			job := find(t, objs, "Job", "hp-bootstrap-secrets")
			jobSpec := dig(job, "spec", "template", "spec")
			if subset(dig(d, "spec", "selector", "matchLabels"), dig(job, "spec", "template", "metadata", "labels")) {
				t.Error("the Deployment's selector also matches the secrets Job's pods")
			}
			if got := str(dig(spec, "serviceAccountName")); got != "hp-bootstrap-serve" {
				t.Errorf("serviceAccountName %q, want the daemon's own hp-bootstrap-serve (hook accounts are recreated on upgrade)", got)
			}
			if r := str(dig(spec, "restartPolicy")); r != "Always" {
				t.Errorf("restartPolicy %q, want Always", r)
			}
			if g, _ := strconv.Atoi(str(dig(spec, "terminationGracePeriodSeconds"))); g < 15 {
				t.Errorf("terminationGracePeriodSeconds %v, want at least 15", dig(spec, "terminationGracePeriodSeconds"))
			}
			if got, want := str(dig(spec, "automountServiceAccountToken")), str(dig(jobSpec, "automountServiceAccountToken")); got != want {
				t.Errorf("automountServiceAccountToken %s, the secrets Job's %s", got, want)
			}
			if !reflect.DeepEqual(dig(spec, "securityContext"), dig(jobSpec, "securityContext")) {
				t.Errorf("pod securityContext %v differs from the Jobs' %v", dig(spec, "securityContext"), dig(jobSpec, "securityContext"))
			}

			cs := list(dig(spec, "containers"))
			if len(cs) != 1 {
				t.Fatalf("%d containers, want 1", len(cs))
			}
			c, jc := cs[0], list(dig(jobSpec, "containers"))[0]
			for _, k := range []string{"image", "imagePullPolicy", "securityContext", "resources"} {
				if !reflect.DeepEqual(dig(c, k), dig(jc, k)) {
					t.Errorf("container %s %v differs from the Jobs' %v", k, dig(c, k), dig(jc, k))
				}
			}
			args := list(dig(c, "args"))
			if len(args) == 0 || str(args[0]) != "serve" {
				t.Fatalf("args %v, want serve ...", args)
			}
			if v, _ := flagValue(args, "--interval"); v != wantInterval {
				t.Errorf("--interval %q, want %q", v, wantInterval)
			}
			listen, _ := flagValue(args, "--listen")
			if listen != ":8080" {
				t.Errorf("--listen %q, want :8080", listen)
			}
			if v, ok := flagValue(args, "--timeout"); !ok || v == "" {
				t.Error("no --timeout: a hung run would stop the daemon for good")
			}

			// The named port is the one it listens on.
			var port any
			for _, p := range list(dig(c, "ports")) {
				if str(dig(p, "name")) == "metrics" {
					port = p
				}
			}
			if port == nil || ":"+str(dig(port, "containerPort")) != listen {
				t.Errorf("ports %v: want one named metrics on %s", dig(c, "ports"), listen)
			}
			for _, p := range []struct {
				probe, path  string
				minTolerance int // seconds of failures before it acts
			}{
				{"startupProbe", "/healthz", 30},
				{"livenessProbe", "/healthz", 20},
				{"readinessProbe", "/readyz", 0},
			} {
				pr := dig(c, p.probe)
				if pr == nil {
					t.Errorf("no %s", p.probe)
					continue
				}
				if got := str(dig(pr, "httpGet", "path")); got != p.path {
					t.Errorf("%s on %q, want %s", p.probe, got, p.path)
				}
				if got := str(dig(pr, "httpGet", "port")); got != "metrics" {
					t.Errorf("%s on port %q, want metrics", p.probe, got)
				}
				period, _ := strconv.Atoi(str(dig(pr, "periodSeconds")))
				failures, _ := strconv.Atoi(str(dig(pr, "failureThreshold")))
				timeout, _ := strconv.Atoi(str(dig(pr, "timeoutSeconds")))
				if period < 1 || period > 60 || failures < 1 || timeout < 1 || timeout > period {
					t.Errorf("%s: period %ds, timeout %ds, failureThreshold %d", p.probe, period, timeout, failures)
				}
				if period*failures < p.minTolerance {
					t.Errorf("%s acts after %ds of failures, want at least %ds", p.probe, period*failures, p.minTolerance)
				}
			}

			// Same config and migrations as the Jobs; the config as a
			// directory, so the re-read each run sees a changed ConfigMap.
			vols := map[string]any{}
			for _, v := range list(dig(spec, "volumes")) {
				vols[str(dig(v, "name"))] = v
			}
			for _, v := range list(dig(jobSpec, "volumes")) {
				if !reflect.DeepEqual(vols[str(dig(v, "name"))], v) {
					t.Errorf("volume %v differs from the Jobs' %v", vols[str(dig(v, "name"))], v)
				}
			}
			mounts := map[string]any{}
			for _, m := range list(dig(c, "volumeMounts")) {
				mounts[str(dig(m, "name"))] = m
			}
			cfgMount := mounts["config"]
			if cfgMount == nil || dig(cfgMount, "subPath") != nil {
				t.Errorf("config mount %v: want the ConfigMap as a directory", cfgMount)
			}
			var cfgPath string
			for _, e := range list(dig(c, "env")) {
				if str(dig(e, "name")) == "BOOTSTRAP_CONFIG" {
					cfgPath = str(dig(e, "value"))
				}
			}
			if cfgPath != str(dig(cfgMount, "mountPath"))+"/bootstrap.yaml" {
				t.Errorf("BOOTSTRAP_CONFIG %q is not bootstrap.yaml in the config mount %v", cfgPath, dig(cfgMount, "mountPath"))
			}
			for _, m := range list(dig(jc, "volumeMounts")) {
				if n := str(dig(m, "name")); n != "config" && !reflect.DeepEqual(mounts[n], m) {
					t.Errorf("mount %v differs from the Jobs' %v", mounts[n], m)
				}
			}

			// The Service finds the pod, on the named port, ready or not.
			svc := find(t, objs, "Service", "hp-bootstrap-serve")
			if !subset(dig(svc, "spec", "selector"), podLabels) {
				t.Errorf("Service selector %v does not match the pod labels %v", dig(svc, "spec", "selector"), podLabels)
			}
			sp := list(dig(svc, "spec", "ports"))
			if len(sp) != 1 || str(dig(sp[0], "name")) != "metrics" || str(dig(sp[0], "targetPort")) != "metrics" {
				t.Errorf("Service ports %v, want one named metrics targeting port metrics", sp)
			}
			if str(dig(svc, "spec", "publishNotReadyAddresses")) != "true" {
				t.Error("Service does not publish the unready pod: its metrics would vanish exactly after a failed run")
			}

			sm, ok := findOpt(objs, "ServiceMonitor", "hp-bootstrap-serve")
			if want := vs.name != "serve-cert-file-no-monitor"; ok != want {
				t.Fatalf("ServiceMonitor rendered = %v, want %v", ok, want)
			}
			if !ok {
				return
			}
			if got := str(dig(sm, "metadata", "namespace")); got != obsNS {
				t.Errorf("ServiceMonitor in %q, want %s beside the data services'", got, obsNS)
			}
			if !slices.Equal(list(dig(sm, "spec", "namespaceSelector", "matchNames")), []any{namespace}) {
				t.Errorf("ServiceMonitor namespaceSelector %v, want the release namespace", dig(sm, "spec", "namespaceSelector"))
			}
			if !subset(dig(sm, "spec", "selector", "matchLabels"), dig(svc, "metadata", "labels")) {
				t.Errorf("ServiceMonitor selector %v does not match the Service's labels", dig(sm, "spec", "selector"))
			}
			ep := list(dig(sm, "spec", "endpoints"))
			if len(ep) != 1 || str(dig(ep[0], "port")) != "metrics" || str(dig(ep[0], "path")) != "/metrics" {
				t.Errorf("ServiceMonitor endpoints %v, want port metrics, path /metrics", ep)
			}
		})
	}

	t.Run("ServiceMonitor follows the data services", func(t *testing.T) {
		on := []string{"--set", "bootstrap.serve.enabled=true"}
		var off []string
		for _, s := range services {
			off = append(off, "--set", "infrastructure."+s.alias+".metrics.serviceMonitor.enabled=false")
		}
		for _, c := range []struct {
			name   string
			args   []string
			wantNS string // "" = none
		}{
			{"auto, theirs off", off, ""},
			{"auto, one on", append(slices.Clone(off), "--set", "infrastructure.minio.metrics.serviceMonitor.enabled=true",
				"--set", "infrastructure.minio.metrics.serviceMonitor.namespace=mon"), "mon"},
			{"true, theirs off", append(slices.Clone(off), "--set", "bootstrap.serve.serviceMonitor.enabled=true"), namespace},
			{"false", []string{"--set", "bootstrap.serve.serviceMonitor.enabled=false"}, ""},
			{"namespace", []string{"--set", "bootstrap.serve.serviceMonitor.namespace=elsewhere"}, "elsewhere"},
		} {
			objs := render(t, namespace, append(slices.Clone(on), c.args...)...)
			sm, ok := findOpt(objs, "ServiceMonitor", "hp-bootstrap-serve")
			if got := str(dig(sm, "metadata", "namespace")); ok != (c.wantNS != "") || got != c.wantNS {
				t.Errorf("%s: ServiceMonitor rendered %v in %q, want %q", c.name, ok, got, c.wantNS)
			}
		}
		objs := render(t, namespace, "--set", "bootstrap.serve.enabled=true", "--set", "bootstrap.serve.serviceMonitor.labels.release=prom",
			"--set", "bootstrap.serve.serviceMonitor.interval=1m")
		sm := find(t, objs, "ServiceMonitor", "hp-bootstrap-serve")
		if str(dig(sm, "metadata", "labels", "release")) != "prom" || str(dig(list(dig(sm, "spec", "endpoints"))[0], "interval")) != "1m" {
			t.Errorf("ServiceMonitor labels %v, endpoints %v: want release=prom and interval 1m", dig(sm, "metadata", "labels"), dig(sm, "spec", "endpoints"))
		}
	})
}

// TestServeRBAC: the daemon's identity is its own ordinary ServiceAccount
// whose Roles carry exactly the secrets phase's rules, in the same
// namespaces, bound to it and nothing else.
func TestServeRBAC(t *testing.T) {
	for _, vs := range valueSets {
		if !vs.serve {
			continue
		}
		t.Run(vs.name, func(t *testing.T) {
			objs := renderSet(t, namespace, vs.args)
			sa := find(t, objs, "ServiceAccount", "hp-bootstrap-serve")
			if sa.annotation("helm.sh/hook") != "" || str(sa["automountServiceAccountToken"]) != "false" {
				t.Errorf("ServiceAccount hp-bootstrap-serve: hook %q, automountServiceAccountToken %v; want an ordinary object, token mounted by the pod only",
					sa.annotation("helm.sh/hook"), sa["automountServiceAccountToken"])
			}
			var pairs int
			for _, p := range [][2]string{
				{"hp-bootstrap", "hp-bootstrap-serve"},
				{"hp-bootstrap-sealing-cert", "hp-bootstrap-serve-sealing-cert"},
			} {
				hookRole, hok := findOpt(objs, "Role", p[0])
				role, ok := findOpt(objs, "Role", p[1])
				if hok != ok {
					t.Errorf("Role %s rendered = %v, Role %s rendered = %v", p[0], hok, p[1], ok)
					continue
				}
				if !ok {
					continue
				}
				pairs++
				if !reflect.DeepEqual(role["rules"], hookRole["rules"]) {
					t.Errorf("Role %s rules %v differ from the secrets phase's %s: %v", p[1], role["rules"], p[0], hookRole["rules"])
				}
				if a, b := str(dig(role, "metadata", "namespace")), str(dig(hookRole, "metadata", "namespace")); a != b {
					t.Errorf("Role %s in %s, %s in %s", p[1], a, p[0], b)
				}
				rb := find(t, objs, "RoleBinding", p[1])
				subjects := list(rb["subjects"])
				if str(dig(rb, "roleRef", "name")) != p[1] || str(dig(rb, "roleRef", "kind")) != "Role" || len(subjects) != 1 ||
					str(dig(subjects[0], "kind")) != "ServiceAccount" || str(dig(subjects[0], "name")) != "hp-bootstrap-serve" ||
					str(dig(subjects[0], "namespace")) != namespace {
					t.Errorf("RoleBinding %s: roleRef %v, subjects %v; want Role %s bound to ServiceAccount %s/hp-bootstrap-serve", p[1], rb["roleRef"], subjects, p[1], namespace)
				}
				if role.annotation("helm.sh/hook") != "" || rb.annotation("helm.sh/hook") != "" {
					t.Errorf("%s: the daemon's Role or RoleBinding is a hook", p[1])
				}
			}
			t.Logf("%d Role pairs equal", pairs)
		})
	}
}

// TestBootstrapConfig: the ConfigMap's bootstrap.yaml passes `bootstrap
// validate`, and points at exactly the Services and Secrets the
// infrastructure values make (hosts, ports, Secret names and keys).
func TestBootstrapConfig(t *testing.T) {
	for _, vs := range valueSets[:2] {
		t.Run(vs.name, func(t *testing.T) {
			production := vs.name == "production"
			objs := renderSet(t, namespace, vs.args)
			raw := bootstrapConfig(t, objs)
			validate(t, "bootstrap.yaml", raw)
			cfg := loadConfig(t, raw)
			v := infraValues(t, production)
			host := func(alias string) string {
				return fmt.Sprintf("infrastructure-%s.%s.svc.cluster.local", alias, namespace)
			}

			secrets := map[string]map[string]string{}
			for _, ks := range cfg.Secrets.KubernetesSecrets {
				secrets[ks.Name] = ks.Data
			}
			// wantSecret checks one Secret the chart reads: its name and the
			// source secret behind each key.
			wantSecret := func(name string, data map[string]string) {
				t.Helper()
				got, ok := secrets[name]
				if !ok {
					t.Errorf("no Kubernetes Secret %s in the bootstrap config (have %v)", name, secrets)
					return
				}
				for k, src := range data {
					if got[k] != src {
						t.Errorf("Secret %s key %s <- %q, want %q", name, k, got[k], src)
					}
				}
				delete(secrets, name)
			}
			if cfg.Secrets.Output.Namespace != namespace {
				t.Errorf("output.namespace = %q, want the release namespace", cfg.Secrets.Output.Namespace)
			}

			pgByName := map[string]config.Postgres{}
			for _, p := range cfg.Postgres {
				pgByName[p.Name] = p
			}
			for alias, inst := range map[string]string{"postgresql-health": "health", "postgresql-auth": "auth"} {
				p, ok := pgByName[inst]
				a := v[alias]
				if !ok {
					t.Errorf("no postgres/%s", inst)
					continue
				}
				if p.Host != host(alias) || str(p.Port) != str(dig(a, "primary", "service", "ports", "postgresql")) {
					t.Errorf("postgres/%s at %s:%d, want the Service %s:%v", inst, p.Host, p.Port, host(alias), dig(a, "primary", "service", "ports", "postgresql"))
				}
				if p.Admin.User != "postgres" {
					t.Errorf("postgres/%s admin %q: the Bitnami chart's superuser is postgres", inst, p.Admin.User)
				}
				tls := str(dig(a, "tls", "enabled")) == "true"
				if secure := p.SSLMode == "require" || p.SSLMode == "verify-full"; tls != secure {
					t.Errorf("postgres/%s sslmode %s with tls.enabled=%v", inst, p.SSLMode, tls)
				}
				keys := dig(a, "auth", "secretKeys")
				data := map[string]string{str(dig(keys, "adminPasswordKey")): p.Admin.Password.Secret}
				// The application role's password is in the same Secret.
				var userSecret string
				for _, r := range p.Roles {
					if r.Password != nil && r.CanLogin() {
						userSecret = r.Password.Secret
						break
					}
				}
				data[str(dig(keys, "userPasswordKey"))] = userSecret
				wantSecret(str(dig(a, "auth", "existingSecret")), data)
			}

			for _, r := range cfg.Redis {
				alias := "redis-" + r.Name
				a := v[alias]
				want := fmt.Sprintf("infrastructure-%s-master.%s.svc.cluster.local:%v", alias, namespace, dig(a, "master", "service", "ports", "redis"))
				if r.Address != want {
					t.Errorf("redis/%s at %s, want %s", r.Name, r.Address, want)
				}
				wantSecret(str(dig(a, "auth", "existingSecret")), map[string]string{str(dig(a, "auth", "existingSecretPasswordKey")): r.Password.Secret})
				// What bootstrap expects is what the chart configures.
				conf := map[string]string{}
				for _, line := range strings.Split(str(a.(map[string]any)["commonConfiguration"]), "\n") {
					if f := strings.Fields(line); len(f) == 2 {
						conf[f[0]] = f[1]
					}
				}
				if r.Expect.MaxmemoryPolicy != conf["maxmemory-policy"] {
					t.Errorf("redis/%s expects maxmemory-policy %q, the chart sets %q", r.Name, r.Expect.MaxmemoryPolicy, conf["maxmemory-policy"])
				}
				if r.Expect.Appendonly == nil || *r.Expect.Appendonly != (conf["appendonly"] == "yes") {
					t.Errorf("redis/%s expects appendonly %v, the chart sets %q", r.Name, r.Expect.Appendonly, conf["appendonly"])
				}
			}
			if len(cfg.Redis) != 2 || len(cfg.Postgres) != 2 || len(cfg.MinIO) != 1 || len(cfg.RabbitMQ) != 1 {
				t.Errorf("targets: %v, want two postgres, two redis, one minio, one rabbitmq", cfg.Targets())
			}

			fixed := v["fixedSecretKeys"]
			if len(cfg.MinIO) == 1 {
				m, a := cfg.MinIO[0], v["minio"]
				if want := fmt.Sprintf("%s:%v", host("minio"), dig(a, "service", "ports", "api")); m.Endpoint != want {
					t.Errorf("minio endpoint %s, want %s", m.Endpoint, want)
				}
				wantSecret(str(dig(a, "auth", "existingSecret")), map[string]string{
					str(dig(fixed, "minio", "rootUser")):     m.AccessKey.Secret,
					str(dig(fixed, "minio", "rootPassword")): m.SecretKey.Secret,
				})
			}
			if len(cfg.RabbitMQ) == 1 {
				r, a := cfg.RabbitMQ[0], v["rabbitmq"]
				if r.Host != host("rabbitmq") || str(r.Port) != str(dig(a, "service", "ports", "amqp")) ||
					str(r.ManagementPort) != str(dig(a, "service", "ports", "manager")) || r.User != str(dig(a, "auth", "username")) {
					t.Errorf("rabbitmq %s@%s:%d/%d, want %v@%s with the Service's ports", r.User, r.Host, r.Port, r.ManagementPort, dig(a, "auth", "username"), host("rabbitmq"))
				}
				wantSecret(str(dig(a, "auth", "existingPasswordSecret")), map[string]string{
					str(dig(fixed, "rabbitmq", "password")):     r.Password.Secret,
					str(dig(fixed, "rabbitmq", "erlangCookie")): "rabbitmq-erlang-cookie",
				})
			}
			if len(secrets) > 0 {
				t.Errorf("Kubernetes Secrets no data service reads: %v", secrets)
			}

			// The application charts' ConfigMap: same hosts, no credentials.
			ci := find(t, objs, "ConfigMap", "infrastructure-connection-info")
			data := asMap(ci["data"])
			if str(data["POSTGRESQL_HEALTH_HOST"]) != host("postgresql-health") || str(data["RABBITMQ_HOST"]) != host("rabbitmq") {
				t.Errorf("connection info hosts differ from the bootstrap config: %v", data)
			}
			refs := cfg.SecretRefs(func(string) bool { return true }, true)
			for k, val := range data {
				if regexp.MustCompile(`PASSWORD|TOKEN|KEY$`).MatchString(k) {
					t.Errorf("connection info key %s looks like a credential", k)
				}
				for _, item := range strings.Split(str(val), ",") {
					if _, ok := refs[item]; ok {
						t.Errorf("connection info %s=%v names source secret %s", k, val, item)
					}
				}
			}
		})
	}
}

// TestChartRejects: overrides that would break the contract fail the render
// with a message naming the value.
func TestChartRejects(t *testing.T) {
	for _, c := range []struct {
		set, want string
	}{
		{"bootstrap.image.pullPolicy=Sometimes", "pullPolicy"},
		{"bootstrap.postgres.postgresql-health.host=elsewhere", "host"},
		{"bootstrap.secrets.output.namespace=other", "namespace"},
		{"infrastructure.minio.fullnameOverride=my-minio", "minio.fullnameOverride must be infrastructure-minio"},
		{"infrastructure.redis-auth.image.repository=bitnami/redis", "bitnamilegacy"},
		{"infrastructure.redis-auth.enabled=false", "infrastructure.redis-auth is not enabled"},
		{"bootstrap.postgres.postgresql-auth.secretUserRole=nobody", `no role "nobody"`},
	} {
		_, err := run(t, repo(t), nil, helmBin(t), "template", "hp", chartDir(t), "-n", namespace, "--set", c.set)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--set %s: %v, want an error mentioning %q", c.set, err, c.want)
		}
	}
	// The daemon's values.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--set", "bootstrap.serve.serviceMonitor.enabled=yes"}, "serve/serviceMonitor/enabled"},
		{[]string{"--set", "bootstrap.serve.terminationGracePeriodSeconds=5"}, "serve/terminationGracePeriodSeconds"},
		{[]string{"--set", "bootstrap.serve.interval=5"}, "serve/interval"},
		{[]string{"--set", "bootstrap.serve.enabled=true", "--set", "infrastructure.minio.metrics.serviceMonitor.namespace=elsewhere"},
			"bootstrap.serve.serviceMonitor.namespace: the data services' ServiceMonitors are in"},
	} {
		args := append([]string{"template", "hp", chartDir(t), "-n", namespace}, c.args...)
		_, err := run(t, repo(t), nil, helmBin(t), args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error mentioning %q", c.args, err, c.want)
		}
	}
	// With the daemon on, a release name whose cut names collide with the hooks'.
	long := strings.Repeat("r", 50)
	if _, err := run(t, repo(t), nil, helmBin(t), "template", long, chartDir(t), "-n", namespace, "--set", "bootstrap.serve.enabled=true"); err == nil ||
		!strings.Contains(err.Error(), "too long") {
		t.Errorf("release name of 50 characters with the daemon: %v, want an error saying it is too long", err)
	}
	objs0 := renderAs(t, long[:49], namespace, "--set", "bootstrap.serve.enabled=true")
	seen := map[string]bool{}
	for _, o := range objs0 {
		key := o.kind() + "/" + str(dig(o, "metadata", "namespace")) + "/" + o.name()
		if seen[key] {
			t.Errorf("release name of 49 characters: two objects %s", key)
		}
		seen[key] = true
	}

	// Dropping a service and its bootstrap entry together is fine.
	objs := render(t, namespace, "--set", "infrastructure.redis-auth.enabled=false", "--set", "bootstrap.redis.redis-auth=null")
	cfg := loadConfig(t, bootstrapConfig(t, objs))
	for _, ks := range cfg.Secrets.KubernetesSecrets {
		if ks.Name == "redis-auth-secret" {
			t.Error("redis-auth-secret still delivered after redis-auth was removed")
		}
	}
}

func TestChartMigrationsMatchExamples(t *testing.T) {
	a, err := os.ReadFile(filepath.Join(chartDir(t), "migrations", "healthdb", "00001_observations.sql"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(repo(t), "examples", "migrations", "healthdb", "00001_observations.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("charts/health-platform/migrations/healthdb differs from examples/migrations/healthdb")
	}
}

// TestKubeAcceptsRenderedObjects sends every rendered object, hooks and test
// included, to a real kube-apiserver as a server-side dry run: schema,
// defaulting and admission, nothing stored.
func TestKubeAcceptsRenderedObjects(t *testing.T) {
	kube := testenv.Kube(t)
	kubectl := testenv.Tool(t, "kubectl")
	ns := testenv.Unique("hp-")
	k := func(args ...string) (string, error) {
		return run(t, "", nil, kubectl, append([]string{"--kubeconfig", kube.Kubeconfig}, args...)...)
	}
	if _, err := k("create", "namespace", ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = k("delete", "namespace", ns, "--wait=false") })
	// The controller's namespace gets a Role for the certificate.
	if _, err := k("get", "namespace", "kube-system"); err != nil {
		if _, err := k("create", "namespace", "kube-system"); err != nil {
			t.Fatal(err)
		}
	}
	// The daemon's ServiceMonitor: the kind, and a throwaway namespace for it
	// in place of health-observability.
	serviceMonitorCRD(t, k)
	obs := testenv.Unique("hpobs-")
	if _, err := k("create", "namespace", obs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = k("delete", "namespace", obs, "--wait=false") })

	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			objs := renderSet(t, ns, append(slices.Clone(vs.args), "--set", "bootstrap.serve.serviceMonitor.namespace="+obs))
			dir := t.TempDir()
			// The ServiceAccount admission plugin wants a Pod's account to
			// exist, as Helm's hook order guarantees (weight -30 before the
			// test Pod): create it for real in the throwaway namespace.
			for _, o := range objs {
				if o.kind() != "ServiceAccount" {
					continue
				}
				b, err := yaml.Marshal(map[string]any(o))
				if err != nil {
					t.Fatal(err)
				}
				f := filepath.Join(dir, "serviceaccount-"+o.name()+".yaml")
				if err := os.WriteFile(f, b, 0o644); err != nil {
					t.Fatal(err)
				}
				if _, err := k("apply", "-f", f); err != nil {
					t.Fatal(err)
				}
			}
			for i, o := range objs {
				b, err := yaml.Marshal(map[string]any(o))
				if err != nil {
					t.Fatal(err)
				}
				f := filepath.Join(dir, fmt.Sprintf("%02d-%s-%s.yaml", i, strings.ToLower(o.kind()), o.name()))
				if err := os.WriteFile(f, b, 0o644); err != nil {
					t.Fatal(err)
				}
				if _, err := k("apply", "--dry-run=server", "-f", f); err != nil {
					t.Errorf("%s %s rejected: %v", o.kind(), o.name(), err)
				}
			}
			_, deploy := findOpt(objs, "Deployment", "hp-bootstrap-serve")
			_, monitor := findOpt(objs, "ServiceMonitor", "hp-bootstrap-serve")
			if deploy != vs.serve || monitor != (vs.serve && vs.name != "serve-cert-file-no-monitor") {
				t.Errorf("serve Deployment sent = %v, ServiceMonitor sent = %v; the set has serve = %v", deploy, monitor, vs.serve)
			}
			t.Logf("%d objects accepted", len(objs))
		})
	}
}

// serviceMonitorCRD makes sure the API server knows kind ServiceMonitor
// with the Prometheus Operator's own CRD (scripts/testenv.d/kube.sh takes it
// from the operator's Go module and installs it; applying it again is a
// no-op), so rendered ServiceMonitors meet the real schema.
func serviceMonitorCRD(t *testing.T, k func(args ...string) (string, error)) {
	t.Helper()
	crd := testenv.Getenv("BOOTSTRAP_TEST_SERVICEMONITOR_CRD")
	if crd == "" {
		testenv.Missing(t, "the ServiceMonitor CRD (scripts/testenv.sh up kube)")
	}
	if _, err := k("apply", "--server-side", "--force-conflicts", "-f", crd); err != nil {
		t.Fatal(err)
	}
	if _, err := k("wait", "--for=condition=Established", "--timeout=60s", "customresourcedefinition/servicemonitors.monitoring.coreos.com"); err != nil {
		t.Fatal(err)
	}
}

// TestNotes renders NOTES.txt as `helm install --dry-run` shows it: what ran,
// where the logs are, `helm test`, and the manual re-run command naming the
// CronJob the chart renders.
func TestNotes(t *testing.T) {
	kube := testenv.Kube(t)
	out := mustRun(t, repo(t), nil, helmBin(t), "install", "hp", chartDir(t), "-n", namespace, "--dry-run", "--kubeconfig", kube.Kubeconfig)
	notes := out[strings.Index(out, "NOTES:"):]
	for _, want := range []string{
		"job/hp-bootstrap-secrets", "job/hp-bootstrap-services",
		"helm test hp -n " + namespace,
		"kubectl create job -n " + namespace + " --from=cronjob/hp-bootstrap ",
		"placeholder OCIDs",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES.txt lacks %q:\n%s", want, notes)
		}
	}
	objs := render(t, namespace)
	find(t, objs, "CronJob", "hp-bootstrap")
	if strings.Contains(notes, "daemon") {
		t.Errorf("NOTES.txt speaks of the daemon with bootstrap.serve.enabled false:\n%s", notes)
	}

	// With the daemon (production turns it on): where it is, how to see
	// its readiness and metrics, and where Prometheus finds it.
	kubectl := testenv.Tool(t, "kubectl")
	serviceMonitorCRD(t, func(args ...string) (string, error) {
		return run(t, "", nil, kubectl, append([]string{"--kubeconfig", kube.Kubeconfig}, args...)...)
	})
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"-f", filepath.Join(chartDir(t), "values-production.yaml")}, []string{
			"deployment/hp-bootstrap-serve", "every 10m",
			"kubectl logs -n " + namespace + " deployment/hp-bootstrap-serve",
			"kubectl port-forward -n " + namespace + " service/hp-bootstrap-serve 8080:metrics",
			"localhost:8080/readyz", "localhost:8080/metrics",
			"ServiceMonitor hp-bootstrap-serve in namespace " + obsNS,
		}},
		{[]string{"--set", "bootstrap.serve.enabled=true", "--set", "bootstrap.serve.serviceMonitor.enabled=false"}, []string{
			"deployment/hp-bootstrap-serve", "every 5m", "No ServiceMonitor",
		}},
	} {
		args := append([]string{"install", "hp", chartDir(t), "-n", namespace, "--dry-run", "--kubeconfig", kube.Kubeconfig}, c.args...)
		out := mustRun(t, repo(t), nil, helmBin(t), args...)
		notes := out[strings.Index(out, "NOTES:"):]
		for _, want := range c.want {
			if !strings.Contains(notes, want) {
				t.Errorf("%v: NOTES.txt lacks %q:\n%s", c.args, want, notes)
			}
		}
	}
}

// wantSinkRBAC is internal/secrets/sink.RBAC as the chart's Roles were
// written against; when the sink needs something else this test says so.
const wantSinkRBAC = `sealed (namespace): bitnami.com/sealedsecrets get,create,update; ""/secrets get,patch (resourceNames: the kubernetesSecrets names)
sealed (controllerNamespace, only without sealing.cert): ""/services get (resourceNames: CTRL); ""/services/proxy get (resourceNames: http:CTRL:http)
plain (namespace): ""/secrets get,create,update`

// TestKubeRBAC creates the chart's ServiceAccount, Roles and RoleBindings in
// a real API server and asks its authorizer what the bootstrap identity may
// do: exactly what the cluster sink needs, nothing more, nowhere else.
func TestKubeRBAC(t *testing.T) {
	if sink.RBAC != wantSinkRBAC {
		t.Errorf("internal/secrets/sink.RBAC changed: update templates/bootstrap-rbac.yaml and wantSinkRBAC\nnow:\n%s", sink.RBAC)
	}
	kube := testenv.Kube(t)
	kubectl := testenv.Tool(t, "kubectl")
	k := func(args ...string) (string, error) {
		return run(t, "", nil, kubectl, append([]string{"--kubeconfig", kube.Kubeconfig}, args...)...)
	}
	ns, ctl, other := testenv.Unique("hp-"), testenv.Unique("hpctl-"), testenv.Unique("hpother-")
	for _, n := range []string{ns, ctl, other} {
		if _, err := k("create", "namespace", n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = k("delete", "namespace", n, "--wait=false") })
	}
	release := "r" + strings.TrimPrefix(ns, "hp-")

	for _, c := range []struct {
		output      string
		allow, deny [][]string // kubectl auth can-i arguments
	}{
		{"sealed", [][]string{
			{"create", "sealedsecrets.bitnami.com", "-n", ns},
			{"get", "sealedsecrets.bitnami.com/postgresql-health-secret", "-n", ns},
			{"update", "sealedsecrets.bitnami.com/redis-auth-secret", "-n", ns},
			{"get", "secrets/postgresql-health-secret", "-n", ns},
			{"patch", "secrets/minio-secret", "-n", ns},
			{"get", "services/sealed-secrets", "-n", ctl},
			{"get", "services/http:sealed-secrets:http", "--subresource=proxy", "-n", ctl},
		}, [][]string{
			{"list", "secrets", "-n", ns},
			{"watch", "secrets", "-n", ns},
			{"get", "secrets/some-other-secret", "-n", ns},
			{"create", "secrets", "-n", ns},
			{"update", "secrets/postgresql-health-secret", "-n", ns},
			{"delete", "secrets/postgresql-health-secret", "-n", ns},
			{"delete", "sealedsecrets.bitnami.com/postgresql-health-secret", "-n", ns},
			{"list", "sealedsecrets.bitnami.com", "-n", ns},
			{"get", "sealedsecrets.bitnami.com/some-other-secret", "-n", ns},
			{"create", "sealedsecrets.bitnami.com", "-n", other},
			{"get", "secrets/postgresql-health-secret", "-n", ctl},
			{"get", "services/other", "-n", ctl},
			{"get", "services/http:other:http", "--subresource=proxy", "-n", ctl},
			{"get", "services/http:sealed-secrets:http", "--subresource=proxy", "-n", other},
			{"get", "pods", "-n", ns},
			{"create", "roles.rbac.authorization.k8s.io", "-n", ns},
			{"list", "namespaces"},
		}},
		{"plain", [][]string{
			{"create", "secrets", "-n", ns},
			{"get", "secrets/postgresql-health-secret", "-n", ns},
			{"update", "secrets/rabbitmq-secret", "-n", ns},
		}, [][]string{
			{"list", "secrets", "-n", ns},
			{"get", "secrets/some-other-secret", "-n", ns},
			{"update", "secrets/some-other-secret", "-n", ns},
			{"delete", "secrets/postgresql-health-secret", "-n", ns},
			{"create", "sealedsecrets.bitnami.com", "-n", ns},
			{"get", "services/http:sealed-secrets:http", "--subresource=proxy", "-n", ctl},
			{"create", "secrets", "-n", other},
		}},
	} {
		t.Run(c.output, func(t *testing.T) {
			objs := renderAs(t, release, ns, "--set", "bootstrap.secrets.output.type="+c.output,
				"--set", "bootstrap.secrets.output.sealing.controllerNamespace="+ctl, "--set", "bootstrap.serve.enabled=true")
			dir := t.TempDir()
			var applied int
			for _, o := range objs {
				switch o.kind() {
				case "ServiceAccount", "Role", "RoleBinding":
				default:
					continue
				}
				b, err := yaml.Marshal(map[string]any(o))
				if err != nil {
					t.Fatal(err)
				}
				f := filepath.Join(dir, strings.ToLower(o.kind())+"-"+o.name()+".yaml")
				if err := os.WriteFile(f, b, 0o644); err != nil {
					t.Fatal(err)
				}
				if _, err := k("apply", "-f", f); err != nil {
					t.Fatal(err)
				}
				applied++
				t.Cleanup(func() { _, _ = k("delete", "--ignore-not-found", "-f", f) })
			}
			// The hook Jobs' identity and the daemon's: the same answers.
			for _, sa := range []string{release + "-bootstrap", release + "-bootstrap-serve"} {
				as := "system:serviceaccount:" + ns + ":" + sa
				for _, a := range c.allow {
					if out, err := k(append([]string{"auth", "can-i", "--as", as}, a...)...); err != nil {
						t.Errorf("%s may not %v: %v %s", sa, a, err, out)
					}
				}
				for _, a := range c.deny {
					if out, err := k(append([]string{"auth", "can-i", "--as", as}, a...)...); err == nil {
						t.Errorf("%s may %v (%s)", sa, a, strings.TrimSpace(out))
					}
				}
			}
			t.Logf("output %s: %d RBAC objects applied; for each of 2 identities %d permissions granted and %d refused as expected", c.output, applied, len(c.allow), len(c.deny))
		})
	}
}

// ---------------------------------------------------------------------------
// Image: the Dockerfile's build, for both architectures

func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repo(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	var froms []string
	var stages []string // the text of each stage
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "FROM ") {
			froms = append(froms, line)
			stages = append(stages, "")
		}
		if len(stages) > 0 {
			stages[len(stages)-1] += line + "\n"
		}
	}
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, got %v", froms)
	}
	build, final := stages[0], stages[len(stages)-1]
	for _, want := range []string{"--platform=$BUILDPLATFORM", "ARG TARGETOS", "ARG TARGETARCH", "GOOS=$TARGETOS", "GOARCH=$TARGETARCH",
		"CGO_ENABLED=0", "-trimpath", "-X main.version=${VERSION}", "./cmd/bootstrap"} {
		if !strings.Contains(build, want) {
			t.Errorf("build stage lacks %q", want)
		}
	}
	if !strings.HasPrefix(froms[len(froms)-1], "FROM gcr.io/distroless/static-debian12:nonroot") {
		t.Errorf("runtime stage %q, want gcr.io/distroless/static-debian12:nonroot", froms[len(froms)-1])
	}
	if strings.Contains(final, "\nRUN ") {
		t.Error("the runtime stage runs commands: distroless has no shell")
	}
	if !regexp.MustCompile(`(?m)^USER 65532(:65532)?$`).MatchString(final) || !strings.Contains(final, `ENTRYPOINT ["/usr/local/bin/bootstrap"]`) {
		t.Error("runtime stage: want USER 65532 and the exec-form ENTRYPOINT")
	}

	// Every package the binary needs is in the build context .dockerignore leaves.
	ignore, err := os.ReadFile(filepath.Join(repo(t), ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var allowed []string
	for _, line := range strings.Split(string(ignore), "\n") {
		if strings.HasPrefix(line, "!") {
			allowed = append(allowed, strings.TrimPrefix(line, "!"))
		}
	}
	out := mustRun(t, repo(t), nil, "go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", "./cmd/bootstrap")
	for _, dir := range strings.Fields(out) {
		rel, err := filepath.Rel(repo(t), dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // module cache
		}
		ok := false
		for _, a := range allowed {
			ok = ok || strings.HasPrefix(rel+"/", a)
		}
		if !ok {
			t.Errorf(".dockerignore leaves %s out of the build context", rel)
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		if !slices.Contains(allowed, f) {
			t.Errorf(".dockerignore leaves %s out", f)
		}
	}
}

// TestBinaryStaticMultiArch checks the binary as the Dockerfile builds it
// for linux/amd64 and linux/arm64 (CGO_ENABLED=0, -trimpath, version stamp):
// static (no interpreter, no shared library), the arm64 one run under
// qemu-aarch64, the amd64 one as the image's nonroot user.
func TestBinaryStaticMultiArch(t *testing.T) {
	amd64 := bootstrapBin(t) // the same flags, for the host (amd64 here)
	// Not t.TempDir: its parent is 0700, and uid 65532 must reach the files.
	dir, err := os.MkdirTemp("", "charts-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	arm64 := filepath.Join(dir, "bootstrap-arm64")
	mustRun(t, repo(t), []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"}, "go", "build", "-trimpath",
		"-ldflags", "-s -w -X main.version=v0.0.0-test", "-o", arm64, "./cmd/bootstrap")
	for bin, machine := range map[string]elf.Machine{amd64: elf.EM_X86_64, arm64: elf.EM_AARCH64} {
		if runtime.GOARCH != "amd64" && machine == elf.EM_X86_64 {
			continue
		}
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("%v: dynamically linked (%v): distroless static has no libc", machine, p.Type)
			}
		}
		if f.Machine != machine {
			t.Errorf("%s: machine %v, want %v", bin, f.Machine, machine)
		}
		f.Close()
	}

	t.Run("arm64-under-qemu", func(t *testing.T) {
		qemu := testenv.Tool(t, "qemu-aarch64")
		out := mustRun(t, "", nil, qemu, arm64, "version")
		if !strings.Contains(out, "v0.0.0-test") || !strings.Contains(out, "linux/arm64") {
			t.Errorf("arm64 version: %q", out)
		}
		t.Logf("qemu-aarch64: %s", strings.TrimSpace(out))
	})

	t.Run("nonroot", func(t *testing.T) {
		if os.Geteuid() != 0 {
			testenv.Missing(t, "root (to run the binary as uid 65532)")
		}
		cfg := filepath.Join(dir, "bootstrap.yaml")
		if err := os.WriteFile(cfg, bootstrapConfig(t, render(t, namespace)), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(amd64, "validate", "-f", cfg)
		cmd.Dir = "/"
		cmd.Env = []string{}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65532, Gid: 65532}}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "is valid") {
			t.Errorf("as uid 65532: %v\n%s", err, out)
		}
	})
}

// ---------------------------------------------------------------------------
// docker-compose

func TestComposeFile(t *testing.T) {
	compose := testenv.Tool(t, "docker-compose")
	deploy := filepath.Join(repo(t), "deploy")
	file := filepath.Join(deploy, "docker-compose.yml")
	mustRun(t, deploy, nil, compose, "-f", file, "config", "-q")
	var c struct {
		Services map[string]struct {
			Build struct {
				Context, Dockerfile string
			}
			Command     []string
			DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
			Healthcheck map[string]any
			Secrets     []any
			ReadOnly    bool `yaml:"read_only"`
			User        string
			Volumes     []any
		}
		Secrets map[string]struct{ File string }
	}
	if err := yaml.Unmarshal([]byte(mustRun(t, deploy, nil, compose, "-f", file, "config")), &c); err != nil {
		t.Fatal(err)
	}
	data := []string{"postgresql-health", "postgresql-auth", "redis-health", "redis-auth", "minio", "rabbitmq"}
	if len(c.Services) != len(data)+1 {
		t.Errorf("services %v, want the six data services and bootstrap", keysOf(c.Services))
	}
	for _, s := range data {
		svc, ok := c.Services[s]
		if !ok {
			t.Errorf("no service %s", s)
			continue
		}
		if len(list(svc.Healthcheck["test"])) == 0 {
			t.Errorf("%s has no health check", s)
		}
		if len(svc.Secrets) == 0 {
			t.Errorf("%s gets no credentials from compose secrets", s)
		}
	}
	b := c.Services["bootstrap"]
	if b.Build.Dockerfile != "Dockerfile" || b.Build.Context != repo(t) {
		t.Errorf("bootstrap build %+v, want the repository's Dockerfile", b.Build)
	}
	for _, s := range data {
		if b.DependsOn[s].Condition != "service_healthy" {
			t.Errorf("bootstrap depends_on %s: %q, want service_healthy", s, b.DependsOn[s].Condition)
		}
	}
	if !b.ReadOnly || b.User != "65532:65532" {
		t.Errorf("bootstrap read_only=%v user=%q, want a read-only root filesystem as 65532", b.ReadOnly, b.User)
	}
	for name, s := range c.Secrets {
		if filepath.Dir(s.File) != filepath.Join(deploy, "secrets") || filepath.Base(s.File) != name {
			t.Errorf("secret %s from %q, want the file source deploy/secrets/%s", name, s.File, name)
		}
	}

	// The config bootstrap runs with validates, reads secrets from the
	// compose secrets, and points at the compose services.
	raw, err := os.ReadFile(filepath.Join(deploy, "bootstrap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	validate(t, "compose-bootstrap.yaml", raw)
	cfg := loadConfig(t, raw)
	if cfg.Secrets.Source.Type != "file" || cfg.Secrets.Source.File.Dir != "/run/secrets" || cfg.Secrets.Output.Type != "none" {
		t.Errorf("secrets %+v, want the file source in /run/secrets and output none", cfg.Secrets)
	}
	given := map[string]bool{}
	for _, s := range b.Secrets {
		name := str(s)
		if m, ok := s.(map[string]any); ok {
			name = str(m["source"])
		}
		given[name] = true
	}
	script, err := os.ReadFile(filepath.Join(deploy, "init-secrets.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for name := range cfg.SecretRefs(func(string) bool { return true }, true) {
		if !given[name] {
			t.Errorf("bootstrap.yaml reads secret %s, not given to the bootstrap service", name)
		}
		if _, ok := c.Secrets[name]; !ok || !regexp.MustCompile(`\b`+regexp.QuoteMeta(name)+`\b`).Match(script) {
			t.Errorf("secret %s: not declared in the compose file or not written by init-secrets.sh", name)
		}
	}
	// The config and the migrations it names are mounted into the container.
	mounts := map[string]string{} // container path -> host path
	for _, v := range b.Volumes {
		parts := strings.Split(str(v), ":")
		if len(parts) >= 2 {
			mounts[parts[1]] = parts[0]
		}
	}
	if _, err := os.Stat(mounts["/etc/bootstrap/bootstrap.yaml"]); err != nil || !slices.Equal(b.Command[:2], []string{"apply", "-f"}) ||
		b.Command[2] != "/etc/bootstrap/bootstrap.yaml" {
		t.Errorf("bootstrap runs %v with mounts %v, want apply -f the mounted deploy/bootstrap.yaml", b.Command, mounts)
	}
	for _, p := range cfg.Postgres {
		for _, d := range p.Databases {
			if d.Migrations == "" {
				continue
			}
			found := false
			for target, src := range mounts {
				if rest, ok := strings.CutPrefix(d.Migrations, target+"/"); ok {
					if fi, err := os.Stat(filepath.Join(src, rest)); err == nil && fi.IsDir() {
						found = true
					}
				}
			}
			if !found {
				t.Errorf("postgres/%s database %s: migrations %s is not a mounted folder", p.Name, d.Name, d.Migrations)
			}
		}
	}

	hosts := map[string]string{}
	for _, p := range cfg.Postgres {
		hosts[p.Host] = str(p.Port)
	}
	for _, r := range cfg.Redis {
		h, p, _ := strings.Cut(r.Address, ":")
		hosts[h] = p
	}
	for _, m := range cfg.MinIO {
		h, p, _ := strings.Cut(m.Endpoint, ":")
		hosts[h] = p
	}
	for _, r := range cfg.RabbitMQ {
		hosts[r.Host] = str(r.Port)
	}
	for h := range hosts {
		if _, ok := c.Services[h]; !ok || !slices.Contains(data, h) {
			t.Errorf("bootstrap.yaml points at %s, not a data service of the compose file", h)
		}
	}
	if len(hosts) != len(data) {
		t.Errorf("bootstrap.yaml reaches %v, want all six services", hosts)
	}
}

func keysOf[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
