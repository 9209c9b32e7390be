package sink

import (
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// RBAC is the least privilege the cluster sink needs, as Role rules. The
// chart grants exactly these (NAMES = the kubernetesSecrets names, CTRL =
// sealing.controllerName; the second Role lives in controllerNamespace and
// is needed only when sealing.cert is empty):
//
//	# Role in secrets.output.namespace
//	- apiGroups: ["bitnami.com"]
//	  resources: ["sealedsecrets"]
//	  verbs: ["get", "create", "update"]
//	- apiGroups: [""]
//	  resources: ["secrets"]
//	  verbs: ["get", "patch"]
//	  resourceNames: [NAMES]   # get: is a plain Secret there? has the controller made it (wait)?
//	                           # patch: annotate an existing plain Secret managed, so the controller takes it over
//	# Role in sealing.controllerNamespace: fetch the certificate as kubeseal does
//	- apiGroups: [""]
//	  resources: ["services"]
//	  verbs: ["get"]
//	  resourceNames: [CTRL]
//	- apiGroups: [""]
//	  resources: ["services/proxy"]
//	  verbs: ["get"]
//	  resourceNames: ["http:CTRL:http"]   # scheme:name:port of the proxied request
//
// output.type plain (local clusters only) needs instead:
//
//	# Role in secrets.output.namespace
//	- apiGroups: [""]
//	  resources: ["secrets"]
//	  verbs: ["get", "create", "update"]   # create cannot be limited by name
const RBAC = `sealed (namespace): bitnami.com/sealedsecrets get,create,update; ""/secrets get,patch (resourceNames: the kubernetesSecrets names)
sealed (controllerNamespace, only without sealing.cert): ""/services get (resourceNames: CTRL); ""/services/proxy get (resourceNames: http:CTRL:http)
plain (namespace): ""/secrets get,create,update`

// hintRBAC adds the likely cause and its fix to the two API errors that a
// missing permission or a missing SealedSecret CRD produce, since the API's
// own message says neither.
func hintRBAC(err error) error {
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("%w (the bootstrap ServiceAccount lacks a permission; the rules it needs are listed in the chart's Role)", err)
	}
	if apierrors.IsNotFound(err) && strings.Contains(err.Error(), "the server could not find the requested resource") {
		return fmt.Errorf("%w (is the SealedSecret CRD installed? install the Sealed Secrets controller first)", err)
	}
	return err
}
