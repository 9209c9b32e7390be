// Package sink delivers the Kubernetes Secrets of secrets.kubernetesSecrets:
// as SealedSecret objects through the Kubernetes API (target: cluster), as
// one SealedSecret YAML file per Secret for GitOps (target: dir), or as
// ordinary Secrets on a local cluster (output.type: plain). Its resources
// are secret/NAMESPACE/NAME. It is idempotent without comparing ciphertext:
// a SealedSecret carries a salted argon2id hash of its plaintext (see
// package seal), so unchanged values mean no update, no new
// resourceVersion and no rewritten file. It never deletes anything and
// never reads a Secret's values except its own in plain mode.
package sink

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	ssclient "github.com/bitnami-labs/sealed-secrets/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/secrets/seal"
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

// Target delivers the Kubernetes Secrets. Build it with New after the
// credentials are resolved.
type Target struct {
	out     config.Output
	secrets []config.KubernetesSecret
	creds   credential.Resolved
	wait    time.Duration
	log     *slog.Logger

	// RestConfig, when set before Connect, is used instead of the
	// in-cluster config or kubeconfig (tests).
	RestConfig *rest.Config

	mu     sync.Mutex
	kube   kubernetes.Interface
	sealed ssclient.Interface
	cert   *seal.Cert
	scope  ssv1alpha1.SealingScope
	// pollEvery is how often the wait for the controller looks.
	pollEvery time.Duration
}

var (
	_ reconcile.Target        = (*Target)(nil)
	_ reconcile.WaitDescriber = (*Target)(nil)
)

// New returns the sink for cfg.Output and cfg.KubernetesSecrets, reading
// values from creds. waitTimeout bounds the wait for the controller.
func New(cfg config.Secrets, creds credential.Resolved, waitTimeout time.Duration, log *slog.Logger) *Target {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Target{out: cfg.Output, secrets: cfg.KubernetesSecrets, creds: creds, wait: waitTimeout, log: log, pollEvery: 500 * time.Millisecond}
}

// Name is secret/NAMESPACE ("secret/*" for cluster-wide files without one).
func (t *Target) Name() string { return "secret/" + t.nsLabel() }

func (t *Target) nsLabel() string {
	if t.out.Namespace == "" {
		return "*"
	}
	return t.out.Namespace
}

// WaitingFor says what Connect waits for.
func (t *Target) WaitingFor() string {
	switch {
	case t.out.Type == "sealed" && t.out.Sealing.Cert == "":
		return fmt.Sprintf("the Sealed Secrets controller %s/%s", t.out.Sealing.ControllerNamespace, t.out.Sealing.ControllerName)
	case t.out.Target == "cluster":
		return "the Kubernetes API server"
	}
	return "the sealing certificate " + t.out.Sealing.Cert
}

func (t *Target) needsCluster() bool {
	return t.out.Target == "cluster" || t.out.Type == "sealed" && t.out.Sealing.Cert == ""
}

