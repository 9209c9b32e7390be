// Package ocitest is a loopback OCI API server for tests: the Secrets
// endpoint that reads a bundle by name and stage and the Vaults endpoints
// that create, get, update and list secrets, with versions and their
// rotation stages (versions.go). It verifies every request's draft-cavage signature
// (rsa-sha256) with the test key's public half, as OCI does. It is test
// support only; nothing in the binary imports it.
package ocitest

import (
	"crypto"
	"crypto/md5"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"

	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/health-data-ai/bootstrap/internal/config"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeOCI is a loopback OCI API server: the Secrets endpoint that reads a
// bundle by name and the Vaults endpoints that create, get and list
// secrets. Every request must carry a valid draft-cavage signature
// (rsa-sha256) made with the private half of key and the expected keyId, with
// the headers the OCI API requires; anything else is answered 401 like OCI
// does, and counted in BadSignatures.
type Server struct {
	t     testing.TB
	key   *rsa.PublicKey
	KeyID string // exact keyId, or a prefix ending in '*'
	// URL is the endpoint to configure.
	URL string

	mu            sync.Mutex
	secrets       map[string]*fakeSecret // by name
	byID          map[string]*fakeSecret
	requests      int
	Verified      int
	BadSignatures int
	// Throttle answers this many requests 429 before serving.
	Throttle int
	// Failing answers every request with this status (0: off).
	Failing int
	// CreatingPolls is how many GetSecret calls a new secret stays CREATING.
	CreatingPolls int
	// PendingDeletion holds names reserved by secrets in PENDING_DELETION:
	// OCI lists them, answers 404 for their bundles and refuses to create
	// a secret of that name (see ServeHTTP).
	PendingDeletion map[string]bool
	// OtherWriter holds secrets another run is about to create: on the
	// next CreateSecret of such a name, the other writer's secret (this
	// value) is created first, so that call loses with 409, and its first
	// version stays unreadable for UnreadableReads reads by name (OCI
	// answers 404 while a new secret's version is still CREATING).
	OtherWriter     map[string]string
	UnreadableReads int
	// DenyRead and DenyList take the principal's policy away: OCI then
	// answers 404 NotAuthorizedOrNotFound, as for a missing resource, to
	// reads of secret bundles (DenyRead) and to every Vaults call — list,
	// get, create — (DenyList).
	DenyRead, DenyList bool
	// OtherStager holds values another writer stages: just before the
	// next UpdateSecret of such a secret, that value becomes a new PENDING
	// version (and the secret's etag changes).
	OtherStager map[string]string
	// UpdatingPolls is how many GetSecret and UpdateSecret calls find a
	// secret UPDATING after each update (the latter answered 409).
	UpdatingPolls int
	// LoseUpdateAnswers is how many of the next UpdateSecret calls that
	// stage content are applied but answered 500, as when the answer is
	// lost on the way: the SDK retries with the same If-Match and gets
	// 412. The version such a call adds is still CREATING for
	// UnreadableReads reads of PENDING (404), and GetSecret says UPDATING
	// meanwhile.
	LoseUpdateAnswers int
	// PageSize caps the secrets per ListSecrets page (0: 1000).
	PageSize int
	// Creates counts secrets created; CreateCalls every CreateSecret
	// request that verified, whatever its answer; Lists every ListSecrets
	// request that verified (one per page), whatever its answer.
	Creates, CreateCalls, Lists int
	// Updates counts UpdateSecret requests that verified; Reads the
	// GetSecretBundleByName and GetSecret requests that verified.
	Updates, Reads int
	bodies         []string
}

type fakeSecret struct {
	id, name string
	versions []*fakeVersion // versions[n-1] is version n
	metadata map[string]any
	created  time.Time
	etag     int
	polls    int
	// updating is how many more GetSecret and UpdateSecret calls find the
	// secret UPDATING.
	updating int
	// unreadable is how many more reads by name answer 404 (a version
	// another writer created that is still CREATING).
	unreadable int
	// creatingPending is how many more reads of PENDING answer 404 (a
	// staged version still CREATING).
	creatingPending int
}

// New starts a server that accepts signatures by key with keyId keyID (a
// prefix when it ends in '*'); URL is its endpoint.
func New(t testing.TB, key *rsa.PublicKey, keyID string) *Server {
	f := &Server{t: t, key: key, KeyID: keyID, secrets: map[string]*fakeSecret{}, byID: map[string]*fakeSecret{},
		PendingDeletion: map[string]bool{}, OtherWriter: map[string]string{}, OtherStager: map[string]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// Put stores a secret that exists already.
func (f *Server) Put(name, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.add(&fakeSecret{id: "ocid1.vaultsecret.oc1..fake" + fmt.Sprint(len(f.byID)), name: name, polls: 1 << 30}, value)
}

// add stores s with value as its first version.
func (f *Server) add(s *fakeSecret, value string) *fakeSecret {
	s.created = time.Now().UTC()
	s.addVersion(value, "CURRENT")
	f.secrets[s.name], f.byID[s.id] = s, s
	return s
}

// Rotate makes value the CURRENT version of an existing secret and its
// former value the PREVIOUS one, as a new secret version does in OCI.
func (f *Server) Rotate(name, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets[name].addVersion(value, "CURRENT")
}

// Value returns a stored secret's value.
func (f *Server) Value(name string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.secrets[name]
	if !ok {
		return "", false
	}
	return s.value(), true
}

func ociError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("opc-request-id", "fake-request")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg})
}

func ociJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("opc-request-id", "fake-request")
	_ = json.NewEncoder(w).Encode(v)
}

// verify checks the request signature as OCI does.
func (f *Server) verify(r *http.Request, body []byte) error {
	a := r.Header.Get("Authorization")
	if !strings.HasPrefix(a, "Signature ") {
		return fmt.Errorf("no Signature authorization")
	}
	params := map[string]string{}
	for _, kv := range splitParams(strings.TrimPrefix(a, "Signature ")) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("bad parameter %q", kv)
		}
		params[k] = strings.Trim(v, `"`)
	}
	if params["version"] != "1" || params["algorithm"] != "rsa-sha256" {
		return fmt.Errorf("version %q algorithm %q", params["version"], params["algorithm"])
	}
	if want := f.KeyID; strings.HasSuffix(want, "*") {
		if !strings.HasPrefix(params["keyId"], strings.TrimSuffix(want, "*")) {
			return fmt.Errorf("keyId %q", params["keyId"])
		}
	} else if params["keyId"] != want {
		return fmt.Errorf("keyId %q, want %q", params["keyId"], want)
	}
	headers := strings.Fields(params["headers"])
	need := []string{"date", "(request-target)", "host"}
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		need = append(need, "content-length", "content-type", "x-content-sha256")
		sum := sha256.Sum256(body)
		if got := r.Header.Get("x-content-sha256"); got != base64.StdEncoding.EncodeToString(sum[:]) {
			return fmt.Errorf("x-content-sha256 does not match the body")
		}
		if r.Header.Get("Content-Length") != fmt.Sprint(len(body)) {
			return fmt.Errorf("content-length %q for %d bytes", r.Header.Get("Content-Length"), len(body))
		}
	}
	for _, n := range need {
		found := false
		for _, h := range headers {
			found = found || h == n
		}
		if !found {
			return fmt.Errorf("header %q is not signed", n)
		}
	}
	date, err := http.ParseTime(r.Header.Get("Date"))
	if err != nil || time.Since(date).Abs() > 5*time.Minute {
		return fmt.Errorf("date %q is missing or off by more than 5 minutes", r.Header.Get("Date"))
	}
	lines := make([]string, len(headers))
	for i, h := range headers {
		var v string
		switch h {
		case "(request-target)":
			v = strings.ToLower(r.Method) + " " + r.URL.RequestURI()
		case "host":
			v = r.Host
		default:
			v = r.Header.Get(h)
		}
		lines[i] = h + ": " + v
	}
	sig, err := base64.StdEncoding.DecodeString(params["signature"])
	if err != nil {
		return fmt.Errorf("signature is not base64")
	}
	digest := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	if err := rsa.VerifyPKCS1v15(f.key, crypto.SHA256, digest[:], sig); err != nil {
		return fmt.Errorf("signature does not verify: %v", err)
	}
	return nil
}

