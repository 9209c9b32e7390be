package charts

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The glue between the umbrella's bootstrap and the Bitnami charts, read
// from what the real subcharts render: the Secrets their pods read, the
// Services bootstrap connects to, what their pods request and how they run,
// and the images they pull. A subchart that reads another key, a Service
// renamed, a request changed, an image tag not the chart's: each fails here.

// seed is DESIGN.md's table of the six data services (requests of each
// service's own container, its volume) for the default and production
// values; the free tier has its own profile (budget_test.go).
var seed = []struct {
	alias, cpu, memory, storage string
}{
	{"postgresql-health", "300m", "1Gi", "60Gi"},
	{"postgresql-auth", "150m", "512Mi", "20Gi"},
	{"redis-health", "100m", "256Mi", "5Gi"},
	{"redis-auth", "100m", "256Mi", "5Gi"},
	{"minio", "200m", "512Mi", "80Gi"},
	{"rabbitmq", "300m", "512Mi", "15Gi"},
}

// profiles are the value sets a user installs with.
var profiles = []struct {
	name string
	args []string
}{
	{"default", nil},
	{"production", []string{"-f", "values-production.yaml"}},
	{"free-tier", []string{"-f", "values-production.yaml", "-f", "values-free-tier.yaml"}},
}

// (a) Every Secret name and key a subchart's pod reads is either rendered by
// that chart or delivered by bootstrap, before the pods start: by the
// pre-install hook Job (--phase secrets), from the config it mounts.
func TestGlueSecrets(t *testing.T) {
	for _, p := range profiles {
		t.Run(p.name, func(t *testing.T) {
			objs := renderSet(t, namespace, p.args)
			cfg := loadConfig(t, bootstrapConfig(t, objs))
			delivered := deliveredSecrets(cfg)
			if cfg.Secrets.Output.Type == "none" {
				t.Fatal("secrets.output.type none: nothing delivers the data services' Secrets")
			}
			rendered := map[string]map[string]bool{}
			for _, o := range objs {
				if o.kind() != "Secret" {
					continue
				}
				keys := map[string]bool{}
				for _, f := range []string{"data", "stringData"} {
					for k := range asMap(o[f]) {
						keys[k] = true
					}
				}
				rendered[o.name()] = keys
			}

			var refs int
			for _, w := range workloads(bitnamiCharts(t, objs)) {
				for _, r := range secretRefs(w.pod) {
					refs++
					if keys, ok := rendered[r.name]; ok {
						if r.key != "" && !keys[r.key] {
							t.Errorf("%s (%s) reads key %s of Secret %s, which its chart renders without it", w, r.where, r.key, r.name)
						}
						continue
					}
					data, ok := delivered[r.name]
					switch {
					case !ok:
						t.Errorf("%s (%s) reads Secret %s, which neither its chart renders nor bootstrap delivers (it delivers %s)", w, r.where, r.name, strings.Join(keysOf(delivered), ", "))
					case r.key != "" && data[r.key] == "":
						t.Errorf("%s (%s) reads key %s of Secret %s; bootstrap delivers keys %s", w, r.where, r.key, r.name, strings.Join(keysOf(data), ", "))
					}
				}
			}
			if refs == 0 {
				t.Fatal("no subchart pod reads a Secret: the subcharts did not render")
			}

			// Delivered in the pre-install phase: the secrets Job is a
			// pre-install hook, runs --phase secrets (or all), and mounts the
			// ConfigMap holding this config.
			var pre []workload
			for _, w := range workloads(objs) {
				if w.obj.kind() == "Job" && slices.Contains(strings.Split(w.obj.annotation("helm.sh/hook"), ","), "pre-install") {
					pre = append(pre, w)
				}
			}
			if len(pre) != 1 {
				t.Fatalf("%d pre-install Jobs, want the secrets Job", len(pre))
			}
			args := list(allContainers(pre[0].pod)[0]["args"])
			if phase, _ := flagValue(args, "--phase"); phase != "secrets" && phase != "all" {
				t.Errorf("pre-install Job %s runs %v: not the secrets phase", pre[0], args)
			}
			var mounted bool
			for _, v := range list(pre[0].pod["volumes"]) {
				mounted = mounted || str(dig(v, "configMap", "name")) == "hp-bootstrap-config"
			}
			if !mounted {
				t.Errorf("pre-install Job %s does not mount ConfigMap hp-bootstrap-config", pre[0])
			}
		})
	}
}

