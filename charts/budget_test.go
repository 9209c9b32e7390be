package charts

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The Oracle Cloud Always Free tier, in OCI's units: a GB there is 1024 MB
// (the API takes a 50 GB volume as sizeInMBs 51200), so GiB here.
const (
	freeMilliCPU = 4000     // 4 Ampere A1 OCPUs, one hardware thread each
	freeMemory   = 24 << 30 // 24 GB
	freeStorage  = 200 << 30
	// OCI creates no block volume under 50 GB: the CSI driver rounds a
	// smaller claim up, and the free tier counts what is provisioned.
	volumeFloor = 50 << 30
	// Boot volumes count against the same 200 GB: one worker node (4 OCPUs,
	// 24 GB) with OKE's default boot volume.
	nodes      = 1
	bootVolume = 50 << 30
	// Block volume list price, per GB and month: storage $0.0255 plus the
	// Balanced performance level's 10 VPUs at $0.0017.
	pricePerGBMonth = 0.0255 + 10*0.0017
)

// footprint is what a rendered release asks of the cluster.
type footprint struct {
	reqCPU, limCPU, reqMem, limMem int64 // millicores, bytes
	claimed, provisioned           int64 // bytes, before and after the 50 GB floor
	volumes                        []string
}

func (f footprint) storage() int64 { return f.provisioned + nodes*bootVolume }

// footprintOf adds up the rendered release: every pod of every non-hook
// workload, times its replicas; the hook and manual Jobs one at a time (Helm
// runs hooks one after another), so the largest of them; and every volume,
// a StatefulSet's claim templates once per replica.
func footprintOf(t *testing.T, objs []object) footprint {
	t.Helper()
	var f footprint
	var hookCPU, hookMem, hookLimCPU, hookLimMem int64
	for _, w := range workloads(objs) {
		rc, lc, rm, lm := podResources(t, w.pod)
		if w.hook() || w.obj.kind() == "CronJob" {
			hookCPU, hookMem, hookLimCPU, hookLimMem = max(hookCPU, rc), max(hookMem, rm), max(hookLimCPU, lc), max(hookLimMem, lm)
			continue
		}
		f.reqCPU += w.replicas * rc
		f.limCPU += w.replicas * lc
		f.reqMem += w.replicas * rm
		f.limMem += w.replicas * lm
	}
	f.reqCPU, f.reqMem, f.limCPU, f.limMem = f.reqCPU+hookCPU, f.reqMem+hookMem, f.limCPU+hookLimCPU, f.limMem+hookLimMem

	add := func(what, size string, n int64) {
		b := quantity(t, size, false)
		f.claimed += n * b
		f.provisioned += n * max(b, volumeFloor)
		f.volumes = append(f.volumes, fmt.Sprintf("%s %s", what, size))
	}
	for _, o := range objs {
		switch o.kind() {
		case "StatefulSet":
			n := int64(1)
			if r := dig(o, "spec", "replicas"); r != nil {
				n = toInt(r)
			}
			for _, vct := range list(dig(o, "spec", "volumeClaimTemplates")) {
				add(o.name()+"/"+str(dig(vct, "metadata", "name")), str(dig(vct, "spec", "resources", "requests", "storage")), n)
			}
		case "PersistentVolumeClaim":
			add(o.name(), str(dig(o, "spec", "resources", "requests", "storage")), 1)
		}
	}
	return f
}

// podResources is what the scheduler reserves for a pod: the larger of its
// containers' sum and its largest init container.
func podResources(t *testing.T, pod map[string]any) (reqCPU, limCPU, reqMem, limMem int64) {
	t.Helper()
	init, regular := containers(pod)
	get := func(c map[string]any, kind, res string) int64 {
		return quantity(t, str(dig(c, "resources", kind, res)), res == "cpu")
	}
	for _, c := range regular {
		reqCPU += get(c, "requests", "cpu")
		limCPU += get(c, "limits", "cpu")
		reqMem += get(c, "requests", "memory")
		limMem += get(c, "limits", "memory")
	}
	for _, c := range init {
		reqCPU, limCPU = max(reqCPU, get(c, "requests", "cpu")), max(limCPU, get(c, "limits", "cpu"))
		reqMem, limMem = max(reqMem, get(c, "requests", "memory")), max(limMem, get(c, "limits", "memory"))
	}
	return
}

func gb(b int64) int64 { return b >> 30 }

// TestBudget renders each profile and adds up what it really costs. The
// free-tier profile must fit 4 OCPUs, 24 GB and 200 GB of block storage with
// OCI's 50 GB floor and the node's boot volume counted; the others may not
// (their volumes are the seed's sizes) and the test prints by how much. The
// chart README quotes these totals; the test keeps the quotes true.
func TestBudget(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repo(t), "charts", umbrella, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range profiles {
		t.Run(p.name, func(t *testing.T) {
			f := footprintOf(t, renderSet(t, namespace, p.args))
			over := gb(f.storage() - freeStorage)
			t.Logf("%s: requests %dm CPU / %d MiB, limits %dm CPU / %d MiB; volumes %s: %d GB claimed, %d GB provisioned + %d GB boot = %d GB of %d",
				p.name, f.reqCPU, f.reqMem>>20, f.limCPU, f.limMem>>20, strings.Join(f.volumes, ", "),
				gb(f.claimed), gb(f.provisioned), nodes*gb(bootVolume), gb(f.storage()), gb(freeStorage))
			total := fmt.Sprintf("%d GB", gb(f.storage()))
			if !strings.Contains(string(readme), total) {
				t.Errorf("charts/%s/README.md does not quote the %s profile's %s", umbrella, p.name, total)
			}
			if over > 0 {
				cost := fmt.Sprintf("$%.2f", float64(over)*pricePerGBMonth)
				t.Logf("%s: %d GB above the free tier: %s a month at list price", p.name, over, cost)
				if !strings.Contains(string(readme), cost) {
					t.Errorf("charts/%s/README.md does not quote the %s profile's cost above the free tier, %s a month", umbrella, p.name, cost)
				}
			}
			// Every profile's pods fit the node.
			if f.reqCPU > freeMilliCPU || f.reqMem > freeMemory {
				t.Errorf("%s: requests %dm CPU / %d MiB exceed the free tier's %dm / %d MiB", p.name, f.reqCPU, f.reqMem>>20, freeMilliCPU, freeMemory>>20)
			}
			if p.name != "free-tier" {
				return
			}
			for _, c := range []struct {
				what       string
				got, limit int64
			}{
				{"CPU limits (m)", f.limCPU, freeMilliCPU},
				{"memory limits (bytes)", f.limMem, freeMemory},
				{"block storage provisioned with boot volumes (bytes)", f.storage(), freeStorage},
			} {
				if c.got > c.limit {
					t.Errorf("free tier: %s %d exceeds %d", c.what, c.got, c.limit)
				}
			}
		})
	}
}
