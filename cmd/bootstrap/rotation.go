package main

import (
	"maps"
	"slices"
	"strings"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// Admin rotation across phases. A data service keeps the admin credential
// it was initialised with; when the source holds a new one, the backend
// sets it on the server during the services phase. The Kubernetes Secret
// carrying it must follow, not lead: delivered first, it would hand the
// data service's own pods (exporters, probes, the next restart) a password
// the server does not take yet. So, with a rotation possible, the services
// run first and a Secret holding an admin credential whose target did not
// take it is withheld, reported as skipped.

// rotated reports whether target's run ended with its admin credential in
// place: the target was reached and its rotation change, if any, applied.
func rotated(report *reconcile.Report, target string) bool {
	for _, r := range report.Changes {
		bad := r.Status == reconcile.Failed || r.Status == reconcile.Skipped
		if !bad {
			continue
		}
		if r.Resource == target || strings.HasPrefix(r.Resource, target+"/admin/") || strings.HasPrefix(r.Resource, target+"/password/") {
			return false
		}
	}
	return true
}

// withhold splits the Kubernetes Secrets of out into those to deliver and skipped
// results for those that carry an admin credential in rotation whose target
// did not take it. admins maps admin secret names to targets; rotating
// lists the admin secrets whose previous value differs from the current.
func withhold(out config.Secrets, report *reconcile.Report, admins map[string]string, rotating []string) ([]config.KubernetesSecret, []reconcile.Result) {
	pending := map[string]string{} // secret name -> target that did not take it
	for _, n := range rotating {
		if t := admins[n]; !rotated(report, t) {
			pending[n] = t
		}
	}
	var keep []config.KubernetesSecret
	var skipped []reconcile.Result
	for _, ks := range out.KubernetesSecrets {
		var why []string
		for _, key := range slices.Sorted(maps.Keys(ks.Data)) {
			if t, ok := pending[ks.Data[key]]; ok {
				why = append(why, key+" ("+t+" does not take the new value of "+ks.Data[key]+" yet)")
			}
		}
		if len(why) == 0 {
			keep = append(keep, ks)
			continue
		}
		skipped = append(skipped, reconcile.Result{
			// Named as the sink names it.
			Resource: reconcile.Resource("secret", out.Output.Namespace, ks.Name), Action: reconcile.Update, Status: reconcile.Skipped,
			Error: "withheld: " + strings.Join(why, "; "),
		})
	}
	return keep, skipped
}
