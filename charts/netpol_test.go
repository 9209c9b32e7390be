package charts

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The optional NetworkPolicies (networkPolicy.enabled), evaluated the way a
// network plugin enforces them: every rendered NetworkPolicy counts, ours and
// the Bitnami charts' alike (they add up), against the pods and container
// ports the real subcharts render. Peers are pods with labels in a namespace.

// networkPolicyArgs turn the policies on with one peer of each kind: the
// applications (namespace health-apps, pods app=web), RabbitMQ's ETL workers
// (pods app=etl of the release namespace) and the auth service (pods
// app=auth, to wherever bootstrap.postgres.postgresql-auth lives).
var networkPolicyArgs = []string{
	"--set", "networkPolicy.enabled=true",
	"--set", "infrastructure.rabbitmq.networkPolicy.enabled=false",
	"--set-json", `networkPolicy.from=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"health-apps"}},"podSelector":{"matchLabels":{"app":"web"}}}]`,
	"--set-json", `networkPolicy.fromByService={"rabbitmq":[{"podSelector":{"matchLabels":{"app":"etl"}}}],"postgresql-auth":[{"podSelector":{"matchLabels":{"app":"auth"}}}]}`,
}

// peer is a pod that opens a connection.
type peer struct {
	name   string
	ns     string
	labels map[string]any
}

// cport is one container port of a data service's pod.
type cport struct {
	w      workload
	name   string
	number int64
	proto  string
}

func (p cport) String() string { return fmt.Sprintf("%s port %s/%d", p.w, p.name, p.number) }

