package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"
)

// TLS is how bootstrap speaks TLS to one server. On Redis, MinIO and
// RabbitMQ `tls: true` turns it on with the system's roots and a mapping
// turns it on with these details; PostgreSQL turns it on with sslmode and
// reads only the details from here.
type TLS struct {
	// Enabled is set by `tls: true` or by giving a mapping.
	Enabled            bool   `yaml:"-" json:"-"`
	CAFile             string `yaml:"caFile" json:"caFile,omitempty" jsonschema:"description=PEM bundle of the CAs that may sign the server's certificate; default: the system's roots"`
	ServerName         string `yaml:"serverName" json:"serverName,omitempty" jsonschema:"description=name the server's certificate must hold; default: the host bootstrap connects to"`
	CertFile           string `yaml:"certFile" json:"certFile,omitempty" jsonschema:"description=PEM client certificate for servers that ask for one (with keyFile)"`
	KeyFile            string `yaml:"keyFile" json:"keyFile,omitempty" jsonschema:"description=PEM private key of certFile"`
	InsecureSkipVerify bool   `yaml:"insecureSkipVerify" json:"insecureSkipVerify,omitempty" jsonschema:"description=encrypt without checking the server's certificate: anyone in between can read the credentials; warned on every run"`
}

// UnmarshalYAML accepts true, false or a mapping. A scalar that is not a
// boolean is left off: the config walker reports it with its path.
func (t *TLS) UnmarshalYAML(n *yaml.Node) error {
	*t = TLS{}
	if n.Kind == yaml.ScalarNode {
		var on bool
		if n.Decode(&on) == nil {
			t.Enabled = on
		}
		return nil
	}
	type plain TLS
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*t = TLS(p)
	t.Enabled = true
	return nil
}

// MarshalJSON renders `true` for TLS with no details, as it is usually
// written, and the mapping otherwise.
func (t TLS) MarshalJSON() ([]byte, error) {
	if !t.Enabled || t == (TLS{Enabled: true}) {
		return json.Marshal(t.Enabled)
	}
	type plain TLS
	return json.Marshal(plain(t))
}

// IsZero reports TLS off with nothing set, so omitzero leaves it out.
func (t TLS) IsZero() bool { return t == TLS{} }

// hasDetails reports whether anything beyond on/off was given.
func (t TLS) hasDetails() bool {
	t.Enabled = false
	return !t.IsZero()
}

// ClientConfig builds the TLS client config for a server at host. Files are
// read here, when connecting, not when the config is validated: the chart's
// pre-install hook validates the whole file before the data services (and
// their certificates) exist.
func (t TLS) ClientConfig(host string) (*tls.Config, error) {
	c := &tls.Config{
		ServerName:         t.ServerName,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // the user's explicit choice, warned on every run
	}
	if c.ServerName == "" {
		c.ServerName = host
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.caFile %s: no PEM certificate in it", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			// The key's bytes never reach the message: LoadX509KeyPair
			// names files and PEM block types only.
			return nil, fmt.Errorf("tls.certFile/keyFile: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

// IsCertificateError reports a server certificate that does not verify:
// unknown authority, wrong name, expired. Waiting cannot fix it, and the
// client stopped in the handshake, before any credential was sent.
func IsCertificateError(err error) bool {
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verification     *tls.CertificateVerificationError
	)
	return errors.As(err, &unknownAuthority) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &verification)
}

// UnverifiedTLS lists the selected targets whose server certificate is not
// checked, with the setting that says so, for a warning on every run.
func (c *Config) UnverifiedTLS(include func(target string) bool) map[string]string {
	out := map[string]string{}
	for _, p := range c.Postgres {
		if include(p.Target()) && p.SSLMode == "require" {
			out[p.Target()] = "sslmode require"
		}
	}
	add := func(target string, t TLS) {
		if include(target) && t.Enabled && t.InsecureSkipVerify {
			out[target] = "tls.insecureSkipVerify"
		}
	}
	for _, r := range c.Redis {
		add(r.Target(), r.TLS)
	}
	for _, m := range c.MinIO {
		add(m.Target(), m.TLS)
	}
	for _, r := range c.RabbitMQ {
		add(r.Target(), r.TLS)
	}
	return out
}

// tls checks one target's tls block; pg marks a PostgreSQL entry, where
// sslmode turns TLS on and verification off.
func (v *validator) tls(p string, t TLS, pg bool, sslmode string) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		v.add(p+".tls", "certFile and keyFile go together")
	}
	if t.InsecureSkipVerify && (t.CAFile != "" || t.ServerName != "") {
		v.add(p+".tls.insecureSkipVerify", "checks no certificate, so caFile and serverName would be ignored")
	}
	if !pg {
		return
	}
	switch {
	case t.Enabled && !t.hasDetails():
		v.add(p+".tls", "PostgreSQL turns TLS on with sslmode (verify-full checks the certificate); tls holds caFile, serverName, certFile and keyFile")
	case t.InsecureSkipVerify:
		v.add(p+".tls.insecureSkipVerify", "not for PostgreSQL: sslmode require encrypts without checking the certificate")
	case sslmode == "disable" && t.hasDetails():
		v.add(p+".tls", "given with sslmode disable, which never uses TLS")
	case sslmode != "verify-full" && (t.CAFile != "" || t.ServerName != ""):
		v.add(p+".tls", "caFile and serverName are checked only with sslmode verify-full, got %s", sslmode)
	}
}