// (b) Every host and port bootstrap connects to, and every one the
// connection ConfigMap gives the applications, is a rendered Service in the
// release namespace with that port, which reaches a container of a data
// service's pod.
func TestGlueServices(t *testing.T) {
	for _, p := range profiles {
		t.Run(p.name, func(t *testing.T) {
			objs := renderSet(t, namespace, p.args)
			cfg := loadConfig(t, bootstrapConfig(t, objs))
			svcs := servicesByName(objs)
			ws := workloads(bitnamiCharts(t, objs))
			check := func(what, host string, port int64) {
				t.Helper()
				name, rest, _ := strings.Cut(host, ".")
				if rest != namespace+".svc.cluster.local" {
					t.Errorf("%s: host %s is not a Service of namespace %s", what, host, namespace)
					return
				}
				s, ok := svcs[name]
				if !ok {
					t.Errorf("%s: no Service %s among the rendered objects", what, name)
					return
				}
				if _, _, err := s.backend(ws, port); err != nil {
					t.Errorf("%s: Service %s port %d: %v", what, name, port, err)
				}
			}
			hostPort := func(what, addr string) {
				t.Helper()
				h, ps, err := net.SplitHostPort(addr)
				n, _ := strconv.ParseInt(ps, 10, 64)
				if err != nil || n == 0 {
					t.Errorf("%s: address %q", what, addr)
					return
				}
				check(what, h, n)
			}
			var n int
			for _, pg := range cfg.Postgres {
				check("postgres/"+pg.Name, pg.Host, int64(pg.Port))
				n++
			}
			for _, r := range cfg.Redis {
				hostPort("redis/"+r.Name, r.Address)
				n++
			}
			for _, m := range cfg.MinIO {
				hostPort("minio/"+m.Name, m.Endpoint)
				n++
			}
			for _, r := range cfg.RabbitMQ {
				check("rabbitmq/"+r.Name, r.Host, int64(r.Port))
				check("rabbitmq/"+r.Name+" management", r.Host, int64(r.ManagementPort))
				n++
			}
			if n != 6 {
				t.Errorf("%d bootstrap targets, want the six data services", n)
			}

			ci := asMap(find(t, objs, "ConfigMap", "infrastructure-connection-info")["data"])
			for k, v := range ci {
				switch {
				case strings.HasSuffix(k, "_HOST"):
					pre := strings.TrimSuffix(k, "_HOST")
					port, err := strconv.ParseInt(str(ci[pre+"_PORT"]), 10, 64)
					if err != nil {
						t.Errorf("connection info %s_PORT: %v", pre, err)
						continue
					}
					check("connection info "+k, str(v), port)
					if mp := str(ci[pre+"_MANAGEMENT_PORT"]); mp != "" {
						n, _ := strconv.ParseInt(mp, 10, 64)
						check("connection info "+pre+"_MANAGEMENT_PORT", str(v), n)
					}
				case strings.HasSuffix(k, "_ENDPOINT"):
					hostPort("connection info "+k, str(v))
				}
			}
		})
	}
}

// seedBackend finds, for a seed alias, the data service's workload and its
// serving container through the Service the connection ConfigMap names.
func seedBackend(t *testing.T, objs []object, alias string) (workload, map[string]any) {
	t.Helper()
	ci := asMap(find(t, objs, "ConfigMap", "infrastructure-connection-info")["data"])
	pre := strings.ToUpper(strings.ReplaceAll(alias, "-", "_"))
	host, port := str(ci[pre+"_HOST"]), str(ci[pre+"_PORT"])
	if ep := str(ci[pre+"_ENDPOINT"]); ep != "" {
		host, port, _ = net.SplitHostPort(ep)
	}
	n, _ := strconv.ParseInt(port, 10, 64)
	name, _, _ := strings.Cut(host, ".")
	s, ok := servicesByName(objs)[name]
	if !ok {
		t.Fatalf("%s: connection info names host %q, not a rendered Service", alias, host)
	}
	w, c, err := s.backend(workloads(bitnamiCharts(t, objs)), n)
	if err != nil {
		t.Fatalf("%s: Service %s: %v", alias, name, err)
	}
	return w, c
}

