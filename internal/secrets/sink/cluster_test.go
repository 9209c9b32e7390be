package sink

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	ssclient "github.com/bitnami-labs/sealed-secrets/pkg/client/clientset/versioned"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/secrets/kubecore"
	"github.com/health-data-ai/bootstrap/internal/secrets/seal"
	"github.com/health-data-ai/bootstrap/internal/secrets/seal/sealtest"
	"github.com/health-data-ai/bootstrap/internal/secrets/sink/sinktest"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// cluster is the test environment's kube-apiserver with an admin client.
type cluster struct {
	rc     *rest.Config
	kube   kubernetes.Interface
	sealed ssclient.Interface
	srv    testenv.KubeServer
}

func kubeCluster(t *testing.T) cluster {
	t.Helper()
	srv := testenv.Kube(t)
	rc, err := clientcmd.BuildConfigFromFlags("", srv.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return cluster{rc: rc, kube: kubernetes.NewForConfigOrDie(rc), sealed: ssclient.NewForConfigOrDie(rc), srv: srv}
}

// namespace creates a unique namespace, deleted after the test.
func (c cluster) namespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := testenv.Unique(prefix)
	if _, err := c.kube.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	return ns
}

func TestClusterSealedIdempotentAndTakesOver(t *testing.T) {
	c := kubeCluster(t)
	ctx := context.Background()
	ns := c.namespace(t, "sink-")
	priv, certFile := controllerKey(t)
	cfg := testConfig(config.Output{Type: "sealed", Target: "cluster", Namespace: ns, Sealing: config.Sealing{Cert: certFile}})
	creds := testCreds()
	// A plain Secret of one name exists already (say, made by hand).
	if _, err := c.kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "redis-health-secret"}, StringData: map[string]string{"redis-password": "old"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	newTarget := func() *Target {
		tg := New(cfg, creds, time.Minute, nil)
		tg.RestConfig = c.rc
		return tg
	}
	rs := run(t, newTarget(), reconcile.ModePlan)
	if count(rs, reconcile.Create) != 2 || !strings.Contains(rs[1].Detail, "take over") {
		t.Fatalf("plan: %+v", rs)
	}
	if l, _ := c.sealed.BitnamiV1alpha1().SealedSecrets(ns).List(ctx, metav1.ListOptions{}); len(l.Items) != 0 {
		t.Fatal("plan wrote")
	}
	rs = run(t, newTarget(), reconcile.ModeApply)
	if count(rs, reconcile.Create) != 2 || rs[0].Resource != "secret/"+ns+"/postgresql-health-secret" {
		t.Fatalf("apply: %+v", rs)
	}
	versions := map[string]string{}
	for _, ks := range cfg.KubernetesSecrets {
		ss, err := c.sealed.BitnamiV1alpha1().SealedSecrets(ns).Get(ctx, ks.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		versions[ks.Name] = ss.ResourceVersion
		sec, err := sealtest.Unseal(ss, priv)
		if err != nil {
			t.Fatal(err)
		}
		for key, name := range ks.Data {
			if string(sec.Data[key]) != creds[name].Reveal() {
				t.Fatalf("%s/%s differs", ks.Name, key)
			}
		}
		b, _ := yaml.Marshal(ss)
		assertNoLeak(t, creds, string(b))
	}
	// The existing Secret was annotated for the controller, its data untouched.
	old, err := c.kube.CoreV1().Secrets(ns).Get(ctx, "redis-health-secret", metav1.GetOptions{})
	if err != nil || old.Annotations[ssv1alpha1.SealedSecretManagedAnnotation] != "true" || string(old.Data["redis-password"]) != "old" {
		t.Fatalf("existing Secret: %v %v", err, old.Annotations)
	}
	rs = run(t, newTarget(), reconcile.ModeApply)
	if count(rs, reconcile.Noop) != 2 {
		t.Fatalf("second apply: %+v", rs)
	}
	for name, v := range versions {
		ss, _ := c.sealed.BitnamiV1alpha1().SealedSecrets(ns).Get(ctx, name, metav1.GetOptions{})
		if ss.ResourceVersion != v {
			t.Fatalf("%s: resourceVersion %s -> %s on an unchanged run", name, v, ss.ResourceVersion)
		}
	}
	// Verify holds, and a changed value is drift for verify.
	run(t, newTarget(), reconcile.ModeVerify)
	creds["pg-health-admin"] = testCreds()["redis-health"]
	res := reconcile.Run(ctx, []reconcile.Target{newTarget()}, reconcile.Options{Mode: reconcile.ModeVerify})
	if res[0].Status != reconcile.Failed || !strings.Contains(res[0].Error, "drift") || !strings.Contains(res[0].Detail, "values changed") {
		t.Fatalf("verify after a change: %+v", res[0])
	}
}

func TestClusterPlainLocal(t *testing.T) {
	c := kubeCluster(t)
	ctx := context.Background()
	ns := c.namespace(t, "plain-")
	cfg := testConfig(config.Output{Type: "plain", Target: "cluster", Namespace: ns})
	creds := testCreds()
	var logs bytes.Buffer
	newTarget := func() *Target {
		tg := New(cfg, creds, time.Minute, slogTo(&logs))
		tg.RestConfig = c.rc
		return tg
	}
	rs := run(t, newTarget(), reconcile.ModeApply)
	if count(rs, reconcile.Create) != 2 {
		t.Fatalf("apply: %+v", rs)
	}
	if !strings.Contains(logs.String(), "UNSEALED") {
		t.Fatal("plain output did not warn")
	}
	s, err := c.kube.CoreV1().Secrets(ns).Get(ctx, "redis-health-secret", metav1.GetOptions{})
	if err != nil || string(s.Data["redis-password"]) != creds["redis-health"].Reveal() {
		t.Fatalf("secret: %v", err)
	}
	rv := s.ResourceVersion
	rs = run(t, newTarget(), reconcile.ModeApply)
	if count(rs, reconcile.Noop) != 2 {
		t.Fatalf("second apply: %+v", rs)
	}
	s, _ = c.kube.CoreV1().Secrets(ns).Get(ctx, "redis-health-secret", metav1.GetOptions{})
	if s.ResourceVersion != rv {
		t.Fatal("unchanged run updated the Secret")
	}
	assertNoLeak(t, creds, logs.String(), fmt.Sprintf("%+v", rs))
}

// TestClusterRBAC runs the sink as a ServiceAccount holding exactly the
// rules of RBAC: it works, and those rules do not let it read other
// Secrets.
func TestClusterRBAC(t *testing.T) {
	c := kubeCluster(t)
	ctx := context.Background()
	ns := c.namespace(t, "rbac-")
	ctrlNS := c.namespace(t, "rbacctl-")
	_, certFile := controllerKey(t)
	cfg := testConfig(config.Output{Type: "sealed", Target: "cluster", Namespace: ns, Sealing: config.Sealing{Cert: certFile}})
	names := []string{}
	for _, ks := range cfg.KubernetesSecrets {
		names = append(names, ks.Name)
	}
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{"bitnami.com"}, Resources: []string{"sealedsecrets"}, Verbs: []string{"get", "create", "update"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "patch"}, ResourceNames: names},
	}
	ctrlRules := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get"}, ResourceNames: []string{"sealed-secrets"}},
		{APIGroups: []string{""}, Resources: []string{"services/proxy"}, Verbs: []string{"get"}, ResourceNames: []string{"http:sealed-secrets:http"}},
	}
	rc := c.serviceAccount(t, ns, "bootstrap", map[string][]rbacv1.PolicyRule{ns: rules, ctrlNS: ctrlRules})
	// A plain Secret to take over exercises the patch rule.
	if _, err := c.kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "redis-health-secret"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tg := New(cfg, testCreds(), time.Minute, nil)
	tg.RestConfig = rc
	rs := run(t, tg, reconcile.ModeApply)
	if count(rs, reconcile.Create) != 2 {
		t.Fatalf("apply as the ServiceAccount: %+v", rs)
	}
	tg = New(cfg, testCreds(), time.Minute, nil)
	tg.RestConfig = rc
	// No controller here to own the taken-over Secret: its annotation
	// alone makes the next plan a no-op.
	if rs := run(t, tg, reconcile.ModeApply); count(rs, reconcile.Noop) != 2 {
		t.Fatalf("second apply: %+v", rs)
	}
	// Least privilege: no other Secret is readable.
	if _, err := c.kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "someone-elses"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sa := kubernetes.NewForConfigOrDie(rc)
	if _, err := sa.CoreV1().Secrets(ns).Get(ctx, "someone-elses", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("the ServiceAccount could read another Secret: %v", err)
	}
	// Fetching the certificate through the service proxy is allowed by
	// the controller-namespace rules: with a Service but no controller
	// behind it, the API server answers 503 (no endpoints), not 403.
	if _, err := c.kube.CoreV1().Services(ctrlNS).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "sealed-secrets"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// No endpoints controller runs here: make the (empty) Endpoints by hand.
	//lint:ignore SA1019 the API server's service proxy still resolves through Endpoints
	if _, err := c.kube.CoreV1().Endpoints(ctrlNS).Create(ctx, &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "sealed-secrets"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := seal.FetchCert(ctx, kubeCore(t, rc), ctrlNS, "sealed-secrets", seal.Options{})
	if err == nil || apierrors.IsForbidden(err) || !apierrors.IsServiceUnavailable(err) || !strings.Contains(err.Error(), "is the controller running") {
		t.Fatalf("certificate through the proxy as the ServiceAccount: %v", err)
	}
	// Without the rules it is refused, and the error says what to grant.
	other := c.namespace(t, "rbacnone-")
	_, err = seal.FetchCert(ctx, kubeCore(t, c.serviceAccount(t, other, "nobody", nil)), ctrlNS, "sealed-secrets", seal.Options{})
	if err == nil || !strings.Contains(err.Error(), "grant get on services") {
		t.Fatalf("without rules: %v", err)
	}
}