// splitParams splits k="v",k="v" where values may hold commas.
func splitParams(s string) []string {
	var out []string
	inQuote, start := false, 0
	for i, c := range s {
		switch {
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func (f *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	f.bodies = append(f.bodies, string(body))
	if err := f.verify(r, body); err != nil {
		f.BadSignatures++
		f.t.Logf("fake OCI: %s %s: refused: %v", r.Method, r.URL.Path, err)
		ociError(w, http.StatusUnauthorized, "NotAuthenticated", "The required information to complete authentication was not provided or was incorrect.")
		return
	}
	f.Verified++
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/20180608/secrets":
		f.CreateCalls++
	case r.Method == http.MethodGet && r.URL.Path == "/20180608/secrets":
		f.Lists++
	}
	if f.Failing != 0 {
		ociError(w, f.Failing, "InternalServerError", "the vault is having a bad day")
		return
	}
	if f.Throttle > 0 {
		f.Throttle--
		ociError(w, http.StatusTooManyRequests, "TooManyRequests", "slow down")
		return
	}
	bundles := strings.HasPrefix(r.URL.Path, "/20190301/")
	if bundles && f.DenyRead || !bundles && f.DenyList {
		// OCI does not say whether the resource is missing or the policy.
		notAuthorizedOrNotFound(w)
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/20190301/secretbundles/actions/getByName":
		f.getByName(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/20180608/secrets":
		f.create(w, body)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/20180608/secrets/"):
		s, ok := f.byID[strings.TrimPrefix(r.URL.Path, "/20180608/secrets/")]
		if !ok {
			notAuthorizedOrNotFound(w)
			return
		}
		f.getSecret(w, s)
	case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/20180608/secrets/"):
		f.update(w, r, body)
	case r.Method == http.MethodGet && r.URL.Path == "/20180608/secrets":
		f.list(w, r)
	default:
		ociError(w, 404, "NotFound", "no such endpoint "+r.Method+" "+r.URL.Path)
	}
}

func notAuthorizedOrNotFound(w http.ResponseWriter) {
	ociError(w, 404, "NotAuthorizedOrNotFound", "Authorization failed or requested resource not found.")
}

// getByName is GetSecretBundleByName: 404 for a missing secret, one being
// deleted, a version still CREATING, or a stage no version holds.
func (f *Server) getByName(w http.ResponseWriter, r *http.Request) {
	f.Reads++
	q := r.URL.Query()
	stage := q.Get("stage")
	if q.Get("vaultId") == "" || !slices.Contains([]string{"CURRENT", "PENDING", "LATEST", "PREVIOUS", "DEPRECATED"}, stage) {
		ociError(w, 400, "InvalidParameter", "vaultId and a stage expected")
		return
	}
	s, ok := f.secrets[q.Get("secretName")]
	if ok && s.unreadable > 0 && stage == "CURRENT" {
		s.unreadable--
		ok = false
	}
	if ok && s.creatingPending > 0 && stage == "PENDING" {
		s.creatingPending--
		ok = false
	}
	var v *fakeVersion
	if ok && s.polls >= f.CreatingPolls {
		v = s.stage(stage)
	}
	if v == nil {
		notAuthorizedOrNotFound(w)
		return
	}
	body := map[string]any{
		"secretId": s.id, "versionNumber": v.number, "stages": v.stages, "timeCreated": v.created.Format(time.RFC3339Nano),
		"secretBundleContent": map[string]string{"contentType": "BASE64", "content": base64.StdEncoding.EncodeToString([]byte(v.value))},
	}
	if s.metadata != nil {
		body["metadata"] = s.metadata
	}
	ociJSON(w, body)
}

// create is CreateSecret. A name an existing secret holds is 409 Conflict
// ("the requested resource's state conflicts with its current state",
// https://docs.oracle.com/iaas/Content/API/References/apierrors.htm). A
// name held by a secret pending deletion is refused with 400
// InvalidParameter "name already exists", as OCI answers it (reported in
// https://github.com/external-secrets/external-secrets/issues/6771 and
// https://github.com/oracle/terraform-provider-oci/issues/1765; the SDK's
// CreateSecretDetails says only "Secret names should be unique within a
// vault").
func (f *Server) create(w http.ResponseWriter, body []byte) {
	var in struct {
		CompartmentID string `json:"compartmentId"`
		VaultID       string `json:"vaultId"`
		KeyID         string `json:"keyId"`
		SecretName    string `json:"secretName"`
		SecretContent struct {
			ContentType, Content, Stage string
		} `json:"secretContent"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.CompartmentID == "" || in.KeyID == "" || in.VaultID == "" ||
		in.SecretContent.ContentType != "BASE64" || in.SecretContent.Stage != "CURRENT" {
		ociError(w, 400, "InvalidParameter", "bad create request")
		return
	}
	if v, ok := f.OtherWriter[in.SecretName]; ok {
		delete(f.OtherWriter, in.SecretName)
		f.add(&fakeSecret{id: fmt.Sprintf("ocid1.vaultsecret.oc1..other%d", len(f.byID)), name: in.SecretName,
			polls: 1 << 30, unreadable: f.UnreadableReads}, v)
	}
	if f.PendingDeletion[in.SecretName] {
		ociError(w, 400, "InvalidParameter", "name already exists")
		return
	}
	if _, ok := f.secrets[in.SecretName]; ok {
		ociError(w, 409, "Conflict", "secret name already exists in this vault")
		return
	}
	v, err := base64.StdEncoding.DecodeString(in.SecretContent.Content)
	if err != nil {
		ociError(w, 400, "InvalidParameter", "content is not base64")
		return
	}
	f.Creates++
	s := f.add(&fakeSecret{id: fmt.Sprintf("ocid1.vaultsecret.oc1..new%d", len(f.byID)), name: in.SecretName}, string(v))
	ociJSON(w, map[string]any{"id": s.id, "secretName": s.name, "compartmentId": in.CompartmentID, "vaultId": in.VaultID,
		"lifecycleState": f.state(s), "timeCreated": time.Now().UTC().Format(time.RFC3339)})
}

// list is ListSecrets: compartmentId is required, name filters, limit and
// page page through the secrets sorted by name; opc-next-page says there
// is more. Secrets pending deletion are listed with their state, as OCI
// lists them.
func (f *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("compartmentId") == "" {
		ociError(w, 400, "MissingParameter", "compartmentId is required")
		return
	}
	type item struct{ id, name, state string }
	var items []item
	for _, s := range f.secrets {
		state := f.state(s)
		if s.unreadable > 0 {
			state = "CREATING"
		}
		items = append(items, item{s.id, s.name, state})
	}
	for n, pending := range f.PendingDeletion {
		if pending {
			items = append(items, item{"ocid1.vaultsecret.oc1..deleted-" + n, n, "PENDING_DELETION"})
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].name < items[j].name })
	var out []map[string]any
	for _, it := range items {
		if name := q.Get("name"); name == "" || name == it.name {
			out = append(out, map[string]any{"id": it.id, "secretName": it.name, "compartmentId": q.Get("compartmentId"),
				"vaultId": VaultID, "lifecycleState": it.state, "timeCreated": time.Now().UTC().Format(time.RFC3339)})
		}
	}
	size := 1000
	if f.PageSize > 0 {
		size = f.PageSize
	}
	if l, err := strconv.Atoi(q.Get("limit")); err == nil && l > 0 && l < size {
		size = l
	}
	from, _ := strconv.Atoi(q.Get("page"))
	from = min(max(from, 0), len(out))
	to := min(from+size, len(out))
	if to < len(out) {
		w.Header().Set("opc-next-page", strconv.Itoa(to))
	}
	page := out[from:to]
	if page == nil {
		page = []map[string]any{}
	}
	ociJSON(w, page)
}

func (f *Server) state(s *fakeSecret) string {
	if s.polls < f.CreatingPolls {
		return "CREATING"
	}
	return "ACTIVE"
}

// Do runs fn with the server locked, to set or read its fields.
func (f *Server) Do(fn func(s *Server)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// Polls returns how often GetSecret was called for the named secret.
func (f *Server) Polls(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.secrets[name]; ok {
		return s.polls
	}
	return 0
}

// Vault and tenancy OCIDs APIKeyConfig uses.
const (
	VaultID = "ocid1.vault.oc1..testvault"
	Tenancy = "ocid1.tenancy.oc1..testtenancy"
	User    = "ocid1.user.oc1..testuser"
)

// APIKeyConfig writes an OCI config file (profiles DEFAULT and OTHER, the
// latter with user User+"x") and key file like `oci setup config` does, and
// returns the source config pointing at endpoint with the keyId the SDK
// will sign DEFAULT's requests with.
func APIKeyConfig(t testing.TB, key *rsa.PrivateKey, endpoint string) (config.OCIVaultSource, string) {
	t.Helper()
	dir := t.TempDir()
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(der)
	var fp []string
	for _, b := range sum {
		fp = append(fp, fmt.Sprintf("%02x", b))
	}
	fingerprint := strings.Join(fp, ":")
	keyFile := filepath.Join(dir, "oci_api_key.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(keyFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "config")
	body := fmt.Sprintf("[DEFAULT]\nuser=%s\nfingerprint=%s\nkey_file=%s\ntenancy=%s\nregion=eu-frankfurt-1\n\n[OTHER]\nuser=%s\nfingerprint=%s\nkey_file=%s\ntenancy=%s\nregion=eu-frankfurt-1\n",
		User, fingerprint, keyFile, Tenancy, User+"x", fingerprint, keyFile, Tenancy)
	if err := os.WriteFile(cfgFile, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.OCIVaultSource{
		VaultID:       VaultID,
		CompartmentID: "ocid1.compartment.oc1..testcompartment",
		KeyID:         "ocid1.key.oc1..testkey",
		Region:        "eu-frankfurt-1",
		Auth:          "api_key",
		ConfigFile:    cfgFile,
		Profile:       "DEFAULT",
		Endpoint:      endpoint,
	}, Tenancy + "/" + User + "/" + fingerprint
}
