package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"

	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/secrets/seal"
)

// SealedSecret files (target: dir, type: sealed), for GitOps: the files
// are committed and applied by something else, so only sealed content is
// ever written to disk.

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
	var live seal.SealedSecret
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
func MarshalYAML(ss *seal.SealedSecret) ([]byte, error) {
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
