// Command gen writes schema/bootstrap.schema.json, the JSON Schema of
// bootstrap.yaml, from the Go types in internal/config, so editors can
// validate and complete the file. Run `go generate ./...` (or `make schema`)
// after changing a config type; a test fails while the file is stale.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"

	"github.com/invopop/jsonschema"

	"github.com/health-data-ai/bootstrap/internal/config"
)

//go:generate go run . ../bootstrap.schema.json

func main() {
	out := "schema/bootstrap.schema.json"
	if len(os.Args) > 1 {
		out = os.Args[1]
	}
	b, err := Generate()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// Generate renders the schema.
func Generate() ([]byte, error) {
	r := &jsonschema.Reflector{
		Anonymous:      true,
		ExpandedStruct: true,
		Mapper:         mapper,
	}
	s := r.Reflect(&config.Config{})
	s.ID = "https://github.com/health-data-ai/bootstrap/schema/bootstrap.schema.json"
	s.Title = "bootstrap.yaml"
	s.Description = "Desired state of the Health Data AI Platform's data layer (see DESIGN.md). Values may use ${VAR} and ${VAR:-default}, expanded before validation."
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func mapper(t reflect.Type) *jsonschema.Schema {
	switch t {
	case reflect.TypeOf(config.SecretRef{}):
		props := jsonschema.NewProperties()
		props.Set("secret", &jsonschema.Schema{Type: "string", Description: "name of the secret in the configured source", Pattern: `^[A-Za-z0-9][A-Za-z0-9._-]*$`})
		return &jsonschema.Schema{
			Type: "object", Properties: props, Required: []string{"secret"},
			AdditionalProperties: jsonschema.FalseSchema,
			Description:          "a credential reference; credentials are never written inline",
		}
	case reflect.TypeOf(config.Duration{}):
		return &jsonschema.Schema{Type: "string", Pattern: `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`, Description: "a Go duration such as 90s or 5m"}
	case reflect.TypeOf(config.TLS{}):
		// The mapping's own schema comes from the struct: reflect it
		// without this mapper, or it would map itself.
		obj := (&jsonschema.Reflector{DoNotReference: true, ExpandedStruct: true}).Reflect(&config.TLS{})
		obj.Version, obj.ID = "", ""
		obj.AdditionalProperties = jsonschema.FalseSchema
		return &jsonschema.Schema{
			Description: "true turns TLS on with the system's roots; a mapping turns it on with these details (PostgreSQL: sslmode turns it on, the mapping gives the details)",
			OneOf:       []*jsonschema.Schema{{Type: "boolean"}, obj},
		}
	case reflect.TypeOf(config.BucketPolicy{}):
		return &jsonschema.Schema{
			Description: "canned policy (private, download, upload, public) or a policy document",
			OneOf: []*jsonschema.Schema{
				{Type: "string", Enum: []any{"private", "download", "upload", "public"}},
				{Type: "string", Pattern: `^\s*\{`},
				{Type: "object", Required: []string{"Statement"}},
			},
		}
	}
	return nil
}
