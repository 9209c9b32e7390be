package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/health-data-ai/bootstrap/internal/config"
)

const schemaFile = "../bootstrap.schema.json"

func TestSchemaUpToDate(t *testing.T) {
	want, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: run `go generate ./schema/gen` (make schema)", schemaFile)
	}
}

func compile(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	s, err := c.Compile(schemaFile)
	if err != nil {
		t.Fatalf("compile schema: %v", err)
	}
	return s
}

// toJSONValue expands ${VAR:-default} as the loader does, then converts the
// YAML document into the value the schema validator wants.
func toJSONValue(t *testing.T, data []byte) any {
	t.Helper()
	data, err := config.Expand(data, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSchemaAcceptsExamples(t *testing.T) {
	s := compile(t)
	files, _ := filepath.Glob("../../examples/*.yaml")
	files = append(files, "../../deploy/bootstrap.yaml")
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		n++
		t.Run(filepath.Base(f), func(t *testing.T) {
			if err := s.Validate(toJSONValue(t, data)); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		})
	}
	if n == 0 {
		t.Fatal("no examples found")
	}
}

func TestSchemaRejects(t *testing.T) {
	s := compile(t)
	for name, doc := range map[string]string{
		"unknown key":       "version: 1\npostgress: []\n",
		"inline password":   "version: 1\npostgres:\n  - {name: a, host: h, admin: {password: hunter2}}\n",
		"bad enum":          "version: 1\npostgres:\n  - {name: a, host: h, sslmode: sometimes, admin: {password: {secret: x}}}\n",
		"bad duration":      "version: 1\ndefaults: {waitTimeout: 5 minutes}\n",
		"missing host":      "version: 1\npostgres:\n  - {name: a, admin: {password: {secret: x}}}\n",
		"bad canned policy": "version: 1\nminio:\n  - {name: m, endpoint: 'h:1', accessKey: {secret: a}, secretKey: {secret: b}, buckets: [{name: abc, policy: everyone}]}\n",
	} {
		t.Run(name, func(t *testing.T) {
			err := s.Validate(toJSONValue(t, []byte(doc)))
			if err == nil {
				t.Errorf("schema accepted %q", strings.TrimSpace(doc))
			}
		})
	}
}
