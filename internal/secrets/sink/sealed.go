package sink

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/secrets/seal"
)

// SealedSecrets through the Kubernetes API (target: cluster, type: sealed).
// The controller turns each into a Secret; bootstrap never writes that
// Secret's data itself.

func (t *Target) planSealed(ctx context.Context, sp seal.Spec) (reconcile.Change, error) {
	r := t.resource(sp.Name)
	takeOver, err := t.unmanagedSecret(ctx, sp)
	if err != nil {
		return reconcile.Change{}, err
	}
	live, err := t.kube.SealedSecret(ctx, sp.Namespace, sp.Name)
	switch {
	case apierrors.IsNotFound(err):
		d := fmt.Sprintf("seal %s (%s) into SealedSecret", keysDetail(sp), sp.Scope.String())
		if takeOver {
			d += "; take over the existing Secret (annotate it " + seal.AnnotationManaged + ")"
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
		why = strings.TrimPrefix(why+"; take over the existing Secret (annotate it "+seal.AnnotationManaged+")", "; ")
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
	s, err := t.kube.Secret(ctx, sp.Namespace, sp.Name)
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
	return s.Annotations[seal.AnnotationManaged] != "true", nil
}

// annotateManaged marks an existing Secret managed (metadata only: its
// data is neither read nor written) so the controller may replace it.
func (t *Target) annotateManaged(ctx context.Context, sp seal.Spec) error {
	patch := []byte(`{"metadata":{"annotations":{"` + seal.AnnotationManaged + `":"true"}}}`)
	err := t.kube.PatchSecret(ctx, sp.Namespace, sp.Name, patch)
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
		for attempt := 0; ; attempt++ {
			ss, err := seal.Seal(t.cert, sp)
			if err != nil {
				return err
			}
			live, err := t.kube.SealedSecret(ctx, sp.Namespace, sp.Name)
			switch {
			case apierrors.IsNotFound(err):
				err = t.kube.CreateSealedSecret(ctx, ss)
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
				err = t.kube.UpdateSealedSecret(ctx, ss)
			}
			if (apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err)) && attempt < 3 {
				continue
			}
			if err != nil {
				return fmt.Errorf("write %s: %w", r, hintRBAC(err))
			}
			if t.out.Wait {
				got, err := t.kube.SealedSecret(ctx, sp.Namespace, sp.Name)
				if err != nil {
					return fmt.Errorf("read %s: %w", r, hintRBAC(err))
				}
				return t.waitUnsealed(ctx, sp, got)
			}
			return nil
		}
	}
}

// dropScope removes the scope annotations from the live object's: the
// scope is ours to set, and a stale one left beside a changed scope would
// contradict it.
func dropScope(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if k != seal.AnnotationClusterWide && k != seal.AnnotationNamespaceWide {
			out[k] = v
		}
	}
	return out
}

// waitUnsealed waits (with output.wait) until the controller reports the
// SealedSecret synced at its current generation and the Secret exists.
func (t *Target) waitUnsealed(ctx context.Context, sp seal.Spec, ss *seal.SealedSecret) error {
	if !t.out.Wait {
		return nil
	}
	r := t.resource(sp.Name)
	ctx, cancel := context.WithTimeout(ctx, t.wait)
	defer cancel()
	gen := ss.Generation
	last := "the controller has not reported on it yet"
	for {
		cur, err := t.kube.SealedSecret(ctx, sp.Namespace, sp.Name)
		if err == nil && cur.Status != nil && cur.Status.ObservedGeneration >= gen {
			for _, c := range cur.Status.Conditions {
				if c.Type != seal.ConditionSynced {
					continue
				}
				if c.Status == corev1.ConditionTrue {
					if _, err := t.kube.Secret(ctx, sp.Namespace, sp.Name); err == nil {
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
