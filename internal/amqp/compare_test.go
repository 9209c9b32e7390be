package amqp

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

func jsonMap(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestEqualArgs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config map[string]any // as YAML decodes it
		server string         // as the management API returns it
		want   bool
	}{
		{"both empty", nil, `{}`, true},
		{"nil vs empty", map[string]any{}, `{}`, true},
		{"int vs JSON integer", map[string]any{"x-message-ttl": 60000}, `{"x-message-ttl":60000}`, true},
		{"float vs JSON integer", map[string]any{"x-message-ttl": 60000.0}, `{"x-message-ttl":60000}`, true},
		{"int vs JSON float", map[string]any{"x-max-length": 10}, `{"x-max-length":10.0}`, true},
		{"different number", map[string]any{"x-message-ttl": 60000}, `{"x-message-ttl":30000}`, false},
		{"number vs string", map[string]any{"x-message-ttl": 60000}, `{"x-message-ttl":"60000"}`, false},
		{"missing key", map[string]any{"a": "b"}, `{}`, false},
		{"extra key on server", nil, `{"x-max-length":1}`, false},
		{"nested policy definition", map[string]any{"federation-upstream-set": "all", "ha-params": []any{"a", "b"}, "x": map[string]any{"n": 1}},
			`{"ha-params":["a","b"],"federation-upstream-set":"all","x":{"n":1.0}}`, true},
		{"list order matters", map[string]any{"l": []any{1, 2}}, `{"l":[2,1]}`, false},
		{"bool", map[string]any{"x-single-active-consumer": true}, `{"x-single-active-consumer":true}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := equalArgs(tc.config, jsonMap(t, tc.server)); got != tc.want {
				t.Errorf("equalArgs = %t, want %t", got, tc.want)
			}
			if got := argsKey(tc.config) == argsKey(jsonMap(t, tc.server)); got != tc.want {
				t.Errorf("argsKey equality = %t, want %t", got, tc.want)
			}
		})
	}
}

func TestDiffArgs(t *testing.T) {
	got := diffArgs(jsonMap(t, `{"x-message-ttl":30000,"x-max-length":5,"same":"v"}`), map[string]any{"x-message-ttl": 60000, "same": "v", "x-dead-letter-exchange": "dlx"})
	want := []string{
		`argument x-dead-letter-exchange is absent on the server, "dlx" in the config`,
		`argument x-max-length is 5 on the server, absent in the config`,
		`argument x-message-ttl is 30000 on the server, 60000 in the config`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("diffArgs =\n%q\nwant\n%q", got, want)
	}
}

func TestToTable(t *testing.T) {
	got := toTable(map[string]any{"ttl": 60000, "ratio": 0.5, "dlx": "x", "on": true, "nested": map[string]any{"n": 2}, "list": []any{1, "a"}})
	want := amqp091.Table{"ttl": int64(60000), "ratio": 0.5, "dlx": "x", "on": true, "nested": amqp091.Table{"n": int64(2)}, "list": []any{int64(1), "a"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("toTable = %#v, want %#v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("not a valid AMQP table: %v", err)
	}
	if toTable(nil) != nil {
		t.Error("toTable(nil) is not nil")
	}
}

func TestTagList(t *testing.T) {
	for in, want := range map[string][]string{
		`"administrator"`:          {"administrator"},
		`"monitoring, management"`: {"management", "monitoring"},
		`["b","a","a"]`:            {"a", "b"},
		`""`:                       {},
		`[]`:                       {},
		`null`:                     nil,
	} {
		got := tagList(json.RawMessage(in))
		if len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(got, want)) {
			t.Errorf("tagList(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestVersionAtLeast(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want bool
	}{
		{"3.10.8", false}, {"3.11.0", true}, {"3.13.7", true}, {"4.0.5", true}, {"3.9.29", false}, {"", true}, {"weird", true},
	} {
		if got := versionAtLeast(tc.v, 3, 11); got != tc.want {
			t.Errorf("versionAtLeast(%q, 3, 11) = %t, want %t", tc.v, got, tc.want)
		}
	}
}

func TestPathEscapes(t *testing.T) {
	for _, tc := range []struct {
		segs []string
		want string
	}{
		{[]string{"vhosts", "/"}, "/api/vhosts/%2F"},
		{[]string{"queues", "/", "etl.ingest"}, "/api/queues/%2F/etl.ingest"},
		{[]string{"bindings", "a/b", "e", "x:y", "q", "q@1"}, "/api/bindings/a%2Fb/e/x:y/q/q@1"},
	} {
		if got := path(tc.segs...); got != tc.want {
			t.Errorf("path(%q) = %s, want %s", tc.segs, got, tc.want)
		}
	}
}

func TestCleanReason(t *testing.T) {
	in := "Validation failed\n\n[{&lt;&lt;\"bogus-key\"&gt;&gt;,1}] are not recognised policy settings\n"
	want := `Validation failed: [{<<"bogus-key">>,1}] are not recognised policy settings`
	if got := cleanReason(in); got != want {
		t.Errorf("cleanReason = %q, want %q", got, want)
	}
}

func TestBindingResource(t *testing.T) {
	plain := bindingResource("rabbitmq/e", "v", "x", "queue", "q", "k", nil)
	if plain != "rabbitmq/e/binding/v/x/queue/q/k" {
		t.Errorf("without arguments: %s", plain)
	}
	a := bindingResource("rabbitmq/e", "v", "x", "queue", "q", "", map[string]any{"x-match": "all", "type": "a"})
	b := bindingResource("rabbitmq/e", "v", "x", "queue", "q", "", map[string]any{"x-match": "all", "type": "b"})
	again := bindingResource("rabbitmq/e", "v", "x", "queue", "q", "", map[string]any{"type": "a", "x-match": "all"})
	if a == b || a != again || !strings.HasPrefix(a, "rabbitmq/e/binding/v/x/queue/q/@args-") {
		t.Errorf("with arguments: %s, %s, %s", a, b, again)
	}
}
