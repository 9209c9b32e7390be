package buckets

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Canned policy names accepted in bucket.policy.
const (
	CannedPrivate  = "private"
	CannedDownload = "download"
	CannedUpload   = "upload"
	CannedPublic   = "public"
)

// CannedPolicy returns the anonymous-access document that `mc anonymous set
// NAME ALIAS/BUCKET` writes on a bucket that has no policy yet (minio-go's
// pkg/policy.SetPolicy with an empty prefix, which is what mc calls), byte
// for byte, so a bucket set up by hand with mc plans as in sync. private is
// "no policy" and returns nil. The documents are plain AWS policy grammar and
// work on any S3 endpoint.
func CannedPolicy(name, bucket string) ([]byte, error) {
	arn := "arn:aws:s3:::" + bucket
	var bucketActions, objectActions []string
	switch name {
	case CannedPrivate:
		return nil, nil
	case CannedDownload:
		bucketActions = []string{"s3:GetBucketLocation", "s3:ListBucket"}
		objectActions = []string{"s3:GetObject"}
	case CannedUpload:
		bucketActions = []string{"s3:GetBucketLocation", "s3:ListBucketMultipartUploads"}
		objectActions = []string{"s3:AbortMultipartUpload", "s3:DeleteObject", "s3:ListMultipartUploadParts", "s3:PutObject"}
	case CannedPublic:
		bucketActions = []string{"s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"}
		objectActions = []string{"s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"}
	default:
		return nil, fmt.Errorf("unknown canned policy %q (want private, download, upload or public)", name)
	}
	// Field order and the empty Sid mirror minio-go's policy.Statement
	// marshalling, which is what mc sends.
	type principal struct {
		AWS []string `json:"AWS"`
	}
	type statement struct {
		Action    []string  `json:"Action"`
		Effect    string    `json:"Effect"`
		Principal principal `json:"Principal"`
		Resource  []string  `json:"Resource"`
		Sid       string    `json:"Sid"`
	}
	doc := struct {
		Version   string      `json:"Version"`
		Statement []statement `json:"Statement"`
	}{
		Version: "2012-10-17",
		Statement: []statement{
			{Action: bucketActions, Effect: "Allow", Principal: principal{AWS: []string{"*"}}, Resource: []string{arn}},
			{Action: objectActions, Effect: "Allow", Principal: principal{AWS: []string{"*"}}, Resource: []string{arn + "/*"}},
		},
	}
	return json.Marshal(doc)
}

// normalPolicy is a bucket policy reduced to a canonical form: two
// documents that grant the same thing have equal Canonical strings however
// they were written (key order, single strings vs one-element arrays, order
// of statements, actions and resources, "Principal": "*" vs {"AWS": "*"},
// an empty Sid or Condition).
type normalPolicy struct {
	// Canonical is the whole normalised document as JSON; "" means no policy.
	Canonical string
	// Statements are the normalised statements, sorted, each as JSON.
	Statements []string
}

