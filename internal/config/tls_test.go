package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTLSShapes: `tls` is a boolean or a mapping on every target; each
// misuse is a problem at its path, and the right shapes load.
func TestTLSShapes(t *testing.T) {
	pg := func(sslmode, tls string) string {
		return "version: 1\npostgres:\n  - name: health\n    host: db\n    admin: {password: {secret: a}}\n    sslmode: " + sslmode + "\n    tls: " + tls + "\n"
	}
	redis := func(tls string) string {
		return "version: 1\nredis:\n  - name: cache\n    address: r:6379\n    tls: " + tls + "\n"
	}
	for _, tc := range []struct {
		name, doc, want string // want "" loads
	}{
		{"redis true", redis("true"), ""},
		{"redis mapping", redis("{caFile: /ca.pem, serverName: cache.example}"), ""},
		{"redis client cert", redis("{certFile: /c.pem, keyFile: /k.pem}"), ""},
		{"redis string", redis("yes please"), "redis[0].tls: want true, false or a mapping"},
		{"redis unknown key", redis("{cafile: /ca.pem}"), `redis[0].tls.cafile: unknown field (line 5); did you mean "caFile"?`},
		{"cert without key", redis("{certFile: /c.pem}"), "redis[0].tls: certFile and keyFile go together"},
		{"insecure with ca", redis("{insecureSkipVerify: true, caFile: /ca.pem}"), "redis[0].tls.insecureSkipVerify: checks no certificate"},
		{"pg verify-full with ca", pg("verify-full", "{caFile: /ca.pem}"), ""},
		{"pg verify-full system roots", pg("verify-full", "false"), ""},
		{"pg tls true", pg("verify-full", "true"), "postgres[0].tls: PostgreSQL turns TLS on with sslmode"},
		{"pg insecure", pg("verify-full", "{insecureSkipVerify: true}"), "postgres[0].tls.insecureSkipVerify: not for PostgreSQL"},
		{"pg disable with ca", pg("disable", "{caFile: /ca.pem}"), "postgres[0].tls: given with sslmode disable"},
		{"pg require with ca", pg("require", "{caFile: /ca.pem}"), "postgres[0].tls: caFile and serverName are checked only with sslmode verify-full, got require"},
		{"pg require with client cert", pg("require", "{certFile: /c.pem, keyFile: /k.pem}"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load([]byte(tc.doc), noEnv)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want it to load: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("loaded; want %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("got\n%v\nwant %q", err, tc.want)
			}
		})
	}
}

// TestTLSRoundTrip: what is loaded is what -o json and the schema show.
func TestTLSRoundTrip(t *testing.T) {
	c, err := Load([]byte("version: 1\nredis:\n  - {name: a, address: 'r:1', tls: true}\n  - {name: b, address: 'r:2', tls: {caFile: /ca.pem}}\n  - {name: c, address: 'r:3'}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range c.Redis {
		b, err := json.Marshal(struct {
			TLS TLS `json:"tls,omitzero"`
		}{r.TLS})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(b))
	}
	want := []string{`{"tls":true}`, `{"tls":{"caFile":"/ca.pem"}}`, `{}`}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %v, want %v", got, want)
	}
	if !c.Redis[1].TLS.Enabled {
		t.Error("a tls mapping leaves TLS off")
	}
}

// TestClientConfig: the CA bundle and client pair are read when connecting;
// a missing or empty file names the setting; the server name defaults to
// the host.
func TestClientConfig(t *testing.T) {
	dir := t.TempDir()
	ca := writeSelfSigned(t, dir, "ca")
	c, err := TLS{Enabled: true, CAFile: ca}.ClientConfig("db.example")
	if err != nil {
		t.Fatal(err)
	}
	if c.ServerName != "db.example" || c.RootCAs == nil || c.InsecureSkipVerify || c.MinVersion == 0 {
		t.Errorf("config %+v: want server name db.example, the CA pool, verification on, a minimum version", c)
	}
	c, _ = TLS{Enabled: true, ServerName: "other"}.ClientConfig("db.example")
	if c.ServerName != "other" || c.RootCAs != nil {
		t.Errorf("serverName %q, roots %v: want other and the system's roots", c.ServerName, c.RootCAs)
	}
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tls  TLS
		want string
	}{
		{TLS{CAFile: filepath.Join(dir, "missing.pem")}, "tls.caFile: open " + dir},
		{TLS{CAFile: empty}, "tls.caFile " + empty + ": no PEM certificate in it"},
		{TLS{CertFile: ca, KeyFile: filepath.Join(dir, "missing.key")}, "tls.certFile/keyFile: open"},
	} {
		if _, err := tc.tls.ClientConfig("h"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.tls, err, tc.want)
		}
	}
}

// writeSelfSigned writes a throw-away self-signed certificate, for the
// pool-building paths only (no handshake here: the backends' tests do
// those against real servers).
func writeSelfSigned(t *testing.T, dir, name string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
