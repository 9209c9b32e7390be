// Package uninstall removes what `helm uninstall` leaves of a release: Helm
// never tracks the objects its hooks create, so the bootstrap hook Jobs (and
// their Pods), the test Pod, and the hooks' ConfigMaps, ServiceAccounts,
// Roles and RoleBindings outlive the release. The chart runs this as a
// post-delete hook, choosing them by label.
//
// It never touches a Secret, a SealedSecret, a PersistentVolumeClaim or a
// data service: credentials and data outlive the release unless someone
// deletes them on purpose.
package uninstall

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/kubernetes"
)

// InstanceLabel is the label every object of a Helm release carries; a
// selector must pin it, so that one release's cleanup never reaches
// another's objects.
const InstanceLabel = "app.kubernetes.io/instance"

// Options says what to remove: objects matching Selector in each of
// Namespaces.
type Options struct {
	Namespaces []string
	Selector   string
}

// Validate checks the options without touching the cluster: at least one
// namespace, and a selector that pins InstanceLabel to one value.
func (o Options) Validate() error {
	var errs []error
	if len(o.Namespaces) == 0 {
		errs = append(errs, errors.New("--namespace: at least one namespace is required"))
	}
	sel, err := labels.Parse(o.Selector)
	if err != nil {
		errs = append(errs, fmt.Errorf("--selector: %w", err))
	} else if !pinsInstance(sel) {
		errs = append(errs, fmt.Errorf("--selector: %q must require %s=<release>, so that no other release's objects match", o.Selector, InstanceLabel))
	}
	return errors.Join(errs...)
}

func pinsInstance(sel labels.Selector) bool {
	reqs, _ := sel.Requirements()
	for _, r := range reqs {
		if r.Key() == InstanceLabel && (r.Operator() == selection.Equals || r.Operator() == selection.DoubleEquals) && r.Values().Len() == 1 {
			return true
		}
	}
	return false
}

// kind is one kind of object the cleanup removes: how to list and delete it.
type kind struct {
	name   string
	list   func(ctx context.Context, ns string, lo metav1.ListOptions) ([]string, error)
	delete func(ctx context.Context, ns, name string, do metav1.DeleteOptions) error
}

// kinds in the order they are removed: the workloads first, so nothing
// runs with a ServiceAccount or Role that is already gone.
func kinds(kc kubernetes.Interface) []kind {
	// names skips objects already being deleted: asking again would only
	// repeat the request (a Pod waits for its kubelet to stop it).
	names := func(n int, meta func(int) metav1.ObjectMeta) []string {
		var out []string
		for i := range n {
			if m := meta(i); m.DeletionTimestamp == nil {
				out = append(out, m.Name)
			}
		}
		return out
	}
	return []kind{
		{"Job", func(ctx context.Context, ns string, lo metav1.ListOptions) ([]string, error) {
			l, err := kc.BatchV1().Jobs(ns).List(ctx, lo)
			if err != nil {
				return nil, err
			}
			return names(len(l.Items), func(i int) metav1.ObjectMeta { return l.Items[i].ObjectMeta }), nil
		}, func(ctx context.Context, ns, name string, do metav1.DeleteOptions) error {
			return kc.BatchV1().Jobs(ns).Delete(ctx, name, do)
		}},
		{"Pod", func(ctx context.Context, ns string, lo metav1.ListOptions) ([]string, error) {
			l, err := kc.CoreV1().Pods(ns).List(ctx, lo)
			if err != nil {
				return nil, err
			}
			return names(len(l.Items), func(i int) metav1.ObjectMeta { return l.Items[i].ObjectMeta }), nil
		}, func(ctx context.Context, ns, name string, do metav1.DeleteOptions) error {
			return kc.CoreV1().Pods(ns).Delete(ctx, name, do)
		}},
		{"ConfigMap", func(ctx context.Context, ns string, lo metav1.ListOptions) ([]string, error) {
			l, err := kc.CoreV1().ConfigMaps(ns).List(ctx, lo)
			if err != nil {
				return nil, err
			}
			return names(len(l.Items), func(i int) metav1.ObjectMeta { return l.Items[i].ObjectMeta }), nil
		}, func(ctx context.Context, ns, name string, do metav1.DeleteOptions) error {
			return kc.CoreV1().ConfigMaps(ns).Delete(ctx, name, do)
		}},
		{"RoleBinding", func(ctx context.Context, ns string, lo metav1.ListOptions) ([]string, error) {
			l, err := kc.RbacV1().RoleBindings(ns).List(ctx, lo)
			if err != nil {
				return nil, err
			}
			return names(len(l.Items), func(i int) metav1.ObjectMeta { return l.Items[i].ObjectMeta }), nil
		}, func(ctx context.Context, ns, name string, do metav1.DeleteOptions) error {
			return kc.RbacV1().RoleBindings(ns).Delete(ctx, name, do)
		}},
		{"Role", func(ctx context.Context, ns string, lo metav1.ListOptions) ([]string, error) {
			l, err := kc.RbacV1().Roles(ns).List(ctx, lo)
			if err != nil {
				return nil, err
			}
			return names(len(l.Items), func(i int) metav1.ObjectMeta { return l.Items[i].ObjectMeta }), nil
		}, func(ctx context.Context, ns, name string, do metav1.DeleteOptions) error {
			return kc.RbacV1().Roles(ns).Delete(ctx, name, do)
		}},
		{"ServiceAccount", func(ctx context.Context, ns string, lo metav1.ListOptions) ([]string, error) {
			l, err := kc.CoreV1().ServiceAccounts(ns).List(ctx, lo)
			if err != nil {
				return nil, err
			}
			return names(len(l.Items), func(i int) metav1.ObjectMeta { return l.Items[i].ObjectMeta }), nil
		}, func(ctx context.Context, ns, name string, do metav1.DeleteOptions) error {
			return kc.CoreV1().ServiceAccounts(ns).Delete(ctx, name, do)
		}},
	}
}

// Kinds names what Run removes, for the RBAC that allows it.
func Kinds() []string {
	var out []string
	for _, k := range kinds(nil) {
		out = append(out, k.name)
	}
	return out
}

// Run removes every object of Kinds matching the selector in each
// namespace and returns them as "Kind namespace/name". An object already
// gone counts as removed; the first other failure stops the run, naming the
// object (what was removed before it is returned too).
func Run(ctx context.Context, kc kubernetes.Interface, o Options, log *slog.Logger) ([]string, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	// Background: a Job's Pods go with it.
	policy := metav1.DeletePropagationBackground
	var removed []string
	for _, ns := range o.Namespaces {
		for _, k := range kinds(kc) {
			names, err := k.list(ctx, ns, metav1.ListOptions{LabelSelector: o.Selector})
			if err != nil {
				return removed, fmt.Errorf("uninstall: list %ss in %s: %w", k.name, ns, err)
			}
			for _, n := range names {
				err := k.delete(ctx, ns, n, metav1.DeleteOptions{PropagationPolicy: &policy})
				if err != nil && !apierrors.IsNotFound(err) {
					return removed, fmt.Errorf("uninstall: delete %s %s/%s: %w", k.name, ns, n, err)
				}
				what := k.name + " " + ns + "/" + n
				log.Info("deleted", "resource", what)
				removed = append(removed, what)
			}
		}
	}
	return removed, nil
}
