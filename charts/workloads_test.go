package charts

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// What runs: the pods of the rendered objects, read the way the kubelet and
// the controllers will, so the tests compare what Kubernetes gets, not what
// our values say.

// workload is a rendered object that makes pods.
type workload struct {
	obj      object
	pod      map[string]any // the pod spec
	labels   map[string]any // the pod's labels
	replicas int64
}

// hook says whether Helm runs the object as a hook (or test) rather than
// keeping it as part of the release.
func (w workload) hook() bool { return w.obj.annotation("helm.sh/hook") != "" }

func (w workload) String() string { return w.obj.kind() + "/" + w.obj.name() }

// workloads lists the objects that make pods: their pod spec and labels, and
// how many pods run at once (a CronJob and a Job: one).
func workloads(objs []object) []workload {
	var out []workload
	for _, o := range objs {
		var tmpl any
		replicas := int64(1)
		switch o.kind() {
		case "Deployment", "StatefulSet", "ReplicaSet":
			tmpl = dig(o, "spec", "template")
			if r := dig(o, "spec", "replicas"); r != nil {
				replicas = toInt(r)
			}
		case "DaemonSet", "Job":
			tmpl = dig(o, "spec", "template")
		case "CronJob":
			tmpl = dig(o, "spec", "jobTemplate", "spec", "template")
		case "Pod":
			tmpl = map[string]any(o)
		default:
			continue
		}
		out = append(out, workload{
			obj:      o,
			pod:      asMap(dig(tmpl, "spec")),
			labels:   asMap(dig(tmpl, "metadata", "labels")),
			replicas: replicas,
		})
	}
	return out
}

func toInt(v any) int64 {
	switch n := v.(type) {
	case int:
		return int64(n)
	case int64:
		return n
	case float64:
		return int64(n)
	}
	return 0
}

// containers are the pod's init and regular containers, init first.
func containers(pod map[string]any) (init, regular []map[string]any) {
	for _, c := range list(pod["initContainers"]) {
		init = append(init, asMap(c))
	}
	for _, c := range list(pod["containers"]) {
		regular = append(regular, asMap(c))
	}
	return init, regular
}

func allContainers(pod map[string]any) []map[string]any {
	i, r := containers(pod)
	return append(i, r...)
}

// secretRef is one Secret a pod reads: a key of it, or all of it (key "").
type secretRef struct {
	name, key, where string
}

// secretRefs lists every Secret a pod reads: env secretKeyRef, envFrom,
// secret volumes and projected volumes, with the keys they pick.
func secretRefs(pod map[string]any) []secretRef {
	var out []secretRef
	for _, c := range allContainers(pod) {
		cn := str(c["name"])
		for _, e := range list(c["env"]) {
			if r := dig(e, "valueFrom", "secretKeyRef"); r != nil {
				out = append(out, secretRef{str(dig(r, "name")), str(dig(r, "key")), cn + " env " + str(dig(e, "name"))})
			}
		}
		for _, e := range list(c["envFrom"]) {
			if r := dig(e, "secretRef"); r != nil {
				out = append(out, secretRef{str(dig(r, "name")), "", cn + " envFrom"})
			}
		}
	}
	volume := func(name string, items any, where string) {
		if len(list(items)) == 0 {
			out = append(out, secretRef{name, "", where})
		}
		for _, it := range list(items) {
			out = append(out, secretRef{name, str(dig(it, "key")), where})
		}
	}
	for _, v := range list(pod["volumes"]) {
		vn := "volume " + str(dig(v, "name"))
		if s := dig(v, "secret"); s != nil {
			volume(str(dig(s, "secretName")), dig(s, "items"), vn)
		}
		for _, src := range list(dig(v, "projected", "sources")) {
			if s := dig(src, "secret"); s != nil {
				volume(str(dig(s, "name")), dig(s, "items"), vn)
			}
		}
	}
	return out
}

// pinnedCharts maps the helm.sh/chart label of a Bitnami subchart's
// objects (its alias or name, and its version) to its package
// (name-version), for every dependency the infrastructure subchart pins.
func pinnedCharts(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range list(readYAML(t, filepath.Join(infraDir(t), "Chart.yaml"))["dependencies"]) {
		name, version, alias := str(dig(d, "name")), str(dig(d, "version")), str(dig(d, "alias"))
		if alias == "" {
			alias = name
		}
		out[alias+"-"+version] = name + "-" + version
	}
	return out
}

// bitnamiCharts returns the rendered objects that come from the Bitnami
// charts the infrastructure subchart pins.
func bitnamiCharts(t testing.TB, objs []object) []object {
	t.Helper()
	pinned := pinnedCharts(t)
	var out []object
	for _, o := range objs {
		if _, ok := pinned[str(dig(o, "metadata", "labels", "helm.sh/chart"))]; ok {
			out = append(out, o)
		}
	}
	return out
}

// ours returns the rendered objects of the umbrella chart itself, without
// the Bitnami subcharts'.
func ours(t testing.TB, objs []object) []object {
	t.Helper()
	pinned := pinnedCharts(t)
	var out []object
	for _, o := range objs {
		if _, ok := pinned[str(dig(o, "metadata", "labels", "helm.sh/chart"))]; !ok {
			out = append(out, o)
		}
	}
	return out
}

// packageValues reads values.yaml of a pinned Bitnami package (e.g.
// "redis-18.4.0") as it lies in the infrastructure subchart's charts/.
func packageValues(t testing.TB, pkg string) map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join(infraDir(t), "charts", pkg+".tgz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", pkg, err)
	}
	tr := tar.NewReader(zr)
	name, _, _ := strings.Cut(pkg, "-")
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("%s: no %s/values.yaml in the package", pkg, name)
		}
		if err != nil {
			t.Fatalf("%s: %v", pkg, err)
		}
		if h.Name != name+"/values.yaml" {
			continue
		}
		var v map[string]any
		if err := yaml.NewDecoder(tr).Decode(&v); err != nil {
			t.Fatalf("%s/values.yaml: %v", pkg, err)
		}
		return v
	}
}

// service is a rendered Service with what selects and exposes it.
type service struct {
	obj      object
	selector map[string]any
}

// servicesByName lists the rendered Services by name.
func servicesByName(objs []object) map[string]service {
	out := map[string]service{}
	for _, o := range objs {
		if o.kind() == "Service" {
			out[o.name()] = service{obj: o, selector: asMap(dig(o, "spec", "selector"))}
		}
	}
	return out
}

// port returns the Service port with that number.
func (s service) port(n int64) (map[string]any, bool) {
	for _, p := range list(dig(s.obj, "spec", "ports")) {
		if toInt(dig(p, "port")) == n {
			return asMap(p), true
		}
	}
	return nil, false
}

// backend finds the workload whose pods the Service selects and the
// container serving the Service port numbered n (its targetPort, by name or
// number, is one of the container's ports).
func (s service) backend(ws []workload, n int64) (workload, map[string]any, error) {
	p, ok := s.port(n)
	if !ok {
		return workload{}, nil, errors.New("no port " + str(n))
	}
	if len(s.selector) == 0 {
		return workload{}, nil, errors.New("no selector")
	}
	target := p["targetPort"]
	if target == nil {
		target = p["port"]
	}
	var found []workload
	var ctr map[string]any
	for _, w := range ws {
		if w.hook() || !subset(s.selector, w.labels) {
			continue
		}
		for _, c := range allContainers(w.pod) {
			for _, cp := range list(c["ports"]) {
				if str(dig(cp, "name")) == str(target) || str(dig(cp, "containerPort")) == str(target) {
					found = append(found, w)
					ctr = c
				}
			}
		}
	}
	switch len(found) {
	case 0:
		return workload{}, nil, errors.New("selects no pod with a container port " + str(target))
	case 1:
		return found[0], ctr, nil
	}
	return workload{}, nil, errors.New("selects pods of several workloads")
}
