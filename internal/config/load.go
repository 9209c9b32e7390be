// Package config owns bootstrap.yaml: loading (environment expansion, strict
// YAML with field paths), defaults, and validation that reports every problem
// at once. It opens no connection and reads no secret.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with the config, at a field path such as
// postgres[0].databases[1].owner.
type Problem struct {
	Path   string
	Reason string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Reason
	}
	return p.Path + ": " + p.Reason
}

// Problems is every problem found, sorted by path. It is the error Load and
// Validate return; the CLI prints one line each and exits 2.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

func (ps *Problems) add(path, format string, args ...any) {
	*ps = append(*ps, Problem{Path: path, Reason: fmt.Sprintf(format, args...)})
}

func (ps Problems) sorted() Problems {
	sort.SliceStable(ps, func(i, j int) bool { return lessPath(ps[i].Path, ps[j].Path) })
	return ps
}

// lessPath orders paths with numeric indexes compared as numbers, so
// roles[2] comes before roles[10].
func lessPath(a, b string) bool {
	for a != "" && b != "" {
		ia, ib := strings.IndexByte(a, '['), strings.IndexByte(b, '[')
		if ia < 0 || ib < 0 || a[:ia] != b[:ib] {
			return a < b
		}
		ja, jb := strings.IndexByte(a[ia:], ']'), strings.IndexByte(b[ib:], ']')
		if ja < 0 || jb < 0 {
			return a < b
		}
		na, ea := strconv.Atoi(a[ia+1 : ia+ja])
		nb, eb := strconv.Atoi(b[ib+1 : ib+jb])
		if ea != nil || eb != nil {
			return a < b
		}
		if na != nb {
			return na < nb
		}
		a, b = a[ia+ja+1:], b[ib+jb+1:]
	}
	return a < b
}

// LoadFile reads, expands, decodes, defaults and validates a config file.
// A file over MaxFileSize is Problems naming the file.
func LoadFile(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Load(data, os.LookupEnv)
}

// Load expands ${VAR} and ${VAR:-default} with lookup, decodes strictly,
// applies defaults and validates. The error, when not nil, is Problems.
// Hostile input (see limits.go) is refused before it costs more than its
// size.
func Load(data []byte, lookup func(string) (string, bool)) (*Config, error) {
	if ps := tooBig(data, ""); ps != nil {
		return nil, ps
	}
	var ps Problems
	expanded := expand(data, lookup, &ps)
	if len(ps) > 0 {
		return nil, ps.sorted()
	}
	if ps := tooBig(expanded, " after ${VAR} expansion"); ps != nil {
		return nil, ps
	}
	cfg, ps := decode(expanded)
	if cfg == nil {
		return nil, ps
	}
	ApplyDefaults(cfg)
	// A field the decoder could not read is zero now; validation would
	// report it again as missing or out of range.
	decoded := map[string]bool{}
	for _, p := range ps {
		decoded[p.Path] = true
	}
	for _, p := range Validate(cfg) {
		if !decoded[p.Path] {
			ps = append(ps, p)
		}
	}
	if len(ps) > 0 {
		return nil, dedupe(ps.sorted())
	}
	return cfg, nil
}

func dedupe(ps Problems) Problems {
	out := ps[:0]
	for i, p := range ps {
		if i > 0 && p == ps[i-1] {
			continue
		}
		out = append(out, p)
	}
	return out
}

