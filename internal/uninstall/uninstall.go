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
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/dynamic"
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

// resources are the kinds the cleanup removes, in that order: the
// workloads first, so nothing runs with a ServiceAccount or Role that is
// already gone.
var resources = []struct {
	kind string
	gvr  schema.GroupVersionResource
}{
	{"Job", schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}},
	{"Pod", schema.GroupVersionResource{Version: "v1", Resource: "pods"}},
	{"ConfigMap", schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}},
	{"RoleBinding", schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"}},
	{"Role", schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"}},
	{"ServiceAccount", schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}},
}

// Kinds names what Run removes, for the RBAC that allows it.
func Kinds() []string {
	var out []string
	for _, r := range resources {
		out = append(out, r.kind)
	}
	return out
}

// Run removes every object of Kinds matching the selector in each
// namespace and returns them as "Kind namespace/name". An object already
// gone counts as removed; the first other failure stops the run, naming the
// object (what was removed before it is returned too).
func Run(ctx context.Context, dc dynamic.Interface, o Options, log *slog.Logger) ([]string, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	// Background: a Job's Pods go with it.
	policy := metav1.DeletePropagationBackground
	var removed []string
	for _, ns := range o.Namespaces {
		for _, r := range resources {
			api := dc.Resource(r.gvr).Namespace(ns)
			l, err := api.List(ctx, metav1.ListOptions{LabelSelector: o.Selector})
			if err != nil {
				return removed, fmt.Errorf("uninstall: list %ss in %s: %w", r.kind, ns, err)
			}
			for _, it := range l.Items {
				// Already being deleted: asking again would only repeat the
				// request (a Pod waits for its kubelet to stop it).
				if it.GetDeletionTimestamp() != nil {
					continue
				}
				err := api.Delete(ctx, it.GetName(), metav1.DeleteOptions{PropagationPolicy: &policy})
				if err != nil && !apierrors.IsNotFound(err) {
					return removed, fmt.Errorf("uninstall: delete %s %s/%s: %w", r.kind, ns, it.GetName(), err)
				}
				what := r.kind + " " + ns + "/" + it.GetName()
				log.Info("deleted", "resource", what)
				removed = append(removed, what)
			}
		}
	}
	return removed, nil
}
