package charts

import (
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"
)

func TestServe(t *testing.T) {
	t.Run("only when enabled", func(t *testing.T) {
		for _, args := range [][]string{
			nil,
			{"--set", "bootstrap.serve.enabled=false", "--set", "bootstrap.serve.serviceMonitor.enabled=true"},
			{"--set", "bootstrap.serve.enabled=true", "--set", "bootstrap.enabled=false"},
		} {
			for _, o := range ours(t, render(t, namespace, args...)) {
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
			objs := ours(t, renderSet(t, namespace, vs.args))
			wantInterval := "5m"
			if slices.Contains(vs.args, "values-production.yaml") {
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
		for _, s := range seed {
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
