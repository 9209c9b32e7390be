package charts

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// ---------------------------------------------------------------------------
// Rendering with every subchart: dependencies, lint, the API server, NOTES

// TestChartDependencies: the infrastructure subchart pins exact, released
// Bitnami versions, each of which is in place (Helm says "ok"), and the
// umbrella takes the subchart from its charts/ folder.
func TestChartDependencies(t *testing.T) {
	c := readYAML(t, filepath.Join(infraDir(t), "Chart.yaml"))
	deps := list(c["dependencies"])
	exact := regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)
	aliases := map[string]bool{}
	for _, d := range deps {
		name, version, alias := str(dig(d, "name")), str(dig(d, "version")), str(dig(d, "alias"))
		if !exact.MatchString(version) {
			t.Errorf("%s (%s): version %q is a range; pin the exact release", alias, name, version)
		}
		if str(dig(d, "repository")) != "oci://registry-1.docker.io/bitnamicharts" || str(dig(d, "condition")) != alias+".enabled" {
			t.Errorf("%s: repository %v, condition %v; want Bitnami's OCI registry and %s.enabled", alias, dig(d, "repository"), dig(d, "condition"), alias)
		}
		aliases[alias] = true
	}
	for _, s := range seed {
		if !aliases[s.alias] {
			t.Errorf("no dependency with alias %s", s.alias)
		}
	}
	out := mustRun(t, repo(t), nil, helmBin(t), "dependency", "list", infraDir(t))
	lines := strings.Split(strings.TrimSpace(out), "\n")[1:]
	if len(lines) != len(deps) {
		t.Errorf("helm dependency list: %d lines for %d dependencies:\n%s", len(lines), len(deps), out)
	}
	for _, l := range lines {
		if f := strings.Fields(l); len(f) < 4 || f[3] != "ok" {
			t.Errorf("helm dependency list: %s", l)
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

// TestHelmLint: `helm lint --strict` finds nothing in any profile, the
// subcharts rendered, nor in the infrastructure subchart alone.
func TestHelmLint(t *testing.T) {
	h := helmBin(t)
	sets := [][]string{{"--set", "bootstrap.serve.enabled=true", "--set", "bootstrap.secrets.output.type=plain"}, networkPolicyArgs}
	for _, p := range profiles {
		sets = append(sets, p.args)
	}
	for _, set := range sets {
		args := append([]string{"lint", "--strict", chartDir(t)}, valueFiles(t, set)...)
		out, err := run(t, repo(t), nil, h, args...)
		if err != nil || strings.Contains(out, "[ERROR]") || strings.Contains(out, "[WARNING]") {
			t.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	out, err := run(t, repo(t), nil, h, "lint", "--strict", infraDir(t))
	if err != nil || strings.Contains(out, "[ERROR]") || strings.Contains(out, "[WARNING]") {
		t.Errorf("helm lint --strict infrastructure: %v\n%s", err, out)
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
	{"free-tier", []string{"-f", "values-production.yaml", "-f", "values-free-tier.yaml"}, true},
	{"plain", []string{"--set", "bootstrap.secrets.output.type=plain"}, false},
	{"sealed-cert-file", []string{"--set", "bootstrap.secrets.output.sealing.cert=/etc/sealed-secrets/cert.pem"}, false},
	{"output-none", []string{"--set", "bootstrap.secrets.output.type=none"}, false},
	{"sealed-to-dir", []string{"--set", "bootstrap.secrets.output.target=dir", "--set", "bootstrap.secrets.output.dir=/tmp/sealed"}, false},
	{"serve-plain", []string{"--set", "bootstrap.serve.enabled=true", "--set", "bootstrap.secrets.output.type=plain"}, true},
	{"serve-cert-file-no-monitor", []string{"--set", "bootstrap.serve.enabled=true", "--set", "bootstrap.serve.serviceMonitor.enabled=false",
		"--set", "bootstrap.secrets.output.sealing.cert=/etc/sealed-secrets/cert.pem"}, true},
	{"serve-output-none", []string{"--set", "bootstrap.serve.enabled=true", "--set", "bootstrap.secrets.output.type=none",
		"--set", "bootstrap.serve.interval=90s"}, true},
	// The data services' NetworkPolicies, on the free tier's services with
	// the daemon (netpol_test.go evaluates them).
	{"network-policies", append([]string{"-f", "values-production.yaml", "-f", "values-free-tier.yaml"}, networkPolicyArgs...), true},
}

func renderSet(t testing.TB, ns string, args []string) []object {
	t.Helper()
	return render(t, ns, valueFiles(t, args)...)
}

// valueFiles resolves the chart's own values files (-f NAME) in args.
func valueFiles(t testing.TB, args []string) []string {
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
	return full
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
	// The ServiceMonitors: the kind, and a throwaway namespace for them in
	// place of health-observability.
	serviceMonitorCRD(t, k)
	obs := testenv.Unique("hpobs-")
	if _, err := k("create", "namespace", obs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = k("delete", "namespace", obs, "--wait=false") })
	toObs := []string{"--set", "bootstrap.serve.serviceMonitor.namespace=" + obs}
	for _, s := range seed {
		toObs = append(toObs, "--set", "infrastructure."+s.alias+".metrics.serviceMonitor.namespace="+obs)
	}

	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			objs := renderSet(t, ns, append(slices.Clone(vs.args), toObs...))
			if len(bitnamiCharts(t, objs)) == 0 {
				t.Fatal("no object of a Bitnami subchart rendered")
			}
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
			// Every object in one request per set (kubectl names each one
			// it rejects); one process per object took minutes.
			all := filepath.Join(dir, "all")
			if err := os.Mkdir(all, 0o755); err != nil {
				t.Fatal(err)
			}
			for i, o := range objs {
				b, err := yaml.Marshal(map[string]any(o))
				if err != nil {
					t.Fatal(err)
				}
				f := filepath.Join(all, fmt.Sprintf("%03d-%s-%s.yaml", i, strings.ToLower(o.kind()), o.name()))
				if err := os.WriteFile(f, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out, err := k("apply", "--dry-run=server", "-f", all)
			if err != nil {
				t.Errorf("rejected: %v", err)
			}
			if n := strings.Count(out, "(server dry run)"); n != len(objs) {
				t.Errorf("%d of %d objects accepted:\n%s", n, len(objs), out)
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