// Connect builds the Kubernetes clients when needed and loads the sealing
// certificate. A controller that is not up yet is waited for; a bad
// kubeconfig, scope or certificate file is permanent.
func (t *Target) Connect(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.out.Type == "plain" && t.out.Target != "cluster" {
		return reconcile.Permanent(errors.New("output.type plain writes only to a cluster: unsealed Secrets are never written to files"))
	}
	sc, err := seal.ParseScope(t.out.Sealing.Scope)
	if err != nil {
		return reconcile.Permanent(err)
	}
	t.scope = sc
	if t.needsCluster() && t.kube == nil {
		rc := t.RestConfig
		if rc == nil {
			rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
			if err != nil {
				return reconcile.Permanent(fmt.Errorf("kubernetes client (in-cluster config, KUBECONFIG or ~/.kube/config): %w", err))
			}
		}
		rc = rest.CopyConfig(rc)
		rc.UserAgent = "bootstrap"
		if t.out.Type == "plain" {
			if err := mustBeLocal(rc.Host); err != nil {
				return reconcile.Permanent(err)
			}
		}
		kc, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return reconcile.Permanent(fmt.Errorf("kubernetes client: %w", err))
		}
		ssc, err := ssclient.NewForConfig(rc)
		if err != nil {
			return reconcile.Permanent(fmt.Errorf("kubernetes client: %w", err))
		}
		t.kube, t.sealed = kc, ssc
	}
	if t.out.Type == "plain" {
		t.log.Warn("output.type plain: writing UNSEALED Kubernetes Secrets; their values are readable by anyone who may read Secrets in the namespace. Use it on a local cluster only; use output.type sealed anywhere else",
			"namespace", t.out.Namespace)
		return nil
	}
	if t.cert != nil {
		return nil
	}
	var cert *seal.Cert
	if t.out.Sealing.Cert != "" {
		cert, err = seal.LoadCert(ctx, t.out.Sealing.Cert)
		if err != nil && !strings.HasPrefix(t.out.Sealing.Cert, "http") {
			err = reconcile.Permanent(err)
		}
	} else {
		cert, err = seal.FetchCert(ctx, t.kube, t.out.Sealing.ControllerNamespace, t.out.Sealing.ControllerName)
	}
	if err != nil {
		return err
	}
	t.cert = cert
	t.log.Debug("sealing certificate", "from", cert.From, "fingerprint", cert.Fingerprint, "notAfter", cert.NotAfter)
	return nil
}

// mustBeLocal refuses plain Secrets on a cluster that does not look local.
func mustBeLocal(host string) error {
	u, err := url.Parse(host)
	h := host
	if err == nil && u.Host != "" {
		h = u.Hostname()
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return nil
	}
	switch {
	case h == "localhost", strings.HasSuffix(h, ".localhost"), h == "kubernetes.docker.internal", h == "host.docker.internal":
		return nil
	}
	return fmt.Errorf("output.type plain writes unsealed Secrets and is for local clusters only; the API server %s is not local (loopback, localhost, *.docker.internal): use output.type sealed", host)
}

// Close releases nothing: client-go keeps no connection we own.
func (t *Target) Close() error { return nil }

func (t *Target) resource(name string) string {
	return reconcile.Resource("secret", t.nsLabel(), name)
}

// spec builds the desired Secret from the resolved credentials.
func (t *Target) spec(ks config.KubernetesSecret) (seal.Spec, error) {
	sp := seal.Spec{Name: ks.Name, Namespace: t.out.Namespace, Scope: t.scope, Data: map[string]credential.Credential{}}
	for key, name := range ks.Data {
		c, err := t.creds.Get(name)
		if err != nil {
			return sp, fmt.Errorf("%s key %s: %w", t.resource(ks.Name), key, err)
		}
		sp.Data[key] = c
	}
	return sp, nil
}

// Plan reads each Secret's current state and returns one change per
// Secret, in config order.
func (t *Target) Plan(ctx context.Context) ([]reconcile.Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var changes []reconcile.Change
	for _, ks := range t.secrets {
		sp, err := t.spec(ks)
		if err != nil {
			return nil, err
		}
		var c reconcile.Change
		switch {
		case t.out.Type == "plain":
			c, err = t.planPlain(ctx, sp)
		case t.out.Target == "dir":
			c, err = t.planFile(sp)
		default:
			c, err = t.planSealed(ctx, sp)
		}
		if err != nil {
			return nil, err
		}
		changes = append(changes, c)
	}
	return changes, nil
}