// serviceAccount creates a ServiceAccount bound to rules per namespace and
// returns a client config authenticating with a token from TokenRequest,
// like a pod's.
func (c cluster) serviceAccount(t *testing.T, ns, name string, rules map[string][]rbacv1.PolicyRule) *rest.Config {
	t.Helper()
	ctx := context.Background()
	if _, err := c.kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for rns, rs := range rules {
		if _, err := c.kube.RbacV1().Roles(rns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rs}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.kube.RbacV1().RoleBindings(rns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := c.kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rc := rest.AnonymousClientConfig(c.rc)
	rc.BearerToken = tr.Status.Token
	return rc
}

// TestRealControllerUnseals is the end-to-end proof: the real controller
// turns our SealedSecrets into Secrets holding the credentials, takes over
// a plain Secret through the managed annotation, and a second run changes
// nothing.
func TestRealControllerUnseals(t *testing.T) {
	c := kubeCluster(t)
	ctx := context.Background()
	ns := c.namespace(t, "ctrl-")
	certURL := sinktest.Controller(t, c.srv.Kubeconfig, ns)
	if _, err := c.kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "redis-health-secret"}, StringData: map[string]string{"redis-password": "old"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Pinned to the controller's certificate, hashed here from what it
	// serves; fetched over plain http from loopback, with a warning.
	resp, err := http.Get(certURL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	block, _ := pem.Decode(body)
	if err != nil || block == nil {
		t.Fatalf("the controller's certificate: %v %q", err, body)
	}
	pin := fmt.Sprintf("%x", sha256.Sum256(block.Bytes))
	cfg := testConfig(config.Output{Type: "sealed", Target: "cluster", Namespace: ns, Wait: true, Sealing: config.Sealing{Cert: certURL, CertSHA256: pin}})
	creds := testCreds()
	var logs bytes.Buffer
	newTarget := func() *Target {
		tg := New(cfg, creds, 60*time.Second, slogTo(&logs))
		tg.RestConfig = c.rc
		return tg
	}
	start := time.Now()
	rs := run(t, newTarget(), reconcile.ModeApply)
	if count(rs, reconcile.Create) != 2 {
		t.Fatalf("apply: %+v", rs)
	}
	t.Logf("sealed, applied and unsealed by the controller in %s", time.Since(start).Round(time.Millisecond))
	for _, ks := range cfg.KubernetesSecrets {
		s, err := c.kube.CoreV1().Secrets(ns).Get(ctx, ks.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for key, name := range ks.Data {
			if string(s.Data[key]) != creds[name].Reveal() {
				t.Fatalf("%s/%s: the controller's Secret does not hold the credential", ks.Name, key)
			}
		}
		if s.Labels[seal.LabelManagedBy] != seal.ManagedBy {
			t.Fatalf("%s: labels %v", ks.Name, s.Labels)
		}
		if _, ok := s.Annotations[seal.AnnotationDataHash]; ok {
			t.Fatal("the hash annotation reached the Secret")
		}
	}
	rs = run(t, newTarget(), reconcile.ModeApply)
	if count(rs, reconcile.Noop) != 2 {
		t.Fatalf("second apply: %+v", rs)
	}
	if !strings.Contains(logs.String(), "plain http from a loopback address") {
		t.Fatalf("no warning for the plain-http certificate:\n%s", logs.String())
	}
	// Another pin is refused at once, naming the field.
	cfg.Output.Sealing.CertSHA256 = strings.Repeat("00", 32)
	err = newTarget().Connect(ctx)
	if err == nil || !reconcile.IsPermanent(err) || !strings.Contains(err.Error(), "secrets.output.sealing.certSHA256") {
		t.Fatalf("wrong pin against the controller: %v", err)
	}
}

// TestClusterConcurrentApplies: five runs at once (five hook Jobs) all
// succeed and leave one SealedSecret per Secret that unseals to the values.
func TestClusterConcurrentApplies(t *testing.T) {
	c := kubeCluster(t)
	ns := c.namespace(t, "race-")
	priv, certFile := controllerKey(t)
	cfg := testConfig(config.Output{Type: "sealed", Target: "cluster", Namespace: ns, Sealing: config.Sealing{Cert: certFile}})
	creds := testCreds()
	done := make(chan []reconcile.Result)
	for range 5 {
		go func() {
			tg := New(cfg, creds, time.Minute, nil)
			tg.RestConfig = c.rc
			done <- reconcile.Run(context.Background(), []reconcile.Target{tg}, reconcile.Options{Mode: reconcile.ModeApply, WaitTimeout: time.Minute})
		}()
	}
	for range 5 {
		for _, r := range <-done {
			if r.Status == reconcile.Failed {
				t.Fatalf("%s: %s", r.Resource, r.Error)
			}
		}
	}
	l, err := c.sealed.BitnamiV1alpha1().SealedSecrets(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(l.Items) != 2 {
		t.Fatalf("%v, %d objects", err, len(l.Items))
	}
	for i := range l.Items {
		if _, err := sealtest.Unseal(&l.Items[i], priv); err != nil {
			t.Fatal(err)
		}
	}
	tg := New(cfg, creds, time.Minute, nil)
	tg.RestConfig = c.rc
	if rs := run(t, tg, reconcile.ModeApply); count(rs, reconcile.Noop) != 2 {
		t.Fatalf("after the race: %+v", rs)
	}
}

func kubeCore(t *testing.T, rc *rest.Config) *kubecore.Client {
	t.Helper()
	kc, err := kubecore.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	return kc
}
