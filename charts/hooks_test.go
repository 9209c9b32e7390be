package charts

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/health-data-ai/bootstrap/internal/secrets/sink"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

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
		// The uninstall hook removes itself once it succeeded; every other
		// hook stays (its logs) until the next one replaces it, or the
		// uninstall hook removes it.
		wantPolicy := "before-hook-creation"
		if isUninstall(o) {
			wantPolicy += ",hook-succeeded"
			if hook != "post-delete" {
				t.Errorf("%s %s: hook %q, want post-delete", o.kind(), o.name(), hook)
			}
		}
		if got := o.annotation("helm.sh/hook-delete-policy"); got != wantPolicy {
			t.Errorf("%s %s: hook-delete-policy %q, want %s", o.kind(), o.name(), got, wantPolicy)
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
	checkUninstallHook(t, objs)

	// The manual re-run: an ordinary, suspended CronJob running every phase.
	cj := find(t, objs, "CronJob", "hp-bootstrap")
	if cj.annotation("helm.sh/hook") != "" || str(dig(cj, "spec", "suspend")) != "true" {
		t.Errorf("re-run CronJob: hook %q, suspend %v; want an ordinary suspended CronJob", cj.annotation("helm.sh/hook"), dig(cj, "spec", "suspend"))
	}
}

func TestRBAC(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			objs := ours(t, renderSet(t, namespace, vs.args))
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
					if !isUninstall(o) {
						roles++
					}
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
			objs := ours(t, renderSet(t, namespace, vs.args))
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
				// The uninstall hook always talks to the API server.
				want := out.Type != "none" && out.Target == "cluster" || out.Type == "sealed" && out.Sealing.Cert == "" || isUninstall(o)
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
			want := 5
			if vs.serve {
				want++
			}
			if pods != want {
				t.Errorf("%d bootstrap workloads, want %d (three hook Jobs, the test Pod, the re-run CronJob, and the serve Deployment when on)", pods, want)
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

func isUninstall(o object) bool {
	return str(dig(o, "metadata", "labels", "app.kubernetes.io/phase")) == "uninstall"
}

// checkUninstallHook: what `helm uninstall` leaves (every hook object but the
// uninstall hook's own) is what the post-delete Job's selector chooses, in
// the namespaces it is given, and its Roles allow listing and deleting
// exactly those kinds there.
func checkUninstallHook(t *testing.T, objs []object) {
	t.Helper()
	job := find(t, objs, "Job", "hp-bootstrap-uninstall")
	args := list(dig(list(dig(job, "spec", "template", "spec", "containers"))[0], "args"))
	if len(args) == 0 || str(args[0]) != "uninstall" {
		t.Fatalf("uninstall Job runs %v", args)
	}
	nsArg, _ := flagValue(args, "--namespace")
	selArg, _ := flagValue(args, "--selector")
	sel, err := labels.Parse(selArg)
	if err != nil {
		t.Fatalf("--selector %q: %v", selArg, err)
	}
	namespaces := strings.Split(nsArg, ",")
	// kind -> namespace -> the uninstall Role allows list and delete
	allowed := map[string]map[string]bool{}
	for _, o := range objs {
		if o.kind() != "Role" || !isUninstall(o) {
			continue
		}
		for _, r := range list(o["rules"]) {
			verbs := list(dig(r, "verbs"))
			if !slices.Contains(verbs, any("list")) || !slices.Contains(verbs, any("delete")) || len(verbs) != 2 {
				t.Errorf("Role %s/%s: verbs %v, want list and delete", dig(o, "metadata", "namespace"), o.name(), verbs)
			}
			for _, res := range list(dig(r, "resources")) {
				if allowed[str(res)] == nil {
					allowed[str(res)] = map[string]bool{}
				}
				allowed[str(res)][str(dig(o, "metadata", "namespace"))] = true
			}
		}
	}
	resource := map[string]string{"Job": "jobs", "Pod": "pods", "ConfigMap": "configmaps", "ServiceAccount": "serviceaccounts", "Role": "roles", "RoleBinding": "rolebindings"}
	for _, o := range objs {
		if o.annotation("helm.sh/hook") == "" || isUninstall(o) {
			continue
		}
		ns := str(dig(o, "metadata", "namespace"))
		what := fmt.Sprintf("hook %s %s/%s", o.kind(), ns, o.name())
		if !sel.Matches(labels.Set(stringMap(dig(o, "metadata", "labels")))) {
			t.Errorf("%s: its labels escape the uninstall selector %s", what, selArg)
		}
		if !slices.Contains(namespaces, ns) {
			t.Errorf("%s: namespace not in the uninstall Job's --namespace %s", what, nsArg)
		}
		if !allowed[resource[o.kind()]][ns] {
			t.Errorf("%s: the uninstall Roles do not allow removing it", what)
		}
	}
}

func stringMap(v any) map[string]string {
	out := map[string]string{}
	for k, x := range asMap(v) {
		out[k] = str(x)
	}
	return out
}
