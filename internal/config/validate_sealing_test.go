package config

import (
	"errors"
	"strings"
	"testing"
)

// TestSealingCert: where the sealing certificate may come from, and the
// form of its pin. Every problem is at its field's path.
func TestSealingCert(t *testing.T) {
	const pin = "3f1c2a9b8d7e6f50413223140516273849aabbccddeeff00112233445566778a"
	doc := func(sealing string) string {
		return "version: 1\nsecrets:\n  output:\n    type: sealed\n    namespace: health-data\n    sealing: " + sealing +
			"\n  kubernetesSecrets: [{name: s, data: {k: a-secret}}]\n"
	}
	for _, tc := range []struct {
		sealing, want string // want "" = valid
	}{
		{`{cert: ""}`, ""},
		{`{cert: /etc/sealed-secrets/cert.pem}`, ""},
		{`{cert: "file:///etc/sealed-secrets/cert.pem"}`, ""},
		{`{cert: "https://sealed-secrets.example.com/v1/cert.pem"}`, ""},
		// Loopback: client and server are one machine (a port-forward, a test).
		{`{cert: "http://127.0.0.1:8080/v1/cert.pem"}`, ""},
		{`{cert: "http://127.3.2.1:8080/v1/cert.pem"}`, ""},
		{`{cert: "http://[::1]:8080/v1/cert.pem"}`, ""},
		{`{cert: "http://localhost:8080/v1/cert.pem"}`, ""},
		{`{cert: "http://sealed-secrets.kube-system.svc:8080/v1/cert.pem"}`, `secrets.output.sealing.cert: plain http only to a loopback address (127.0.0.0/8, ::1, localhost): anyone on the network path could hand over their own certificate and read every Secret sealed with it; use https://, a file, or leave it empty to fetch from the controller through the API server, got "http://sealed-secrets.kube-system.svc:8080/v1/cert.pem"`},
		{`{cert: "http://10.0.0.7/v1/cert.pem"}`, `secrets.output.sealing.cert: plain http only to a loopback address`},
		{`{cert: "http://u:hunter2@10.0.0.7/v1/cert.pem"}`, `got "http://u:xxxxx@10.0.0.7/v1/cert.pem"`},
		{`{cert: "ftp://example.com/cert.pem"}`, `secrets.output.sealing.cert: want a file path, an https:// URL or an http:// URL to a loopback address, got "ftp://example.com/cert.pem"`},
		{`{cert: "https:///cert.pem"}`, `secrets.output.sealing.cert: https URL without a host`},
		{`{certSHA256: ` + pin + `}`, ""},
		{`{certSHA256: "` + strings.ToUpper(pin) + `"}`, ""},
		{`{certSHA256: "` + colons(pin) + `"}`, ""},
		{`{cert: "https://h/c.pem", certSHA256: ` + pin + `}`, ""},
		{`{certSHA256: ` + pin[:40] + `}`, `secrets.output.sealing.certSHA256: want the SHA-256 of the certificate's DER bytes as 64 hex digits (':' between bytes allowed), got "` + pin[:40] + `"`},
		{`{certSHA256: "sha256:` + pin + `"}`, `secrets.output.sealing.certSHA256: want the SHA-256`},
		{`{certSHA256: ` + pin[:63] + `g}`, `secrets.output.sealing.certSHA256: want the SHA-256`},
	} {
		t.Run(tc.sealing, func(t *testing.T) {
			_, err := Load([]byte(doc(tc.sealing)), noEnv)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ps Problems
			if !errors.As(err, &ps) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a problem %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("a URL's password was echoed: %v", err)
			}
		})
	}
}

func colons(h string) string {
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(strings.ToUpper(h[i : i+2]))
	}
	return b.String()
}