// (c) What each data service's pods ask for and how they run, from the
// rendered StatefulSets and Deployments, against DESIGN.md's table:
// requests, limits, non-root 1001 without privileges, volumes of oci-bv at
// the table's size, and a ServiceMonitor in health-observability that finds
// the service's pods.
func TestGlueWorkloads(t *testing.T) {
	for _, p := range profiles[:2] {
		t.Run(p.name, func(t *testing.T) {
			objs := renderSet(t, namespace, p.args)
			svcs := servicesByName(objs)
			for _, s := range seed {
				w, main := seedBackend(t, objs, s.alias)
				where := fmt.Sprintf("%s (%s container %s)", s.alias, w, main["name"])
				if got := str(dig(main, "resources", "requests", "cpu")); got != s.cpu {
					t.Errorf("%s: cpu request %q, DESIGN.md says %s", where, got, s.cpu)
				}
				if got := str(dig(main, "resources", "requests", "memory")); got != s.memory {
					t.Errorf("%s: memory request %q, DESIGN.md says %s", where, got, s.memory)
				}
				for _, c := range allContainers(w.pod) {
					for _, k := range []string{"cpu", "memory"} {
						if dig(c, "resources", "limits", k) == nil {
							t.Errorf("%s container %s: no %s limit", w, c["name"], k)
						}
					}
					checkRunsAs1001(t, w, c)
				}
				if got := str(dig(w.pod, "securityContext", "fsGroup")); got != "1001" {
					t.Errorf("%s: pod fsGroup %q, want 1001", w, got)
				}
				if w.replicas != 1 {
					t.Errorf("%s: %d replicas, want 1", w, w.replicas)
				}

				// The volume the serving container mounts at its data path.
				size, class, err := dataVolume(objs, w, main)
				if err != nil {
					t.Errorf("%s: %v", where, err)
				} else if size != s.storage || class != "oci-bv" {
					t.Errorf("%s: volume %s of class %q, DESIGN.md says %s of oci-bv", where, size, class, s.storage)
				}

				// A ServiceMonitor in health-observability that selects a
				// Service in this namespace whose pods are these.
				var monitored bool
				for _, o := range objs {
					if o.kind() != "ServiceMonitor" || str(dig(o, "metadata", "namespace")) != obsNS ||
						!slices.Contains(list(dig(o, "spec", "namespaceSelector", "matchNames")), any(namespace)) {
						continue
					}
					for _, svc := range svcs {
						if !subset(dig(o, "spec", "selector", "matchLabels"), dig(svc.obj, "metadata", "labels")) ||
							!subset(svc.selector, w.labels) || len(svc.selector) == 0 {
							continue
						}
						for _, ep := range list(dig(o, "spec", "endpoints")) {
							for _, sp := range list(dig(svc.obj, "spec", "ports")) {
								monitored = monitored || str(dig(sp, "name")) == str(dig(ep, "port"))
							}
						}
					}
				}
				if !monitored {
					t.Errorf("%s: no ServiceMonitor in %s selects a Service port of its pods", s.alias, obsNS)
				}
			}
		})
	}
}

// checkRunsAs1001: the container runs as UID 1001, non-root, without
// privilege escalation or capabilities, under RuntimeDefault seccomp (its
// own settings or the pod's).
func checkRunsAs1001(t *testing.T, w workload, c map[string]any) {
	t.Helper()
	sc, psc := asMap(c["securityContext"]), asMap(w.pod["securityContext"])
	either := func(k string) any {
		if v, ok := sc[k]; ok && v != nil {
			return v
		}
		return psc[k]
	}
	where := fmt.Sprintf("%s container %s", w, c["name"])
	if str(either("runAsUser")) != "1001" || str(either("runAsNonRoot")) != "true" {
		t.Errorf("%s: runAsUser %v, runAsNonRoot %v; want 1001, true", where, either("runAsUser"), either("runAsNonRoot"))
	}
	if str(sc["allowPrivilegeEscalation"]) != "false" || str(sc["privileged"]) == "true" {
		t.Errorf("%s: allowPrivilegeEscalation %v, privileged %v", where, sc["allowPrivilegeEscalation"], sc["privileged"])
	}
	if !slices.Equal(list(dig(sc, "capabilities", "drop")), []any{"ALL"}) || len(list(dig(sc, "capabilities", "add"))) > 0 {
		t.Errorf("%s: capabilities %v, want all dropped", where, sc["capabilities"])
	}
	if str(dig(either("seccompProfile"), "type")) != "RuntimeDefault" {
		t.Errorf("%s: seccompProfile %v, want RuntimeDefault", where, either("seccompProfile"))
	}
}

