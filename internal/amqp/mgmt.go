package amqp

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
)

// mgmt is a small client for the RabbitMQ management HTTP API: only the
// endpoints this package needs. rabbit-hole is not used (not obtainable here,
// and most of it is unneeded).
type mgmt struct {
	base string // scheme://host:port, no trailing slash
	user string
	pass credential.Credential
	http *http.Client
}

// newMgmt returns the management API client: to.Connect bounds dialing and
// the TLS handshake, to.Request each whole request; tc nil means plain HTTP.
func newMgmt(host string, port int, tc *tls.Config, user string, pass credential.Credential, to config.Timeouts) *mgmt {
	scheme := "http"
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: to.Connect.Duration, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: to.Connect.Duration,
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 2 * declareWorkers,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}
	if tc != nil {
		scheme = "https"
		tr.TLSClientConfig = tc.Clone()
	}
	return &mgmt{
		base: scheme + "://" + net.JoinHostPort(host, fmt.Sprint(port)),
		user: user,
		pass: pass,
		http: &http.Client{Transport: tr, Timeout: to.Request.Duration},
	}
}

// apiError is a non-2xx answer of the management API. The API says why in
// {"error","reason"}; Reason carries that text (or the raw body).
type apiError struct {
	Method string
	Path   string
	Status int
	Reason string
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

func isStatus(err error, code int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == code
}

// path joins API path segments, escaping each one: vhost "/" becomes %2F.
func path(segs ...string) string {
	var b strings.Builder
	b.WriteString("/api")
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// do sends one request; body (if not nil) is JSON-encoded and out (if not
// nil) decoded from a 2xx answer.
func (m *mgmt) do(ctx context.Context, method, p string, body, out any) error {
	var rd io.Reader
	if body != nil {
		buf, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s %s: encode body: %w", method, p, err)
		}
		rd = bytes.NewReader(buf)
	}
	// p is already escaped (vhost "/" is %2F): parse it so RawPath keeps
	// the escapes the server needs.
	req, err := http.NewRequestWithContext(ctx, method, m.base+p, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, p, err)
	}
	req.SetBasicAuth(m.user, m.pass.Reveal())
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := m.http.Do(req)
	if err != nil {
		// url.Error repeats the URL, which holds no credential (basic auth
		// travels in a header); unwrap it to keep the message short.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s %s: %w", method, p, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		ae := &apiError{Method: method, Path: p, Status: resp.StatusCode}
		var e struct {
			Error  string `json:"error"`
			Reason string `json:"reason"`
		}
		if json.Unmarshal(raw, &e) == nil && (e.Reason != "" || e.Error != "") {
			ae.Reason = e.Reason
			if ae.Reason == "" {
				ae.Reason = e.Error
			}
		} else {
			ae.Reason = strings.TrimSpace(string(raw))
		}
		ae.Reason = redact(cleanReason(ae.Reason), m.pass)
		return ae
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: %w", method, p, ctx.Err())
		}
		return fmt.Errorf("%s %s: decode answer: %w", method, p, err)
	}
	return nil
}

// cleanReason makes the server's reason one readable line: RabbitMQ
// HTML-escapes it ("&lt;&lt;\"x\"&gt;&gt;") and splits it over lines.
func cleanReason(s string) string {
	s = html.UnescapeString(s)
	s = strings.ReplaceAll(s, "\n\n", ": ")
	s = strings.Join(strings.Fields(s), " ")
	return s
}

// redact removes a credential from server text, in case a server ever
// echoes it back.
func redact(s string, c credential.Credential) string {
	if v := c.Reveal(); v != "" && strings.Contains(s, v) {
		s = strings.ReplaceAll(s, v, credential.Redacted)
	}
	return s
}

// overview is the part of GET /api/overview this package reads.
type overview struct {
	RabbitMQVersion string `json:"rabbitmq_version"`
	ClusterName     string `json:"cluster_name"`
	ExchangeTypes   []struct {
		Name string `json:"name"`
	} `json:"exchange_types"`
}

// definitions is GET /api/definitions: the whole broker topology in one
// answer.
type definitions struct {
	RabbitVersion    string          `json:"rabbit_version"`
	RabbitMQVersion  string          `json:"rabbitmq_version"`
	Users            []defUser       `json:"users"`
	VHosts           []defVHost      `json:"vhosts"`
	Permissions      []defPermission `json:"permissions"`
	TopicPermissions []defTopicPerm  `json:"topic_permissions"`
	Policies         []defPolicy     `json:"policies"`
	Queues           []defQueue      `json:"queues"`
	Exchanges        []defExchange   `json:"exchanges"`
	Bindings         []defBinding    `json:"bindings"`
}

type defUser struct {
	Name             string `json:"name"`
	PasswordHash     string `json:"password_hash"`
	HashingAlgorithm string `json:"hashing_algorithm"`
	// Tags is "a,b" before RabbitMQ 3.12 and ["a","b"] after.
	Tags json.RawMessage `json:"tags"`
}

// defVHost is a vhost as /api/definitions or /api/vhosts shows it; where
// the metadata sits moved between RabbitMQ versions, so every place is read.
type defVHost struct {
	Name             string          `json:"name"`
	Description      *string         `json:"description"`
	Tags             json.RawMessage `json:"tags"`
	DefaultQueueType *string         `json:"default_queue_type"`
	Metadata         *struct {
		Description      *string         `json:"description"`
		Tags             json.RawMessage `json:"tags"`
		DefaultQueueType *string         `json:"default_queue_type"`
	} `json:"metadata"`
}

type defPermission struct {
	User      string `json:"user"`
	VHost     string `json:"vhost"`
	Configure string `json:"configure"`
	Write     string `json:"write"`
	Read      string `json:"read"`
}

type defTopicPerm struct {
	User     string `json:"user"`
	VHost    string `json:"vhost"`
	Exchange string `json:"exchange"`
	Write    string `json:"write"`
	Read     string `json:"read"`
}

type defPolicy struct {
	VHost      string         `json:"vhost"`
	Name       string         `json:"name"`
	Pattern    string         `json:"pattern"`
	ApplyTo    string         `json:"apply-to"`
	Priority   json.Number    `json:"priority"`
	Definition map[string]any `json:"definition"`
}

type defQueue struct {
	VHost      string         `json:"vhost"`
	Name       string         `json:"name"`
	Durable    bool           `json:"durable"`
	AutoDelete bool           `json:"auto_delete"`
	Arguments  map[string]any `json:"arguments"`
	// Type is set by /api/queues (not by /api/definitions before 3.13).
	Type string `json:"type"`
}

type defExchange struct {
	VHost      string         `json:"vhost"`
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Durable    bool           `json:"durable"`
	AutoDelete bool           `json:"auto_delete"`
	Internal   bool           `json:"internal"`
	Arguments  map[string]any `json:"arguments"`
}

type defBinding struct {
	VHost           string         `json:"vhost"`
	Source          string         `json:"source"`
	Destination     string         `json:"destination"`
	DestinationType string         `json:"destination_type"`
	RoutingKey      string         `json:"routing_key"`
	Arguments       map[string]any `json:"arguments"`
}

// featureFlag is one entry of GET /api/feature-flags.
type featureFlag struct {
	Name  string `json:"name"`
	State string `json:"state"`
}

// tagList reads tags given as "a,b" or ["a","b"].
func tagList(raw json.RawMessage) []string {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return cleanTags(list)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return cleanTags(strings.Split(s, ","))
	}
	return nil
}
