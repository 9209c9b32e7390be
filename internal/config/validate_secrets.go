package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
)

// secrets checks where credentials come from and where the Kubernetes
// Secrets built from them go.
func (v *validator) secrets() {
	s := v.c.Secrets
	v.secretSource(s)
	if s.Generate.Length < 16 || s.Generate.Length > 256 {
		v.add("secrets.generate.length", "must be between 16 and 256, got %d", s.Generate.Length)
	}
	v.secretOutput(s)
	v.kubernetesSecrets(s.KubernetesSecrets)
}

func (v *validator) secretSource(s Secrets) {
	src := s.Source
	if !v.enum("secrets.source.type", src.Type, "ocivault", "file", "env") {
		return
	}
	switch src.Type {
	case "ocivault":
		v.ociVault(src.OCIVault, s.Generate.Enabled)
	case "file":
		v.required("secrets.source.file.dir", src.File.Dir)
	case "env":
		if src.Env.Prefix != "" && !envNameRe.MatchString(src.Env.Prefix) {
			v.add("secrets.source.env.prefix", "want letters, digits and '_', got %q", src.Env.Prefix)
		}
		if s.Generate.Enabled {
			v.add("secrets.generate.enabled", "the env source cannot store generated secrets: use the file or ocivault source, or set enabled: false")
		}
	}
}

// ociVault checks the vault source. The compartment and key are needed only
// to create secrets, so they are required only when generating.
func (v *validator) ociVault(o OCIVaultSource, generate bool) {
	p := "secrets.source.ocivault."
	if v.required(p+"vaultId", o.VaultID) && !strings.HasPrefix(o.VaultID, "ocid1.vault.") {
		v.add(p+"vaultId", "want a vault OCID (ocid1.vault...), got %q", o.VaultID)
	}
	if o.Endpoint == "" {
		v.required(p+"region", o.Region)
	}
	v.enum(p+"auth", o.Auth, "instance_principal", "workload_identity", "resource_principal", "api_key")
	if o.Auth != "api_key" && (o.ConfigFile != "" || o.Profile != "") {
		v.add(p+"configFile", "is used only with auth: api_key")
	}
	if generate {
		if v.required(p+"compartmentId", o.CompartmentID) && !strings.HasPrefix(o.CompartmentID, "ocid1.") {
			v.add(p+"compartmentId", "want a compartment or tenancy OCID, got %q", o.CompartmentID)
		}
		if v.required(p+"keyId", o.KeyID) && !strings.HasPrefix(o.KeyID, "ocid1.key.") {
			v.add(p+"keyId", "want a key OCID (ocid1.key...), got %q", o.KeyID)
		}
	}
	if o.Endpoint != "" && !strings.HasPrefix(o.Endpoint, "http://") && !strings.HasPrefix(o.Endpoint, "https://") {
		v.add(p+"endpoint", "want an http:// or https:// URL, got %q", o.Endpoint)
	}
}

func (v *validator) secretOutput(s Secrets) {
	o := s.Output
	v.enum("secrets.output.type", o.Type, "sealed", "plain", "none")
	v.enum("secrets.output.target", o.Target, "cluster", "dir")
	v.enum("secrets.output.sealing.scope", o.Sealing.Scope, "strict", "namespace-wide", "cluster-wide")
	v.sealingCert(o.Sealing)
	if o.Type == "none" {
		return
	}
	if o.Target == "dir" {
		v.required("secrets.output.dir", o.Dir)
	}
	// A cluster-wide sealed file can be applied in any namespace; everything
	// else is bound to one.
	if o.Sealing.Scope != "cluster-wide" || o.Type == "plain" || o.Target == "cluster" {
		v.name("secrets.output.namespace", o.Namespace, instanceRe, 63, "a Kubernetes namespace: lower case letters, digits and '-'")
	}
	if o.Type == "plain" && o.Target == "dir" {
		v.add("secrets.output.target", "output.type plain writes unsealed Secrets to a cluster only, never to files: use output.type sealed with target dir")
	}
	if len(s.KubernetesSecrets) == 0 {
		v.add("secrets.kubernetesSecrets", "output.type is %q but no Kubernetes Secrets are declared", o.Type)
	}
}