func keysDetail(sp seal.Spec) string {
	keys := make([]string, 0, len(sp.Data))
	for k := range sp.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

// ---------------------------------------------------------------------------
// target: cluster, type: sealed

func (t *Target) planSealed(ctx context.Context, sp seal.Spec) (reconcile.Change, error) {
	r := t.resource(sp.Name)
	takeOver, err := t.unmanagedSecret(ctx, sp)
	if err != nil {
		return reconcile.Change{}, err
	}
	live, err := t.sealed.BitnamiV1alpha1().SealedSecrets(sp.Namespace).Get(ctx, sp.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		d := fmt.Sprintf("seal %s (%s) into SealedSecret", keysDetail(sp), sp.Scope.String())
		if takeOver {
			d += "; take over the existing Secret (annotate it " + ssv1alpha1.SealedSecretManagedAnnotation + ")"
		}
		return reconcile.Change{Resource: r, Action: reconcile.Create, Detail: d, Apply: t.applySealed(sp, takeOver)}, nil
	case err != nil:
		return reconcile.Change{}, fmt.Errorf("read %s: %w", r, hintRBAC(err))
	}
	why, err := seal.Diff(live, t.cert, sp)
	if err != nil {
		return reconcile.Change{}, fmt.Errorf("%s: %w", r, err)
	}
	if takeOver {
		why = strings.TrimPrefix(why+"; take over the existing Secret (annotate it "+ssv1alpha1.SealedSecretManagedAnnotation+")", "; ")
	}
	if why == "" {
		return reconcile.Change{Resource: r, Action: reconcile.Noop}, nil
	}
	return reconcile.Change{Resource: r, Action: reconcile.Update, Detail: "re-seal: " + why, Apply: t.applySealed(sp, takeOver)}, nil
}

// unmanagedSecret reports whether a Secret of that name exists that no
// SealedSecret owns and that is not annotated managed: the controller
// refuses to overwrite it until it is.
func (t *Target) unmanagedSecret(ctx context.Context, sp seal.Spec) (bool, error) {
	s, err := t.kube.CoreV1().Secrets(sp.Namespace).Get(ctx, sp.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read Secret %s/%s: %w", sp.Namespace, sp.Name, hintRBAC(err))
	}
	for _, o := range s.OwnerReferences {
		if o.Kind == "SealedSecret" {
			return false, nil
		}
	}
	return s.Annotations[ssv1alpha1.SealedSecretManagedAnnotation] != "true", nil
}

// annotateManaged marks an existing Secret managed (metadata only: its
// data is neither read nor written) so the controller may replace it.
func (t *Target) annotateManaged(ctx context.Context, sp seal.Spec) error {
	patch := []byte(`{"metadata":{"annotations":{"` + ssv1alpha1.SealedSecretManagedAnnotation + `":"true"}}}`)
	_, err := t.kube.CoreV1().Secrets(sp.Namespace).Patch(ctx, sp.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "bootstrap"})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("annotate Secret %s/%s managed: %w", sp.Namespace, sp.Name, hintRBAC(err))
	}
	return nil
}

// applySealed seals anew and creates or updates the SealedSecret. It
// re-reads on a race (another run created or updated it first) and skips
// the write when the winner already holds these values.
func (t *Target) applySealed(sp seal.Spec, takeOver bool) func(context.Context) error {
	return func(ctx context.Context) error {
		r := t.resource(sp.Name)
		if takeOver {
			if err := t.annotateManaged(ctx, sp); err != nil {
				return err
			}
		}
		api := t.sealed.BitnamiV1alpha1().SealedSecrets(sp.Namespace)
		for attempt := 0; ; attempt++ {
			ss, err := seal.Seal(t.cert, sp)
			if err != nil {
				return err
			}
			live, err := api.Get(ctx, sp.Name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				_, err = api.Create(ctx, ss, metav1.CreateOptions{FieldManager: "bootstrap"})
			case err != nil:
				return fmt.Errorf("read %s: %w", r, hintRBAC(err))
			default:
				if why, _ := seal.Diff(live, t.cert, sp); why == "" && attempt > 0 {
					return t.waitUnsealed(ctx, sp, live)
				}
				ss.ResourceVersion = live.ResourceVersion
				// Keep what others put on the object (other labels and
				// annotations); ours win.
				ss.Labels = merge(live.Labels, ss.Labels)
				ss.Annotations = merge(dropScope(live.Annotations), ss.Annotations)
				_, err = api.Update(ctx, ss, metav1.UpdateOptions{FieldManager: "bootstrap"})
			}
			if (apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err)) && attempt < 3 {
				continue
			}
			if err != nil {
				return fmt.Errorf("write %s: %w", r, hintRBAC(err))
			}
			if t.out.Wait {
				got, err := api.Get(ctx, sp.Name, metav1.GetOptions{})
				if err != nil {
					return fmt.Errorf("read %s: %w", r, hintRBAC(err))
				}
				return t.waitUnsealed(ctx, sp, got)
			}
			return nil
		}
	}
}