// TestNetworkPolicies: with networkPolicy.enabled every data service's pods
// admit the release's bootstrap on exactly the ports bootstrap connects to,
// the listed peers on exactly the ports the connection ConfigMap gives them,
// Prometheus's namespace on exactly the ports the ServiceMonitors scrape, the
// service's own pods, and nobody else on anything. Off (the default), the
// chart renders none.
func TestNetworkPolicies(t *testing.T) {
	for _, p := range profiles {
		t.Run(p.name, func(t *testing.T) {
			for _, o := range ours(t, renderSet(t, namespace, p.args)) {
				if o.kind() == "NetworkPolicy" {
					t.Errorf("networkPolicy.enabled is false, yet NetworkPolicy %s is rendered", o.name())
				}
			}

			objs := renderSet(t, namespace, append(slices.Clone(p.args), networkPolicyArgs...))
			policies := kindOf(objs, "NetworkPolicy")
			for _, np := range kindOf(ours(t, objs), "NetworkPolicy") {
				for i, r := range list(dig(np, "spec", "ingress")) {
					if len(list(dig(r, "from"))) == 0 {
						t.Errorf("NetworkPolicy %s ingress[%d] has no from: it admits every source", np.name(), i)
					}
				}
			}
			cfg := loadConfig(t, bootstrapConfig(t, objs))
			ci := asMap(find(t, objs, "ConfigMap", "infrastructure-connection-info")["data"])
			svcs := servicesByName(objs)
			ws := workloads(bitnamiCharts(t, objs))

			// Every data service's pod is isolated: some policy selects it.
			var ports []cport
			for _, w := range ws {
				if w.hook() {
					continue
				}
				if len(selecting(policies, w.labels)) == 0 {
					t.Errorf("%s: no NetworkPolicy selects its pods", w)
				}
				for _, c := range allContainers(w.pod) {
					for _, cp := range list(c["ports"]) {
						ports = append(ports, cport{w, str(dig(cp, "name")), toInt(dig(cp, "containerPort")), str(dig(cp, "protocol"))})
					}
				}
			}
			if len(ports) == 0 {
				t.Fatal("no container port of a data service rendered")
			}

			// resolve turns host:port of a Service into the container port it reaches.
			resolve := func(what, host string, port int64) (cport, bool) {
				t.Helper()
				name, _, _ := strings.Cut(host, ".")
				s, ok := svcs[name]
				if !ok {
					t.Errorf("%s: no Service %s", what, name)
					return cport{}, false
				}
				cp, err := s.backendPort(ws, port)
				if err != nil {
					t.Errorf("%s: Service %s port %d: %v", what, name, port, err)
					return cport{}, false
				}
				return cp, true
			}
			hostPort := func(addr string) (string, int64) {
				h, ps, _ := net.SplitHostPort(addr)
				n, _ := strconv.ParseInt(ps, 10, 64)
				return h, n
			}
			set := func(ps ...cport) map[string]bool {
				m := map[string]bool{}
				for _, p := range ps {
					m[p.String()] = true
				}
				return m
			}

			// bootstrap: what its config connects to.
			var boot []cport
			add := func(what, host string, port int64) {
				if cp, ok := resolve(what, host, port); ok {
					boot = append(boot, cp)
				}
			}
			for _, pg := range cfg.Postgres {
				add(pg.Target(), pg.Host, int64(pg.Port))
			}
			for _, r := range cfg.Redis {
				h, n := hostPort(r.Address)
				add(r.Target(), h, n)
			}
			for _, m := range cfg.MinIO {
				h, n := hostPort(m.Endpoint)
				add(m.Target(), h, n)
			}
			for _, r := range cfg.RabbitMQ {
				add(r.Target(), r.Host, int64(r.Port))
				add(r.Target()+" management", r.Host, int64(r.ManagementPort))
			}
			var bootPods []peer
			for _, w := range workloads(ours(t, objs)) {
				if str(w.labels["app.kubernetes.io/component"]) == "bootstrap" {
					bootPods = append(bootPods, peer{w.String(), namespace, w.labels})
				}
			}
			if len(bootPods) == 0 {
				t.Fatal("no bootstrap pod rendered")
			}
			for _, b := range bootPods {
				checkAdmits(t, policies, b, ports, set(boot...))
			}

			// The applications: the hosts and ports the connection ConfigMap
			// names (<ALIAS>_HOST and _PORT, or _ENDPOINT), per alias.
			byAlias := map[string]cport{}
			for k, v := range ci {
				var pre, h string
				var n int64
				switch {
				case strings.HasSuffix(k, "_HOST"):
					pre, h = strings.TrimSuffix(k, "_HOST"), str(v)
					n, _ = strconv.ParseInt(str(ci[pre+"_PORT"]), 10, 64)
				case strings.HasSuffix(k, "_ENDPOINT"):
					pre = strings.TrimSuffix(k, "_ENDPOINT")
					h, n = hostPort(str(v))
				default:
					continue
				}
				if cp, ok := resolve("connection info "+k, h, n); ok {
					byAlias[pre] = cp
				}
			}
			client := func(aliases ...string) map[string]bool {
				m := map[string]bool{}
				for _, a := range aliases {
					if cp, ok := byAlias[strings.ToUpper(strings.ReplaceAll(a, "-", "_"))]; ok {
						m[cp.String()] = true
					}
				}
				return m
			}
			var all []string
			for _, s := range seed {
				all = append(all, s.alias)
			}
			web := client(all...)
			if len(web) == 0 {
				t.Fatal("the connection ConfigMap names no data service port")
			}
			checkAdmits(t, policies, peer{"health-apps pod app=web", "health-apps", map[string]any{"app": "web"}}, ports, web)
			checkAdmits(t, policies, peer{"pod app=etl", namespace, map[string]any{"app": "etl"}}, ports, client("rabbitmq"))
			checkAdmits(t, policies, peer{"pod app=auth", namespace, map[string]any{"app": "auth"}}, ports, client("postgresql-auth"))

			// Prometheus: the ports the ServiceMonitors scrape.
			metrics := map[string]bool{}
			for _, sm := range kindOf(objs, "ServiceMonitor") {
				for _, s := range svcs {
					if !slices.Contains(list(dig(sm, "spec", "namespaceSelector", "matchNames")), any(namespace)) ||
						!subset(dig(sm, "spec", "selector", "matchLabels"), dig(s.obj, "metadata", "labels")) {
						continue
					}
					for _, ep := range list(dig(sm, "spec", "endpoints")) {
						for _, sp := range list(dig(s.obj, "spec", "ports")) {
							if str(dig(sp, "name")) != str(dig(ep, "port")) {
								continue
							}
							if cp, err := s.backendPort(ws, toInt(dig(sp, "port"))); err == nil {
								metrics[cp.String()] = true
							}
						}
					}
				}
			}
			if len(metrics) == 0 {
				t.Fatal("no ServiceMonitor scrapes a data service")
			}
			checkAdmits(t, policies, peer{"Prometheus", obsNS, map[string]any{"app.kubernetes.io/name": "prometheus"}}, ports, metrics)

			// Nobody else, on anything.
			none := map[string]bool{}
			for _, stranger := range []peer{
				{"health-apps pod app=other", "health-apps", map[string]any{"app": "other"}},
				{"pod app=web outside health-apps", "default", map[string]any{"app": "web"}},
				{"pod app=web of the release namespace", namespace, map[string]any{"app": "web"}},
				{"another release's bootstrap", namespace, map[string]any{"app.kubernetes.io/name": umbrella, "app.kubernetes.io/instance": "other", "app.kubernetes.io/component": "bootstrap"}},
				{"pod app=etl elsewhere", "health-apps", map[string]any{"app": "etl"}},
			} {
				checkAdmits(t, policies, stranger, ports, none)
			}
			// Each data service's pods reach their own ports, not another's.
			for _, w := range ws {
				if w.hook() {
					continue
				}
				own := map[string]bool{}
				for _, cp := range ports {
					if cp.w.String() == w.String() {
						own[cp.String()] = true
					}
				}
				checkAdmits(t, policies, peer{w.String(), namespace, w.labels}, ports, own)
			}
		})
	}
}