// certSHA256Re is a pinned certificate fingerprint: 64 hex digits, ':'
// between bytes allowed (openssl's -fingerprint form).
var certSHA256Re = regexp.MustCompile(`^([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$`)

// sealingCert checks where the sealing certificate comes from. It decides
// who can read every sealed Secret, so plain http is refused except to a
// loopback address: there, client and server are one machine and no
// network lies between (a kubectl port-forward, a test's controller).
// package seal enforces the same rules when it fetches.
func (v *validator) sealingCert(s Sealing) {
	p := "secrets.output.sealing."
	if s.CertSHA256 != "" && !certSHA256Re.MatchString(s.CertSHA256) {
		v.add(p+"certSHA256", "want the SHA-256 of the certificate's DER bytes as 64 hex digits (':' between bytes allowed), got %q", s.CertSHA256)
	}
	if !strings.Contains(s.Cert, "://") || strings.HasPrefix(s.Cert, "file://") {
		return
	}
	u, err := url.Parse(s.Cert)
	if err != nil {
		v.add(p+"cert", "not a valid URL")
		return
	}
	switch {
	case u.Scheme == "https" && u.Host != "":
	case u.Scheme == "https":
		v.add(p+"cert", "https URL without a host, got %q", u.Redacted())
	case u.Scheme == "http" && !loopbackHost(u.Hostname()):
		v.add(p+"cert", "plain http only to a loopback address (127.0.0.0/8, ::1, localhost): anyone on the network path could hand over their own certificate and read every Secret sealed with it; use https://, a file, or leave it empty to fetch from the controller through the API server, got %q", u.Redacted())
	case u.Scheme != "http":
		v.add(p+"cert", "want a file path, an https:// URL or an http:// URL to a loopback address, got %q", u.Redacted())
	}
}

// loopbackHost reports whether host is 127.0.0.0/8, ::1 or localhost.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (v *validator) kubernetesSecrets(list []KubernetesSecret) {
	names := seen{}
	for i, ks := range list {
		p := fmt.Sprintf("secrets.kubernetesSecrets[%d]", i)
		if v.name(p+".name", ks.Name, k8sNameRe, 253, "a Kubernetes name: lower case letters, digits, '-' and '.'") {
			v.dup(names, ks.Name, p+".name", "Kubernetes Secret")
		}
		if len(ks.Data) == 0 {
			v.add(p+".data", "is required: key -> secret name")
		}
		for key, secret := range ks.Data {
			kp := join(p+".data", key)
			if len(key) > 253 || !k8sKeyRe.MatchString(key) {
				v.add(kp, "invalid key %q: letters, digits, '-', '_' and '.'", key)
			}
			// Not v.ref: a data value is a bare secret name, not {secret: NAME}.
			// NAME/username is checked by rotatingUsernames.
			secret = strings.TrimSuffix(secret, UsernameSuffix)
			if v.required(kp, secret) {
				if _, ok := v.refs[secret]; !ok {
					v.refs[secret] = kp
				}
			}
		}
	}
}

// secretNames checks every referenced secret name against the source's
// rules, once per name, at the first place it is used.
func (v *validator) secretNames() {
	src := v.c.Secrets.Source
	for name, path := range v.refs {
		if len(name) > 255 || !secretRe.MatchString(name) {
			v.add(path, "invalid secret name %q: letters, digits, '.', '_' and '-'", name)
			continue
		}
		if src.Type == "env" {
			env := EnvName(src.Env.Prefix, name)
			if !envNameRe.MatchString(env) {
				v.add(path, "secret %q maps to %q, not a valid environment variable name", name, env)
			}
		}
	}
}

// EnvName is the environment variable the env source reads for a secret:
// the prefix plus the name in upper case with '-' and '.' as '_'.
func EnvName(prefix, secret string) string {
	return prefix + strings.NewReplacer("-", "_", ".", "_").Replace(strings.ToUpper(secret))
}