func dropScope(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if k != ssv1alpha1.SealedSecretClusterWideAnnotation && k != ssv1alpha1.SealedSecretNamespaceWideAnnotation {
			out[k] = v
		}
	}
	return out
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// waitUnsealed waits (with output.wait) until the controller reports the
// SealedSecret synced at its current generation and the Secret exists.
func (t *Target) waitUnsealed(ctx context.Context, sp seal.Spec, ss *ssv1alpha1.SealedSecret) error {
	if !t.out.Wait {
		return nil
	}
	r := t.resource(sp.Name)
	ctx, cancel := context.WithTimeout(ctx, t.wait)
	defer cancel()
	gen := ss.Generation
	last := "the controller has not reported on it yet"
	for {
		cur, err := t.sealed.BitnamiV1alpha1().SealedSecrets(sp.Namespace).Get(ctx, sp.Name, metav1.GetOptions{})
		if err == nil && cur.Status != nil && cur.Status.ObservedGeneration >= gen {
			for _, c := range cur.Status.Conditions {
				if c.Type != ssv1alpha1.SealedSecretSynced {
					continue
				}
				if c.Status == corev1.ConditionTrue {
					if _, err := t.kube.CoreV1().Secrets(sp.Namespace).Get(ctx, sp.Name, metav1.GetOptions{}); err == nil {
						return nil
					}
				} else {
					// The controller's message names the key problem
					// (wrong key, wrong scope), never a value.
					return fmt.Errorf("%s: the controller could not unseal it: %s", r, c.Message)
				}
			}
		} else if err != nil {
			last = err.Error()
		}
		tm := time.NewTimer(t.pollEvery)
		select {
		case <-ctx.Done():
			tm.Stop()
			return fmt.Errorf("%s: no Secret from the Sealed Secrets controller within %s (%s)", r, t.wait, last)
		case <-tm.C:
		}
	}
}

func hintRBAC(err error) error {
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("%w (the bootstrap ServiceAccount lacks a permission; the rules it needs are listed in the chart's Role)", err)
	}
	if apierrors.IsNotFound(err) && strings.Contains(err.Error(), "the server could not find the requested resource") {
		return fmt.Errorf("%w (is the SealedSecret CRD installed? install the Sealed Secrets controller first)", err)
	}
	return err
}

// ---------------------------------------------------------------------------
// target: dir, type: sealed

func (t *Target) path(name string) string { return filepath.Join(t.out.Dir, name+".yaml") }

func (t *Target) planFile(sp seal.Spec) (reconcile.Change, error) {
	r := t.resource(sp.Name)
	p := t.path(sp.Name)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return reconcile.Change{Resource: r, Action: reconcile.Create, Detail: fmt.Sprintf("seal %s (%s) into %s", keysDetail(sp), sp.Scope.String(), p), Apply: t.applyFile(sp)}, nil
	}
	if err != nil {
		return reconcile.Change{}, fmt.Errorf("%s: %w", r, err)
	}
	var live ssv1alpha1.SealedSecret
	why := ""
	if err := yaml.Unmarshal(b, &live); err != nil || live.Kind != "SealedSecret" {
		why = "not a SealedSecret file"
	} else {
		if live.Name != sp.Name || live.Namespace != sp.Namespace {
			why = fmt.Sprintf("object %s/%s in the file", live.Namespace, live.Name)
		} else if why, err = seal.Diff(&live, t.cert, sp); err != nil {
			return reconcile.Change{}, fmt.Errorf("%s: %w", r, err)
		}
	}
	if why == "" {
		return reconcile.Change{Resource: r, Action: reconcile.Noop}, nil
	}
	return reconcile.Change{Resource: r, Action: reconcile.Update, Detail: "re-seal " + p + ": " + why, Apply: t.applyFile(sp)}, nil
}

func (t *Target) applyFile(sp seal.Spec) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		ss, err := seal.Seal(t.cert, sp)
		if err != nil {
			return err
		}
		b, err := MarshalYAML(ss)
		if err != nil {
			return fmt.Errorf("%s: %w", t.resource(sp.Name), err)
		}
		if err := writeFile(t.path(sp.Name), b); err != nil {
			return fmt.Errorf("%s: %w", t.resource(sp.Name), err)
		}
		return nil
	}
}

// MarshalYAML renders a SealedSecret like kubeseal -o yaml, without the
// empty creationTimestamp and status fields.
func MarshalYAML(ss *ssv1alpha1.SealedSecret) ([]byte, error) {
	j, err := json.Marshal(ss)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	if spec, ok := m["spec"].(map[string]any); ok {
		if tpl, ok := spec["template"].(map[string]any); ok {
			if md, ok := tpl["metadata"].(map[string]any); ok {
				delete(md, "creationTimestamp")
			}
		}
	}
	return yaml.Marshal(m)
}

// writeFile replaces path atomically (temporary file, fsync, rename), mode
// 0644: the content is sealed.
func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ---------------------------------------------------------------------------
// type: plain (local clusters only)

func (t *Target) planPlain(ctx context.Context, sp seal.Spec) (reconcile.Change, error) {
	r := t.resource(sp.Name)
	want := sp.Secret()
	live, err := t.kube.CoreV1().Secrets(sp.Namespace).Get(ctx, sp.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return reconcile.Change{Resource: r, Action: reconcile.Create, Detail: fmt.Sprintf("UNSEALED Secret with %s", keysDetail(sp)), Apply: t.applyPlain(sp)}, nil
	case err != nil:
		return reconcile.Change{}, fmt.Errorf("read %s: %w", r, hintRBAC(err))
	}
	var why []string
	if len(live.Data) != len(want.Data) {
		why = append(why, "keys")
	}
	for k, v := range want.Data {
		if subtle.ConstantTimeCompare(live.Data[k], v) != 1 {
			why = append(why, "value of "+k)
		}
	}
	for k, v := range want.Labels {
		if live.Labels[k] != v {
			why = append(why, "label "+k)
		}
	}
	if len(why) == 0 {
		return reconcile.Change{Resource: r, Action: reconcile.Noop}, nil
	}
	return reconcile.Change{Resource: r, Action: reconcile.Update, Detail: "UNSEALED Secret: " + strings.Join(why, ", "), Apply: t.applyPlain(sp)}, nil
}

func (t *Target) applyPlain(sp seal.Spec) func(context.Context) error {
	return func(ctx context.Context) error {
		r := t.resource(sp.Name)
		api := t.kube.CoreV1().Secrets(sp.Namespace)
		for attempt := 0; ; attempt++ {
			want := sp.Secret()
			live, err := api.Get(ctx, sp.Name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				_, err = api.Create(ctx, want, metav1.CreateOptions{FieldManager: "bootstrap"})
			case err != nil:
				return fmt.Errorf("read %s: %w", r, hintRBAC(err))
			default:
				live.Data, live.StringData = want.Data, nil
				live.Labels = merge(live.Labels, want.Labels)
				_, err = api.Update(ctx, live, metav1.UpdateOptions{FieldManager: "bootstrap"})
			}
			if (apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err)) && attempt < 3 {
				continue
			}
			if err != nil {
				return fmt.Errorf("write %s: %w", r, hintRBAC(err))
			}
			return nil
		}
	}
}