// dataVolume returns the size and storage class of the persistent volume
// the container mounts (a StatefulSet's claim template or a
// PersistentVolumeClaim object).
func dataVolume(objs []object, w workload, c map[string]any) (size, class string, err error) {
	mounted := map[string]bool{}
	for _, m := range list(c["volumeMounts"]) {
		mounted[str(dig(m, "name"))] = true
	}
	var found []string
	for _, vct := range list(dig(w.obj, "spec", "volumeClaimTemplates")) {
		if mounted[str(dig(vct, "metadata", "name"))] {
			size, class = str(dig(vct, "spec", "resources", "requests", "storage")), str(dig(vct, "spec", "storageClassName"))
			found = append(found, str(dig(vct, "metadata", "name")))
		}
	}
	for _, v := range list(w.pod["volumes"]) {
		claim := str(dig(v, "persistentVolumeClaim", "claimName"))
		if claim == "" || !mounted[str(dig(v, "name"))] {
			continue
		}
		pvc, ok := findOpt(objs, "PersistentVolumeClaim", claim)
		if !ok {
			return "", "", fmt.Errorf("claim %s is not rendered", claim)
		}
		size, class = str(dig(pvc, "spec", "resources", "requests", "storage")), str(dig(pvc, "spec", "storageClassName"))
		found = append(found, claim)
	}
	if len(found) != 1 {
		return "", "", fmt.Errorf("mounts %d persistent volumes %v, want one", len(found), found)
	}
	return size, class, nil
}

// (d) Every image a subchart's pod runs is docker.io/bitnamilegacy/NAME
// with the tag the pinned chart names for bitnami/NAME, and none is pulled
// from the docker.io/bitnami repositories that no longer serve these tags.
func TestGlueImages(t *testing.T) {
	ref := regexp.MustCompile(`^docker\.io/bitnamilegacy/([a-z0-9-]+):([A-Za-z0-9._-]+)$`)
	tags := map[string]map[string]string{} // chart package -> bitnami/NAME -> tag
	for _, p := range profiles {
		t.Run(p.name, func(t *testing.T) {
			objs := renderSet(t, namespace, p.args)
			pinned := pinnedCharts(t)
			var n int
			for _, w := range workloads(bitnamiCharts(t, objs)) {
				pkg := pinned[str(dig(w.obj, "metadata", "labels", "helm.sh/chart"))]
				if tags[pkg] == nil {
					tags[pkg] = imageTags(packageValues(t, pkg))
				}
				for _, c := range allContainers(w.pod) {
					n++
					img := str(c["image"])
					m := ref.FindStringSubmatch(img)
					if m == nil {
						t.Errorf("%s container %s: image %s, want docker.io/bitnamilegacy/NAME:TAG", w, c["name"], img)
						continue
					}
					want, ok := tags[pkg]["bitnami/"+m[1]]
					if !ok {
						t.Errorf("%s container %s: %s: chart %s names no image bitnami/%s", w, c["name"], img, pkg, m[1])
					} else if m[2] != want {
						t.Errorf("%s container %s: %s: chart %s names tag %s", w, c["name"], img, pkg, want)
					}
				}
			}
			if n == 0 {
				t.Fatal("no subchart container rendered")
			}
		})
	}
}

// imageTags collects every image a chart's values name: repository -> tag.
func imageTags(v any) map[string]string {
	out := map[string]string{}
	var walk func(v any)
	walk = func(v any) {
		m := asMap(v)
		if repo, tag := str(m["repository"]), str(m["tag"]); repo != "" && tag != "" {
			out[repo] = tag
		}
		for _, sub := range m {
			walk(sub)
		}
		for _, sub := range list(v) {
			walk(sub)
		}
	}
	walk(v)
	return out
}