// checkAdmits fails unless exactly the ports in want admit the peer.
func checkAdmits(t *testing.T, policies []object, src peer, ports []cport, want map[string]bool) {
	t.Helper()
	var extra, missing []string
	for _, p := range ports {
		got := admits(policies, src, p)
		switch {
		case got && !want[p.String()]:
			extra = append(extra, p.String())
		case !got && want[p.String()]:
			missing = append(missing, p.String())
		}
	}
	sort.Strings(extra)
	sort.Strings(missing)
	if len(extra) > 0 {
		t.Errorf("%s (namespace %s) is admitted to %s", src.name, src.ns, strings.Join(extra, ", "))
	}
	if len(missing) > 0 {
		t.Errorf("%s (namespace %s) is refused %s", src.name, src.ns, strings.Join(missing, ", "))
	}
}

// admits says whether the NetworkPolicies let src connect to the port: a
// pod no Ingress policy selects admits everything; a selected one what any
// rule of any policy selecting it admits.
func admits(policies []object, src peer, dst cport) bool {
	sel := selecting(policies, dst.w.labels)
	if len(sel) == 0 {
		return true
	}
	for _, np := range sel {
		for _, r := range list(dig(np, "spec", "ingress")) {
			if peerMatches(np, list(dig(r, "from")), src) && portMatches(list(dig(r, "ports")), dst) {
				return true
			}
		}
	}
	return false
}

// selecting returns the policies of the release namespace that isolate pods
// with these labels for ingress.
func selecting(policies []object, labels map[string]any) []object {
	var out []object
	for _, np := range policies {
		ns := str(dig(np, "metadata", "namespace"))
		types := list(dig(np, "spec", "policyTypes"))
		ingress := len(types) == 0 || slices.Contains(types, any("Ingress"))
		if (ns == "" || ns == namespace) && ingress && selects(dig(np, "spec", "podSelector"), labels) {
			out = append(out, np)
		}
	}
	return out
}

// peerMatches: an empty from admits every source; otherwise one peer must
// match (a podSelector alone means the policy's namespace; ipBlocks never
// match a pod here).
func peerMatches(np object, from []any, src peer) bool {
	if len(from) == 0 {
		return true
	}
	nsLabels := map[string]any{"kubernetes.io/metadata.name": src.ns}
	for _, f := range from {
		ps, nsSel := dig(f, "podSelector"), dig(f, "namespaceSelector")
		if ps == nil && nsSel == nil {
			continue // ipBlock
		}
		nsOK := selects(nsSel, nsLabels)
		if nsSel == nil {
			nsOK = src.ns == str(dig(np, "metadata", "namespace")) || str(dig(np, "metadata", "namespace")) == "" && src.ns == namespace
		}
		if nsOK && (ps == nil || selects(ps, src.labels)) {
			return true
		}
	}
	return false
}

// portMatches: no ports admit every port; a port matches by number (up to
// endPort) or by name, with protocol TCP unless given.
func portMatches(ports []any, dst cport) bool {
	if len(ports) == 0 {
		return true
	}
	proto := dst.proto
	if proto == "" {
		proto = "TCP"
	}
	for _, p := range ports {
		pp := str(dig(p, "protocol"))
		if pp == "" {
			pp = "TCP"
		}
		if pp != proto {
			continue
		}
		port := dig(p, "port")
		if port == nil {
			return true
		}
		if n, err := strconv.ParseInt(str(port), 10, 64); err == nil {
			end := n
			if e := dig(p, "endPort"); e != nil {
				end = toInt(e)
			}
			if dst.number >= n && dst.number <= end {
				return true
			}
		} else if str(port) == dst.name {
			return true
		}
	}
	return false
}

// selects evaluates a label selector (matchLabels, matchExpressions); an
// empty one selects everything, an absent one nothing.
func selects(selector any, labels map[string]any) bool {
	if selector == nil {
		return false
	}
	for k, v := range asMap(dig(selector, "matchLabels")) {
		if lv, ok := labels[k]; !ok || str(lv) != str(v) {
			return false
		}
	}
	for _, e := range list(dig(selector, "matchExpressions")) {
		v, has := labels[str(dig(e, "key"))]
		in := slices.Contains(list(dig(e, "values")), any(str(v)))
		switch str(dig(e, "operator")) {
		case "In":
			if !has || !in {
				return false
			}
		case "NotIn":
			if has && in {
				return false
			}
		case "Exists":
			if !has {
				return false
			}
		case "DoesNotExist":
			if has {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func kindOf(objs []object, kind string) []object {
	var out []object
	for _, o := range objs {
		if o.kind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// backendPort is the container port the Service's port numbered n reaches.
func (s service) backendPort(ws []workload, n int64) (cport, error) {
	w, c, err := s.backend(ws, n)
	if err != nil {
		return cport{}, err
	}
	sp, _ := s.port(n)
	target := sp["targetPort"]
	if target == nil {
		target = sp["port"]
	}
	for _, cp := range list(c["ports"]) {
		if str(dig(cp, "name")) == str(target) || str(dig(cp, "containerPort")) == str(target) {
			return cport{w, str(dig(cp, "name")), toInt(dig(cp, "containerPort")), str(dig(cp, "protocol"))}, nil
		}
	}
	return cport{}, fmt.Errorf("no container port %v", target)
}
