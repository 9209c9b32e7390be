package sink

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/reconcile/reconciletest"
)

func TestConformanceCluster(t *testing.T) {
	reconciletest.Run(t, func(t *testing.T) reconciletest.Env {
		c := kubeCluster(t)
		ns := c.namespace(t, "conf-")
		_, certFile := controllerKey(t)
		cfg := testConfig(config.Output{Type: "sealed", Target: "cluster", Namespace: ns, Sealing: config.Sealing{Cert: certFile}})
		return reconciletest.Env{
			NewTarget: func() reconcile.Target {
				tg := New(cfg, testCreds(), time.Minute, nil)
				tg.RestConfig = c.rc
				return tg
			},
			Snapshot: func(ctx context.Context) (string, error) {
				l, err := c.sealed.BitnamiV1alpha1().SealedSecrets(ns).List(ctx, metav1.ListOptions{})
				if err != nil {
					return "", err
				}
				var out []string
				for _, s := range l.Items {
					out = append(out, s.Name+"@"+s.ResourceVersion)
				}
				sort.Strings(out)
				return strings.Join(out, ","), nil
			},
		}
	})
}

func TestConformanceDir(t *testing.T) {
	reconciletest.Run(t, func(t *testing.T) reconciletest.Env {
		dir := t.TempDir()
		_, certFile := controllerKey(t)
		cfg := testConfig(config.Output{Type: "sealed", Target: "dir", Dir: dir, Namespace: "health-data", Sealing: config.Sealing{Cert: certFile}})
		return reconciletest.Env{
			NewTarget: func() reconcile.Target { return New(cfg, testCreds(), time.Minute, nil) },
			Snapshot: func(context.Context) (string, error) {
				entries, _ := os.ReadDir(dir)
				var out []string
				for _, e := range entries {
					b, err := os.ReadFile(filepath.Join(dir, e.Name()))
					if err != nil {
						return "", err
					}
					st, _ := e.Info()
					out = append(out, fmt.Sprintf("%s:%d:%s:%x", e.Name(), st.ModTime().UnixNano(), st.Mode(), b))
				}
				return strings.Join(out, ","), nil
			},
		}
	})
}
