package credential

import (
	"encoding/json"
	"strings"
)

// Login is a username with its password. A rotating credential keeps one
// as its value in the source, as JSON {"username": …, "password": …} (the
// alternating-users layout of AWS Secrets Manager): its username changes
// with each rotation, and the value and its login must change together.
type Login struct {
	Username string
	Password Credential
}

type loginJSON struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// Encode returns the login as the value stored in the source.
func (l Login) Encode() Credential {
	b, _ := json.Marshal(loginJSON{Username: l.Username, Password: l.Password.Reveal()})
	return New(string(b))
}

// DecodeLogin reads a rotating credential's value. A plain value (one
// stored before rotation was configured) is the password of declared, the
// role or user the config names.
func DecodeLogin(c Credential, declared string) Login {
	v := c.Reveal()
	if strings.HasPrefix(v, "{") {
		var l loginJSON
		if err := json.Unmarshal([]byte(v), &l); err == nil && l.Username != "" && l.Password != "" {
			return Login{Username: l.Username, Password: New(l.Password)}
		}
	}
	return Login{Username: declared, Password: c}
}

// UsernameKey is the Resolved key of the username that currently holds
// the rotating credential name (NAME/username, as kubernetesSecrets data
// writes it).
func UsernameKey(name string) string { return name + "/username" }
