package uninstall

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/health-data-ai/bootstrap/internal/testenv"
)

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string // "" = valid
	}{
		{Options{[]string{"ns"}, "app.kubernetes.io/instance=hp"}, ""},
		{Options{[]string{"ns"}, "app.kubernetes.io/instance==hp,app.kubernetes.io/phase!=uninstall"}, ""},
		{Options{nil, "app.kubernetes.io/instance=hp"}, "--namespace"},
		{Options{[]string{"ns"}, ""}, "must require app.kubernetes.io/instance"},
		{Options{[]string{"ns"}, "app.kubernetes.io/instance!=hp"}, "must require"},
		{Options{[]string{"ns"}, "app.kubernetes.io/instance in (a,b)"}, "must require"},
		{Options{[]string{"ns"}, "app.kubernetes.io/instance"}, "must require"},
		{Options{[]string{"ns"}, "a=(b"}, "--selector"},
	} {
		err := c.o.Validate()
		if (err == nil) != (c.want == "") || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.o, err, c.want)
		}
	}
}

// TestRun against the real API server: of two releases' objects, only the
// chosen release's, of the kinds it removes, outside the uninstall hook's
// own, go; its Secrets stay.
func TestRun(t *testing.T) {
	kube := testenv.Kube(t)
	rc, err := clientcmd.BuildConfigFromFlags("", kube.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := testenv.Unique("uninstall-")
	if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kc.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })

	meta := func(name, release, phase string) metav1.ObjectMeta {
		l := map[string]string{InstanceLabel: release, "app.kubernetes.io/component": "bootstrap"}
		if phase != "" {
			l["app.kubernetes.io/phase"] = phase
		}
		return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: l}
	}
	f := false
	type obj struct{ name, release, phase string }
	objs := []obj{{"a-hook", "a", ""}, {"a-secrets", "a", "secrets"}, {"a-uninstall", "a", "uninstall"}, {"b-hook", "b", ""}}
	for _, o := range objs {
		m := meta(o.name, o.release, o.phase)
		must(t, create(kc.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: m}, metav1.CreateOptions{})))
		must(t, create(kc.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: m}, metav1.CreateOptions{})))
		must(t, create(kc.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: m, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{})))
		must(t, create(kc.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: m}, metav1.CreateOptions{})))
		must(t, create(kc.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: m,
			RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: o.name}}, metav1.CreateOptions{})))
		pod := corev1.PodSpec{ServiceAccountName: o.name, AutomountServiceAccountToken: &f, RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "c", Image: "localhost/none:0", ImagePullPolicy: corev1.PullNever}},
			// Never scheduled: a node name that no kubelet has.
			NodeName: "uninstall-test-no-node"}
		must(t, create(kc.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: m, Spec: pod}, metav1.CreateOptions{})))
		jm := m
		jm.Name = o.name + "-job"
		must(t, create(kc.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{ObjectMeta: jm, Spec: batchv1.JobSpec{Suspend: ptr(true),
			Template: corev1.PodTemplateSpec{Spec: pod}}}, metav1.CreateOptions{})))
	}

	sel := InstanceLabel + "=a,app.kubernetes.io/component=bootstrap,app.kubernetes.io/phase!=uninstall"
	dc, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	removed, err := Run(ctx, dc, Options{Namespaces: []string{ns}, Selector: sel}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, name := range []string{"a-hook", "a-secrets"} {
		for _, k := range Kinds() {
			n := name
			if k == "Job" {
				n += "-job"
			}
			want = append(want, k+" "+ns+"/"+n)
		}
	}
	slices.Sort(want)
	slices.Sort(removed)
	if !slices.Equal(removed, want) {
		t.Errorf("removed %v\nwant %v", removed, want)
	}
	// What stays: the other release's, the hook's own, and every Secret.
	for _, o := range objs {
		_, err := kc.CoreV1().Secrets(ns).Get(ctx, o.name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("Secret %s: %v", o.name, err)
		}
		_, err = kc.CoreV1().ConfigMaps(ns).Get(ctx, o.name, metav1.GetOptions{})
		if gone := err != nil; gone != (o.release == "a" && o.phase != "uninstall") {
			t.Errorf("ConfigMap %s gone = %v", o.name, gone)
		}
	}
	// Again: nothing left to remove.
	again, err := Run(ctx, dc, Options{Namespaces: []string{ns}, Selector: sel}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil || len(again) != 0 {
		t.Errorf("second run: removed %v, %v; want nothing", again, err)
	}
}

func create[T any](_ T, err error) error { return err }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }
