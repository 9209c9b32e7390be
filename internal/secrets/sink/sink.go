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
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/secrets/kubecore"
	"github.com/health-data-ai/bootstrap/internal/secrets/seal"
)

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

	mu    sync.Mutex
	kube  *kubecore.Client
	cert  *seal.Cert
	scope seal.Scope
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
		if err := t.connectCluster(); err != nil {
			return err
		}
	}
	if t.out.Type == "plain" {
		t.log.Warn("output.type plain: writing UNSEALED Kubernetes Secrets; their values are readable by anyone who may read Secrets in the namespace. Use it on a local cluster only; use output.type sealed anywhere else",
			"namespace", t.out.Namespace)
		return nil
	}
	if t.cert != nil {
		return nil
	}
	return t.loadCert(ctx)
}

// connectCluster builds the clients. Every failure here is permanent: a
// retry would read the same kubeconfig.
func (t *Target) connectCluster() error {
	rc := t.RestConfig
	if rc == nil {
		var err error
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
	kc, err := kubecore.New(rc)
	if err != nil {
		return reconcile.Permanent(fmt.Errorf("kubernetes client: %w", err))
	}
	t.kube = kc
	return nil
}

// loadCert loads the sealing certificate from sealing.cert or, without it,
// from the controller, pinned to sealing.certSHA256 when set. A refused
// certificate (wrong pin, weak key, expired, plain http to another host)
// and a local file that fails are permanent; a URL or a controller may not
// be up yet, and a certificate not valid yet may be a clock behind, so the
// caller waits for those.
func (t *Target) loadCert(ctx context.Context) error {
	var (
		cert *seal.Cert
		err  error
		o    = seal.Options{SHA256: t.out.Sealing.CertSHA256}
		ref  = t.out.Sealing.Cert
	)
	if ref != "" {
		cert, err = seal.LoadCert(ctx, ref, o)
	} else {
		cert, err = seal.FetchCert(ctx, t.kube, t.out.Sealing.ControllerNamespace, t.out.Sealing.ControllerName, o)
	}
	if err != nil {
		file := ref != "" && (!strings.Contains(ref, "://") || strings.HasPrefix(ref, "file://"))
		var ce *seal.CertError
		if file || errors.As(err, &ce) && !ce.Retry {
			return reconcile.Permanent(err)
		}
		return err
	}
	if cert.PlainHTTP {
		t.log.Warn("sealing certificate fetched over plain http from a loopback address: fine for a port-forward or a test, where no network lies between; use https, a file or the controller through the API server anywhere else",
			"cert", cert.From)
	}
	t.cert = cert
	t.log.Debug("sealing certificate", "from", cert.From, "sha256", cert.SHA256, "fingerprint", cert.Fingerprint, "notAfter", cert.NotAfter)
	return nil
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

// keysDetail names the keys a change writes, sorted so that the plan reads
// the same on every run; never their values.
func keysDetail(sp seal.Spec) string {
	keys := make([]string, 0, len(sp.Data))
	for k := range sp.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

// merge returns a's entries overlaid with b's, so that labels and
// annotations others put on an object survive our update.
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
