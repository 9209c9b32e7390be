package sink

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net"
	"net/url"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/secrets/seal"
)

// Unsealed Secrets (type: plain), written straight through the API. Their
// values are readable by anyone who may read Secrets in the namespace, so
// Connect allows this on local clusters only (mustBeLocal).

func (t *Target) planPlain(ctx context.Context, sp seal.Spec) (reconcile.Change, error) {
	r := t.resource(sp.Name)
	want := sp.Secret()
	live, err := t.kube.Secret(ctx, sp.Namespace, sp.Name)
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
		for attempt := 0; ; attempt++ {
			want := sp.Secret()
			live, err := t.kube.Secret(ctx, sp.Namespace, sp.Name)
			switch {
			case apierrors.IsNotFound(err):
				err = t.kube.CreateSecret(ctx, want)
			case err != nil:
				return fmt.Errorf("read %s: %w", r, hintRBAC(err))
			default:
				live.Data, live.StringData = want.Data, nil
				live.Labels = merge(live.Labels, want.Labels)
				err = t.kube.UpdateSecret(ctx, live)
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