var varRe = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}|\$\{[^}]*\}?`)

// expand substitutes ${VAR} and ${VAR:-default} (default used when VAR is
// unset or empty, as in the shell); $$ is a literal $. An unset variable
// without a default is a problem naming the line, not a silent empty string.
func expand(data []byte, lookup func(string) (string, bool), ps *Problems) []byte {
	lines := bytes.SplitAfter(data, []byte("\n"))
	var out bytes.Buffer
	for n, line := range lines {
		if bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out.Write(line)
			continue
		}
		out.Write(varRe.ReplaceAllFunc(line, func(m []byte) []byte {
			if string(m) == "$$" {
				return []byte("$")
			}
			sub := varRe.FindSubmatch(m)
			name := string(sub[1])
			if name == "" {
				ps.add(fmt.Sprintf("line %d", n+1), "bad variable reference %q: use ${NAME} or ${NAME:-default}", m)
				return m
			}
			if v, ok := lookup(name); ok && (v != "" || sub[2] == nil) {
				return []byte(v)
			}
			if sub[2] != nil {
				return sub[3]
			}
			ps.add(fmt.Sprintf("line %d", n+1), "environment variable %s is not set (use ${%s:-default} for a default)", name, name)
			return nil
		}))
	}
	return out.Bytes()
}

// Expand substitutes ${VAR} and ${VAR:-default} as Load does; the error,
// when not nil, is Problems naming the lines.
func Expand(data []byte, lookup func(string) (string, bool)) ([]byte, error) {
	var ps Problems
	out := expand(data, lookup, &ps)
	if len(ps) > 0 {
		return nil, ps
	}
	return out, nil
}

// decode parses YAML strictly. Unknown keys and wrong kinds are reported
// with their field path and line; a syntax error names its line and stops.
func decode(data []byte) (*Config, Problems) {
	var ps Problems
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		ps.add("", "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		return nil, ps
	}
	cfg := &Config{}
	if len(root.Content) == 0 {
		ps.add("line 1", "config is empty: want at least version: 1")
		return nil, ps
	}
	doc := root.Content[0]
	// Before anything follows an alias: a document that would explode
	// stops here, with the path where a limit was hit.
	if ps := guardDocument(doc); len(ps) > 0 {
		return nil, ps.sorted()
	}
	check(doc, reflect.TypeOf(cfg).Elem(), "", &ps)
	err := doc.Decode(cfg)
	if len(ps) > 0 {
		// The walker has said what is wrong, with paths; the decoder's own
		// messages would repeat it with Go type names.
		return cfg, ps
	}
	var te *yaml.TypeError
	switch {
	case errors.As(err, &te):
		for _, e := range te.Errors {
			ps.add("", "%s", e)
		}
	case err != nil:
		ps.add("", "%s", err)
	}
	return cfg, ps
}

var (
	secretRefType    = reflect.TypeOf(SecretRef{})
	bucketPolicyType = reflect.TypeOf(BucketPolicy{})
	durationType     = reflect.TypeOf(Duration{})
	tlsType          = reflect.TypeOf(TLS{})
)

// checkLeaf checks the types that decode themselves (credential references,
// policies, durations, tls); it reports whether t was one of them and the
// walk stops here. A tls mapping is walked as the struct it decodes into.
func checkLeaf(n *yaml.Node, t reflect.Type, path string, at func(string) string, ps *Problems) bool {
	switch t {
	case secretRefType:
		if n.Kind == yaml.ScalarNode {
			return true // inline credential: validation reports it, without the value
		}
		if n.Kind != yaml.MappingNode {
			ps.add(at(path), "want {secret: NAME}, got %s (line %d)", kindName(n), n.Line)
			return true
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i].Value; k != "secret" {
				ps.add(path+"."+k, "unknown field (line %d); a credential reference is {secret: NAME}", n.Content[i].Line)
			} else if v := n.Content[i+1]; v.Kind != yaml.ScalarNode {
				ps.add(path+".secret", "want a secret name, got %s (line %d)", kindName(v), v.Line)
			}
		}
		return true
	case bucketPolicyType:
		return true // any shape; BucketPolicy.UnmarshalYAML sorts it out
	case tlsType:
		if n.Kind == yaml.ScalarNode {
			if n.ShortTag() != "!!bool" {
				ps.add(at(path), "want true, false or a mapping {caFile, serverName, certFile, keyFile, insecureSkipVerify}, got %s (line %d)", kindName(n), n.Line)
			}
			return true
		}
		// A mapping is walked as the struct it decodes into.
	case durationType:
		if n.Kind != yaml.ScalarNode {
			ps.add(at(path), "want a duration such as 90s or 5m, got %s (line %d)", kindName(n), n.Line)
		}
		return true
	}
	return false
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "null"
	}
	return "a " + strings.TrimPrefix(n.ShortTag(), "!!")
}

// check walks the YAML tree beside the Go type, reporting unknown keys and
// kinds that cannot decode, each with its field path.
func check(n *yaml.Node, t reflect.Type, path string, ps *Problems) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	at := func(p string) string {
		if p == "" {
			return fmt.Sprintf("line %d", n.Line)
		}
		return p
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if checkLeaf(n, t, path, at, ps) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			ps.add(at(path), "want a mapping, got %s (line %d)", kindName(n), n.Line)
			return
		}
		fields := map[string]reflect.StructField{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name != "" && name != "-" {
				fields[name] = f
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			f, ok := fields[k.Value]
			if !ok {
				ps.add(p, "unknown field (line %d)%s", k.Line, suggest(k.Value, fields))
				continue
			}
			check(v, f.Type, p, ps)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			ps.add(at(path), "want a list, got %s (line %d)", kindName(n), n.Line)
			return
		}
		for i, c := range n.Content {
			check(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), ps)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			ps.add(at(path), "want a mapping, got %s (line %d)", kindName(n), n.Line)
			return
		}
		if t.Elem().Kind() == reflect.Interface {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			check(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), ps)
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			ps.add(at(path), "want a string, got %s (line %d)", kindName(n), n.Line)
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			ps.add(at(path), "want true or false, got %s %q (line %d)", kindName(n), n.Value, n.Line)
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			ps.add(at(path), "want an integer, got %s %q (line %d)", kindName(n), n.Value, n.Line)
		}
	}
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// join appends a key to a field path; a key that is not a plain word is
// quoted in brackets so the path stays unambiguous: data["a b"].
func join(path, key string) string {
	if !plainKey.MatchString(key) {
		return path + `["` + strings.ReplaceAll(key, `"`, `\"`) + `"]`
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// suggest names the known field closest to a misspelt key.
func suggest(key string, fields map[string]reflect.StructField) string {
	best, bestD := "", 3
	lower := strings.ToLower(key)
	for name := range fields {
		if len(lower)-len(name) > bestD || len(name)-len(lower) > bestD {
			continue // the distance is at least the difference in length
		}
		if d := distance(lower, strings.ToLower(name)); d < bestD || (d == bestD && best != "" && name < best) {
			best, bestD = name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// UnmarshalYAML accepts {secret: NAME}. A plain scalar is an inline
// credential: its value is dropped on the spot and only the fact is kept.
func (r *SecretRef) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*r = SecretRef{Inline: n.Tag != "!!null"}
		return nil
	}
	type plain SecretRef
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*r = SecretRef(p)
	return nil
}

// UnmarshalYAML accepts a canned name, a JSON document in a string, or the
// document written as YAML.
func (p *BucketPolicy) UnmarshalYAML(n *yaml.Node) error {
	*p = BucketPolicy{}
	switch {
	case n.Kind == yaml.ScalarNode && strings.HasPrefix(strings.TrimSpace(n.Value), "{"):
		if !json.Valid([]byte(n.Value)) {
			p.bad = "not a valid JSON policy document"
			return nil
		}
		p.Document = json.RawMessage(n.Value)
	case n.Kind == yaml.ScalarNode:
		p.Canned = n.Value
	case n.Kind == yaml.MappingNode:
		var v any
		if err := n.Decode(&v); err != nil {
			p.bad = err.Error()
			return nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			p.bad = "cannot be expressed as JSON: " + err.Error()
			return nil
		}
		p.Document = b
	default:
		p.bad = "want a canned policy name or a JSON policy document"
	}
	return nil
}

// MarshalJSON renders the policy as given (schema generation, debugging).
func (p BucketPolicy) MarshalJSON() ([]byte, error) {
	if len(p.Document) > 0 {
		return p.Document, nil
	}
	return json.Marshal(p.Canned)
}

// UnmarshalYAML keeps the raw text; validation parses it so a bad value is
// reported with its path instead of aborting the decode.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	d.Raw = n.Value
	if v, err := time.ParseDuration(n.Value); err == nil {
		d.Duration = v
	}
	return nil
}

// MarshalJSON renders the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.Duration.String()) }
