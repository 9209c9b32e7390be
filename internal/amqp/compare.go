package amqp

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// normalize turns a value decoded from YAML, JSON or AMQP into one canonical
// form so that semantically equal values compare equal: every number
// becomes float64 (60000, 60000.0, json.Number("60000") and int32(60000)
// are the same), maps become map[string]any, lists []any.
func normalize(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case json.Number:
		if f, err := x.Float64(); err == nil {
			return f
		}
		return x.String()
	case int:
		return float64(x)
	case int8:
		return float64(x)
	case int16:
		return float64(x)
	case int32:
		return float64(x)
	case int64:
		return float64(x)
	case uint:
		return float64(x)
	case uint8:
		return float64(x)
	case uint16:
		return float64(x)
	case uint32:
		return float64(x)
	case uint64:
		return float64(x)
	case float32:
		return float64(x)
	case float64:
		return x
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case amqp091.Table:
		return normalize(map[string]any(x))
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out
	default:
		return v
	}
}

// equalArgs compares two argument maps or policy definitions semantically;
// nil and empty are the same.
func equalArgs(a, b map[string]any) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(normalize(a), normalize(b))
}

// diffArgs lists the keys whose values differ, sorted, with both values:
// `x-message-ttl: 60000 on the server, 30000 in the config`.
func diffArgs(server, want map[string]any) []string {
	s, _ := normalize(server).(map[string]any)
	w, _ := normalize(want).(map[string]any)
	keys := map[string]bool{}
	for k := range s {
		keys[k] = true
	}
	for k := range w {
		keys[k] = true
	}
	var out []string
	for _, k := range sortedKeys(keys) {
		sv, sok := s[k]
		wv, wok := w[k]
		if sok && wok && reflect.DeepEqual(sv, wv) {
			continue
		}
		out = append(out, fmt.Sprintf("argument %s is %s on the server, %s in the config", k, showArg(sv, sok), showArg(wv, wok)))
	}
	return out
}

func showArg(v any, ok bool) string {
	if !ok {
		return "absent"
	}
	return show(v)
}

// show renders a normalized value compactly for a Detail or Drift text.
func show(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// toTable converts config arguments (YAML-decoded) into AMQP field values:
// integral numbers become int64 (RabbitMQ takes a signed long for TTLs,
// lengths and limits), nested maps amqp091.Table.
func toTable(args map[string]any) amqp091.Table {
	if len(args) == 0 {
		return nil
	}
	t := make(amqp091.Table, len(args))
	for k, v := range args {
		t[k] = toField(v)
	}
	return t
}

func toField(v any) any {
	switch x := normalize(v).(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
			return int64(x)
		}
		return x
	case map[string]any:
		return toTable(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = toField(e)
		}
		return out
	case time.Time, bool, string, nil:
		return x
	default:
		return fmt.Sprint(x)
	}
}

// toJSONArgs converts config arguments for the management API: integral
// numbers are sent as JSON integers, as RabbitMQ requires for TTLs and
// lengths.
func toJSONArgs(args map[string]any) map[string]any {
	out := make(map[string]any, len(args))
	for k, v := range args {
		out[k] = toJSONField(v)
	}
	return out
}

func toJSONField(v any) any {
	switch x := normalize(v).(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
		return x
	case map[string]any:
		return toJSONArgs(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = toJSONField(e)
		}
		return out
	default:
		return x
	}
}

// cleanTags trims, drops empty entries, sorts and de-duplicates tags so
// that tag lists compare as sets.
func cleanTags(tags []string) []string {
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func showTags(tags []string) string {
	if len(tags) == 0 {
		return "[]"
	}
	return "[" + strings.Join(tags, ",") + "]"
}

// argsKey is a canonical text of an argument map, used to identify a
// binding (bindings differing only in arguments are different bindings).
func argsKey(args map[string]any) string {
	if len(args) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(normalize(args)) // map keys are sorted by encoding/json
	return string(b)
}