// normalizePolicy parses and normalises a policy document. Empty input (or
// JSON null) means no policy.
func normalizePolicy(doc []byte) (normalPolicy, error) {
	doc = bytes.TrimSpace(doc)
	if len(doc) == 0 || string(doc) == "null" {
		return normalPolicy{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var top map[string]any
	if err := dec.Decode(&top); err != nil {
		return normalPolicy{}, fmt.Errorf("parse policy: %w", err)
	}
	if top == nil {
		return normalPolicy{}, fmt.Errorf("parse policy: not a JSON object")
	}
	var stmts []any
	switch s := top["Statement"].(type) {
	case nil:
	case []any:
		stmts = s
	case map[string]any:
		stmts = []any{s}
	default:
		return normalPolicy{}, fmt.Errorf("parse policy: Statement is neither an object nor a list")
	}
	seen := map[string]bool{}
	var out []string
	for i, s := range stmts {
		m, ok := s.(map[string]any)
		if !ok {
			return normalPolicy{}, fmt.Errorf("parse policy: Statement[%d] is not an object", i)
		}
		n, err := normalizeStatement(m)
		if err != nil {
			return normalPolicy{}, fmt.Errorf("parse policy: Statement[%d]: %w", i, err)
		}
		b, err := json.Marshal(n)
		if err != nil {
			return normalPolicy{}, fmt.Errorf("parse policy: %w", err)
		}
		// A repeated statement grants nothing more than one copy.
		if !seen[string(b)] {
			seen[string(b)] = true
			out = append(out, string(b))
		}
	}
	sort.Strings(out)
	canon := map[string]any{}
	for k, v := range top {
		if k == "Statement" {
			continue
		}
		if s, ok := v.(string); ok && s == "" {
			continue
		}
		canon[k] = v
	}
	raw := make([]json.RawMessage, len(out))
	for i, s := range out {
		raw[i] = json.RawMessage(s)
	}
	canon["Statement"] = raw
	b, err := json.Marshal(canon)
	if err != nil {
		return normalPolicy{}, fmt.Errorf("parse policy: %w", err)
	}
	return normalPolicy{Canonical: string(b), Statements: out}, nil
}

// listKeys hold a string or a list of strings whose order does not matter.
var listKeys = []string{"Action", "NotAction", "Resource", "NotResource"}

func normalizeStatement(m map[string]any) (map[string]any, error) {
	n := map[string]any{}
	for k, v := range m {
		switch {
		case slices.Contains(listKeys, k):
			l, err := stringSet(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			n[k] = l
		case k == "Principal" || k == "NotPrincipal":
			p, err := normalizePrincipal(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			n[k] = p
		case k == "Condition":
			c, err := normalizeCondition(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if len(c) > 0 {
				n[k] = c
			}
		case k == "Sid":
			// An empty Sid (mc writes one) is the same as none.
			if s, ok := v.(string); !ok || s != "" {
				n[k] = v
			}
		default:
			n[k] = v
		}
	}
	return n, nil
}

// normalizePrincipal makes "*" and {"AWS": "*"} the same (both mean
// everyone, anonymous included) and sorts each principal list.
func normalizePrincipal(v any) (map[string][]string, error) {
	if s, ok := v.(string); ok {
		if s != "*" {
			return nil, fmt.Errorf("principal %q: want \"*\" or an object", s)
		}
		return map[string][]string{"AWS": {"*"}}, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want \"*\" or an object")
	}
	out := map[string][]string{}
	for k, pv := range m {
		l, err := stringSet(pv)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = l
	}
	return out, nil
}

// normalizeCondition sorts the values of each condition key; scalar values
// (true, 10) compare equal to their string forms ("true", "10"), as S3
// evaluates them.
func normalizeCondition(v any) (map[string]map[string][]string, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want an object")
	}
	out := map[string]map[string][]string{}
	for op, kv := range m {
		km, ok := kv.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: want an object", op)
		}
		if len(km) == 0 {
			continue
		}
		ko := map[string][]string{}
		for k, vals := range km {
			l, err := stringSet(vals)
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", op, k, err)
			}
			ko[k] = l
		}
		out[op] = ko
	}
	return out, nil
}

// stringSet turns a scalar or a list of scalars into a sorted list without
// duplicates.
func stringSet(v any) ([]string, error) {
	var in []any
	switch x := v.(type) {
	case []any:
		in = x
	default:
		in = []any{x}
	}
	out := make([]string, 0, len(in))
	for _, e := range in {
		switch s := e.(type) {
		case string:
			out = append(out, s)
		case json.Number:
			out = append(out, s.String())
		case bool:
			out = append(out, strconv.FormatBool(s))
		default:
			return nil, fmt.Errorf("want a string or a list of strings")
		}
	}
	sort.Strings(out)
	return slices.Compact(out), nil
}

// summarizeStatement renders a normalised statement for a Detail line:
// "Allow AWS:* s3:GetObject on arn:aws:s3:::b/*".
func summarizeStatement(s string) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return s
	}
	var parts []string
	if e, ok := m["Effect"].(string); ok {
		parts = append(parts, e)
	}
	for _, k := range []string{"Principal", "NotPrincipal"} {
		p, ok := m[k].(map[string]any)
		if !ok {
			continue
		}
		var ps []string
		for pk, pv := range p {
			ps = append(ps, pk+":"+joinAny(pv))
		}
		sort.Strings(ps)
		prefix := ""
		if k == "NotPrincipal" {
			prefix = "not "
		}
		parts = append(parts, prefix+strings.Join(ps, ","))
	}
	for _, k := range []string{"Action", "NotAction"} {
		if v, ok := m[k]; ok {
			prefix := ""
			if k == "NotAction" {
				prefix = "all but "
			}
			parts = append(parts, prefix+joinAny(v))
		}
	}
	for _, k := range []string{"Resource", "NotResource"} {
		if v, ok := m[k]; ok {
			prefix := "on "
			if k == "NotResource" {
				prefix = "on all but "
			}
			parts = append(parts, prefix+joinAny(v))
		}
	}
	if _, ok := m["Condition"]; ok {
		parts = append(parts, "with conditions")
	}
	return strings.Join(parts, " ")
}

func joinAny(v any) string {
	l, ok := v.([]any)
	if !ok {
		return fmt.Sprint(v)
	}
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = fmt.Sprint(e)
	}
	return strings.Join(s, ",")
}

// policyDiff says how current differs from desired, statement by statement.
func policyDiff(current, desired normalPolicy) string {
	if current.Canonical == "" {
		return "no policy"
	}
	var adds, removes []string
	for _, s := range desired.Statements {
		if !slices.Contains(current.Statements, s) {
			adds = append(adds, summarizeStatement(s))
		}
	}
	for _, s := range current.Statements {
		if !slices.Contains(desired.Statements, s) {
			removes = append(removes, summarizeStatement(s))
		}
	}
	var parts []string
	if len(removes) > 0 {
		parts = append(parts, "remove ["+strings.Join(removes, "; ")+"]")
	}
	if len(adds) > 0 {
		parts = append(parts, "add ["+strings.Join(adds, "; ")+"]")
	}
	if len(parts) == 0 {
		// Same statements, different top-level fields (Version, Id).
		return "document fields differ"
	}
	return strings.Join(parts, ", ")
}
