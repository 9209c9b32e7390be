package main

import (
	"bufio"
	"crypto/rsa"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	sscrypto "github.com/bitnami-labs/sealed-secrets/pkg/crypto"
	"sigs.k8s.io/yaml"

	"github.com/health-data-ai/bootstrap/internal/secrets/ocivault/ocitest"
	"github.com/health-data-ai/bootstrap/internal/secrets/seal/sealtest"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// The test that matters for rotation (issue 14): an application keeps a
// pool of sessions open and opens a new connection every 10 ms; when a
// login fails it re-reads the delivered Secret and retries once. Through
// three rotations, and a fourth killed at each of its steps and finished by
// the next run, it sees no failed query, command or publish.

// login is what the application reads from the delivered Secret.
type login struct{ username, password string }

// app is one service's client, as an application uses it.
type app interface {
	// open opens the long-lived sessions with l.
	open(l login) error
	// use runs one query (command, publish) on each long-lived session.
	use() error
	// fresh opens a new connection with l, runs one query and closes it.
	fresh(l login) error
	close()
}

// rotationWorld is one kind's servers, config, source and delivered Secret.
type rotationWorld struct {
	t       *testing.T
	cfg     string // config file
	src     string // file source
	vault   *ocitest.Server
	sealed  string // delivered Secrets
	key     *rsa.PrivateKey
	secret  string // the rotating credential
	newApp  func() app
	grace   time.Duration
	failed  atomic.Int64
	checked atomic.Int64
	errs    chan string
}

// newRotationWorld keeps the credentials in a file source, or in the OCI
// Vault stand-in when ociVault is set.
func newRotationWorld(t *testing.T, ociVault bool, services func(secret string) (cfg string, newApp func() app)) *rotationWorld {
	dir := t.TempDir()
	w := &rotationWorld{t: t, src: filepath.Join(dir, "src"), sealed: filepath.Join(dir, "sealed"),
		secret: testenv.Unique("rot"), grace: 3 * time.Second, errs: make(chan string, 16)}
	key, cert, err := sscrypto.GeneratePrivateKeyAndCert(2048, time.Hour, "rotation-test")
	if err != nil {
		t.Fatal(err)
	}
	w.key = key
	certFile := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(w.src, 0o700); err != nil {
		t.Fatal(err)
	}
	svc, newApp := services(w.secret)
	w.newApp = newApp
	source := fmt.Sprintf("{type: file, file: {dir: %s}}", w.src)
	if ociVault {
		w.vault = ocitest.New(t, &key.PublicKey, "")
		src, keyID := ocitest.APIKeyConfig(t, key, w.vault.URL)
		w.vault.KeyID = keyID
		source = fmt.Sprintf("{type: ocivault, ocivault: {vaultId: %s, compartmentId: %s, keyId: %s, auth: api_key, configFile: %s, endpoint: %s}}",
			src.VaultID, src.CompartmentID, src.KeyID, src.ConfigFile, src.Endpoint)
	}
	cfg := fmt.Sprintf(`version: 1
defaults: {waitTimeout: 20s}
secrets:
  source: %s
  generate: {enabled: true}
  output: {type: sealed, target: dir, dir: %s, namespace: health-data, sealing: {cert: %s}}
  kubernetesSecrets:
    - {name: app-creds, data: {username: %s/username, password: %s}}
%s`, source, w.sealed, certFile, w.secret, w.secret, svc)
	w.cfg = filepath.Join(dir, "bootstrap.yaml")
	if err := os.WriteFile(w.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

// write puts an admin credential into the source.
func (w *rotationWorld) write(name, value string) {
	if w.vault != nil {
		w.vault.Put(name, value)
		return
	}
	if err := os.WriteFile(filepath.Join(w.src, name), []byte(value), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// delivered reads the Secret as the application gets it: the sealed file
// unsealed (the controller's job), its two keys.
func (w *rotationWorld) delivered() (login, error) {
	b, err := os.ReadFile(filepath.Join(w.sealed, "app-creds.yaml"))
	if err != nil {
		return login{}, err
	}
	var ss ssv1alpha1.SealedSecret
	if err := yaml.Unmarshal(b, &ss); err != nil {
		return login{}, err
	}
	sec, err := sealtest.Unseal(&ss, w.key)
	if err != nil {
		return login{}, err
	}
	return login{username: string(sec.Data["username"]), password: string(sec.Data["password"])}, nil
}

// bootstrap runs the binary to the end; it must exit 0.
func (w *rotationWorld) bootstrap(args ...string) {
	w.t.Helper()
	cmd := exec.Command(binary(w.t), append(args, "-f", w.cfg, "--interval", "2s")...)
	out, err := cmd.CombinedOutput()
	suite.output(out)
	if err != nil {
		w.t.Fatalf("bootstrap %v: %v\n%s", args, err, out)
	}
}

// killAt starts `bootstrap rotate` and kills it (SIGKILL) as soon as it
// logs msg.
func (w *rotationWorld) killAt(msg string) {
	w.t.Helper()
	cmd := exec.Command(binary(w.t), "rotate", "-f", w.cfg, "--log-format", "json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		w.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	killed := false
	sc := bufio.NewScanner(stderr)
	var seen strings.Builder
	for sc.Scan() {
		seen.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), msg) {
			_ = cmd.Process.Kill()
			killed = true
			break
		}
	}
	_ = cmd.Wait()
	suite.output([]byte(seen.String()))
	if !killed {
		w.t.Fatalf("rotate never logged %q:\n%s", msg, seen.String())
	}
}

// load runs the application until stop is closed: the pool is used and a
// new connection opened every 10 ms; a failed login re-reads the Secret and
// retries once. Every failure that remains is counted.
func (w *rotationWorld) load(stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	a := w.newApp()
	defer a.close()
	l, err := w.delivered()
	if err != nil {
		w.fail("read the Secret: " + err.Error())
		return
	}
	if err := a.open(l); err != nil {
		w.fail("open the pool: " + err.Error())
		return
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		w.checked.Add(1)
		if err := a.use(); err != nil {
			w.fail("pool: " + err.Error())
		}
		if err := a.fresh(l); err != nil {
			if l, err = w.delivered(); err != nil {
				w.fail("re-read the Secret: " + err.Error())
				continue
			}
			if err := a.fresh(l); err != nil {
				w.fail(fmt.Sprintf("new connection as %s after re-reading the Secret: %v", l.username, err))
			}
		}
	}
}

func (w *rotationWorld) fail(msg string) {
	w.failed.Add(1)
	select {
	case w.errs <- msg:
	default:
	}
}

// rotate runs the whole scenario against one service.
func (w *rotationWorld) rotate(canLogin func(l login) error) {
	t := w.t
	w.bootstrap("apply")
	first, err := w.delivered()
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go w.load(stop, &wg)
	defer func() {
		close(stop)
		wg.Wait()
		close(w.errs)
		for e := range w.errs {
			t.Error(e)
		}
		if n := w.failed.Load(); n > 0 {
			t.Errorf("%d failure(s) in %d rounds of the application", n, w.checked.Load())
		} else {
			t.Logf("no failure in %d rounds of the application (pool + new connection each)", w.checked.Load())
		}
	}()
	prev := first
	check := func(what string) {
		t.Helper()
		now, err := w.delivered()
		if err != nil {
			t.Fatal(err)
		}
		if now.password == prev.password {
			t.Fatalf("%s: the Secret's password did not change", what)
		}
		if err := canLogin(now); err != nil {
			t.Fatalf("%s: the delivered login %s does not work: %v", what, now.username, err)
		}
		if err := canLogin(prev); err == nil {
			t.Fatalf("%s: the old login %s still works after the rotation ended", what, prev.username)
		}
		t.Logf("%s: %s -> %s", what, prev.username, now.username)
		prev = now
	}
	for i := 1; i <= 3; i++ {
		w.bootstrap("rotate")
		check(fmt.Sprintf("rotation %d", i))
	}
	// A fourth rotation killed at each step; the next run finishes it.
	for _, step := range []string{"new credential staged", "new password set", "new credential proven", "new credential promoted", `"resource":"secret/health-data/app-creds"`} {
		w.killAt(step)
		w.bootstrap("apply")
		time.Sleep(w.grace)
		w.bootstrap("apply")
		check("killed at " + step)
	}
	// rotate while the last rotation's old identity is in its grace: it
	// waits for the grace, retires it, then rotates.
	w.killAt(`"resource":"secret/health-data/app-creds"`)
	w.bootstrap("rotate")
	check("rotate during a grace")
}
