// Package kubecore is the Kubernetes client of the secrets sink: the few
// core/v1 calls it makes (a Secret's get, create, update and merge patch; a
// Service's get and a GET through its proxy) on client-go's REST client,
// and SealedSecrets through client-go's dynamic client.
//
// Why not client-go's typed clientset: it registers every API group's
// types in its scheme when the program starts, whichever it uses, and that
// cost bootstrap about 15 MiB of binary and 10 MiB of memory
// (BENCHMARKS.md, "Binary size"). Here the scheme holds core/v1 alone; the
// requests, errors (apierrors.IsNotFound, IsForbidden, ...), retries and
// authentication are client-go's, as before.
package kubecore

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/health-data-ai/bootstrap/internal/secrets/seal"
)

// FieldManager names bootstrap in managedFields.
const FieldManager = "bootstrap"

var sealedSecrets = schema.GroupVersionResource{Group: seal.GroupVersion.Group, Version: seal.GroupVersion.Version, Resource: "sealedsecrets"}

// Client talks to one API server.
type Client struct {
	core rest.Interface
	dyn  dynamic.Interface
}

// New returns a client for the API server cfg describes.
func New(cfg *rest.Config) (*Client, error) {
	sch := runtime.NewScheme()
	if err := corev1.AddToScheme(sch); err != nil {
		return nil, err
	}
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.APIPath = "/api"
	c.ContentType = runtime.ContentTypeJSON
	c.NegotiatedSerializer = serializer.NewCodecFactory(sch).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	hc, err := rest.HTTPClientFor(c)
	if err != nil {
		return nil, err
	}
	core, err := rest.RESTClientForConfigAndClient(c, hc)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	return &Client{core: core, dyn: dyn}, nil
}

// Secret reads a Secret.
func (c *Client) Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	var s corev1.Secret
	err := c.core.Get().Namespace(namespace).Resource("secrets").Name(name).Do(ctx).Into(&s)
	return &s, err
}

// CreateSecret creates s in its namespace.
func (c *Client) CreateSecret(ctx context.Context, s *corev1.Secret) error {
	return c.core.Post().Namespace(s.Namespace).Resource("secrets").
		VersionedParams(&metav1.CreateOptions{FieldManager: FieldManager}, metav1.ParameterCodec).Body(s).Do(ctx).Error()
}

// UpdateSecret replaces s (its resourceVersion guards against a
// concurrent writer).
func (c *Client) UpdateSecret(ctx context.Context, s *corev1.Secret) error {
	return c.core.Put().Namespace(s.Namespace).Resource("secrets").Name(s.Name).
		VersionedParams(&metav1.UpdateOptions{FieldManager: FieldManager}, metav1.ParameterCodec).Body(s).Do(ctx).Error()
}

// PatchSecret applies a JSON merge patch to a Secret.
func (c *Client) PatchSecret(ctx context.Context, namespace, name string, patch []byte) error {
	return c.core.Patch(types.MergePatchType).Namespace(namespace).Resource("secrets").Name(name).
		VersionedParams(&metav1.PatchOptions{FieldManager: FieldManager}, metav1.ParameterCodec).Body(patch).Do(ctx).Error()
}

// Service reads a Service.
func (c *Client) Service(ctx context.Context, namespace, name string) (*corev1.Service, error) {
	var s corev1.Service
	err := c.core.Get().Namespace(namespace).Resource("services").Name(name).Do(ctx).Into(&s)
	return &s, err
}

// ProxyGet GETs path from a Service's port through the API server's
// service proxy (/api/v1/namespaces/NS/services/SCHEME:NAME:PORT/proxy/PATH).
func (c *Client) ProxyGet(ctx context.Context, namespace, scheme, name, port, path string) ([]byte, error) {
	return c.core.Get().Namespace(namespace).Resource("services").Name(utilnet.JoinSchemeNamePort(scheme, name, port)).
		SubResource("proxy").Suffix(path).DoRaw(ctx)
}

// SealedSecret reads a SealedSecret.
func (c *Client) SealedSecret(ctx context.Context, namespace, name string) (*seal.SealedSecret, error) {
	u, err := c.dyn.Resource(sealedSecrets).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return fromUnstructured(u)
}

// CreateSealedSecret creates ss in its namespace.
func (c *Client) CreateSealedSecret(ctx context.Context, ss *seal.SealedSecret) error {
	u, err := toUnstructured(ss)
	if err == nil {
		_, err = c.dyn.Resource(sealedSecrets).Namespace(ss.Namespace).Create(ctx, u, metav1.CreateOptions{FieldManager: FieldManager})
	}
	return err
}

// UpdateSealedSecret replaces ss (its resourceVersion guards against a
// concurrent writer).
func (c *Client) UpdateSealedSecret(ctx context.Context, ss *seal.SealedSecret) error {
	u, err := toUnstructured(ss)
	if err == nil {
		_, err = c.dyn.Resource(sealedSecrets).Namespace(ss.Namespace).Update(ctx, u, metav1.UpdateOptions{FieldManager: FieldManager})
	}
	return err
}

func fromUnstructured(u *unstructured.Unstructured) (*seal.SealedSecret, error) {
	var ss seal.SealedSecret
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &ss); err != nil {
		return nil, fmt.Errorf("SealedSecret %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	return &ss, nil
}

func toUnstructured(ss *seal.SealedSecret) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ss)
	if err != nil {
		return nil, fmt.Errorf("SealedSecret %s/%s: %w", ss.Namespace, ss.Name, err)
	}
	return &unstructured.Unstructured{Object: m}, nil
}
