package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Documents built to make a YAML loader do far more work than their size
// suggests. Each is a few kilobytes at most.

func list(item string, n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = item
	}
	return "[" + strings.Join(items, ", ") + "]"
}

// rmqDefinition puts entries into a policy definition, a map of anything
// that the field walker does not descend into but the decoder does.
func rmqDefinition(entries string) string {
	return "version: 1\nrabbitmq:\n  - name: q\n    host: h\n    user: u\n    password: {secret: p}\n" +
		"    policies:\n      - vhost: /\n        name: p\n        pattern: x\n        definition:\n" + entries
}

// laughs is the classic billion laughs: list l(i) holds width aliases of
// l(i-1), width^depth strings in all.
func laughs(depth, width int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "          l0: &l0 %s\n", list("lol", width))
	for i := 1; i <= depth; i++ {
		fmt.Fprintf(&b, "          l%d: &l%d %s\n", i, i, list(fmt.Sprintf("*l%d", i-1), width))
	}
	return rmqDefinition(b.String())
}

// typed nests anchors through the config's own lists (postgres ->
// databases -> schemas), which the field walker follows: width³ schemas.
func typed(width int) string {
	return "version: 1\npostgres:\n  - &p {name: h, host: db, admin: {password: {secret: a}}, databases: [&d {name: d, schemas: [&s {name: s}" +
		strings.Repeat(", *s", width-1) + "]}" + strings.Repeat(", *d", width-1) + "]}\n" + strings.Repeat("  - *p\n", width-1)
}

// fanout aliases one anchored sequence from every role: width² names.
func fanout(width int) string {
	var b strings.Builder
	b.WriteString("version: 1\npostgres:\n  - name: h\n    host: db\n    admin: {password: {secret: a}}\n    roles:\n")
	names := make([]string, width)
	for i := range names {
		names[i] = fmt.Sprintf("a%d", i)
	}
	fmt.Fprintf(&b, "      - {name: r0, login: false, inRoles: &in [%s]}\n", strings.Join(names, ", "))
	for i := 1; i < width; i++ {
		fmt.Fprintf(&b, "      - {name: r%d, login: false, inRoles: *in}\n", i)
	}
	return b.String()
}

// merged merges a mapping of keys entries width times into the next, depth
// levels deep, with <<.
func merged(depth, width, keys int) string {
	var b strings.Builder
	ks := make([]string, keys)
	for i := range ks {
		ks[i] = fmt.Sprintf("k%d: v", i)
	}
	fmt.Fprintf(&b, "          m0: &m0 {%s}\n", strings.Join(ks, ", "))
	for i := 1; i <= depth; i++ {
		fmt.Fprintf(&b, "          m%d: &m%d {<<: %s, x%d: v}\n", i, i, list(fmt.Sprintf("*m%d", i-1), width), i)
	}
	return rmqDefinition(b.String())
}

// mergedStructs merges a whole redis entry width times into each of width
// entries.
func mergedStructs(width int) string {
	var b strings.Builder
	b.WriteString("version: 1\nredis:\n  - &r {name: r, address: 'h:1', password: {secret: a}, expect: {role: master}}\n")
	for i := 1; i < width; i++ {
		fmt.Fprintf(&b, "  - {<<: %s, name: r%d}\n", list("*r", width), i)
	}
	return b.String()
}

// wideTags is one mapping of n keys, all the same key when same.
func wideTags(n int, same bool) string {
	var b strings.Builder
	b.WriteString("version: 1\nminio:\n  - name: m\n    endpoint: 'h:9000'\n    accessKey: {secret: a}\n    secretKey: {secret: b}\n" +
		"    buckets:\n      - name: abc\n        tags:\n")
	for i := 0; i < n; i++ {
		if same {
			b.WriteString("          k: v\n")
		} else {
			fmt.Fprintf(&b, "          k%d: v\n", i)
		}
	}
	return b.String()
}

type hostileDoc struct {
	name, doc string
	want      string // the start of the one problem: a path, then the reason
}

func hostileDocs() []hostileDoc {
	const past, mostly = "takes the document past 100000 nodes", "makes aliases "
	def := "rabbitmq[0].policies[0].definition."
	return []hostileDoc{
		{"laughs depth 3 width 10", laughs(3, 10), def + "l3[4]: alias *l2 (line 15) " + mostly},
		{"laughs depth 9 width 10", laughs(9, 10), def + "l3[4]: alias *l2 (line 15) " + mostly},
		{"laughs depth 4 width 50", laughs(4, 50), def + "l2[4]: alias *l1 (line 14) " + mostly},
		{"laughs depth 2 width 1000", laughs(2, 1000), def + "l1[99]: alias *l0 (line 13) " + past},
		{"laughs depth 30 width 2", laughs(30, 2), def + "l10[0]: alias *l9 (line 22) " + mostly},
		{"typed width 50", typed(50), "postgres[1]: alias *p (line 4) " + mostly},
		{"typed width 200", typed(200), "postgres[0].databases[31]: alias *d (line 3) " + mostly},
		{"typed width 400", typed(400), "postgres[0].databases[28]: alias *d (line 3) " + mostly},
		{"fanout width 1000", fanout(1000), "postgres[0].roles[100].inRoles: alias *in (line 107) " + past},
		{"fanout width 3000", fanout(3000), "postgres[0].roles[34].inRoles: alias *in (line 41) " + past},
		{"merge depth 3 width 10 keys 100", merged(3, 10, 100), def + `m3["<<"][0]: alias *m2 (line 15) ` + mostly},
		{"merge depth 5 width 10 keys 10", merged(5, 10, 10), def + `m3["<<"][2]: alias *m2 (line 15) ` + mostly},
		{"merge depth 2 width 100 keys 1000", merged(2, 100, 1000), def + `m1["<<"][49]: alias *m0 (line 13) ` + past},
		{"merge into structs", mergedStructs(100), `redis[77]["<<"][92]: alias *r (line 80) ` + past},
		{"alias containing itself", rmqDefinition("          a: &a [x, *a]\n"), def + "a[1]: alias *a (line 12) refers to a node that contains it"},
		{"mapping too wide", wideTags(3000, false), "minio[0].buckets[0].tags: mapping has 3000 keys (line 10), more than the 1000 allowed"},
		{"one key a thousand times", wideTags(1000, true), "minio[0].buckets[0].tags.k: duplicate key: first at line 10, again at line 11, 1000 times in all"},
	}
}

// loadWithin runs Load and fails the test if it has not returned within d:
// hostile input must stop the work, not merely slow it down.
func loadWithin(t testing.TB, data []byte, d time.Duration) (*Config, error) {
	t.Helper()
	type result struct {
		c   *Config
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := Load(data, noEnv)
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		return r.c, r.err
	case <-time.After(d):
		t.Fatalf("Load still running after %v on %d bytes", d, len(data))
		return nil, nil
	}
}

// TestHostile: every hostile shape stops with one problem that names where
// the limit was hit: no decoder message without a path, no cascade.
func TestHostile(t *testing.T) {
	for _, tc := range hostileDocs() {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadWithin(t, []byte(tc.doc), 5*time.Second)
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("want Problems, got %v", err)
			}
			if len(ps) != 1 || !strings.HasPrefix(ps[0].String(), tc.want) {
				t.Errorf("%d bytes; problems:\n%v\nwant one starting %q", len(tc.doc), ps, tc.want)
			}
		})
	}
}

// TestAliasesKeepWorking: anchors, aliases and merges as a person writes
// them load to the same config as the same file written out in full.
func TestAliasesKeepWorking(t *testing.T) {
	const withAliases = `
version: 1
postgres:
  - name: health
    host: db
    admin: {password: {secret: pg-admin}}
    roles:
      - {name: reader, login: false}
      - {name: app, password: {secret: pg-app}, inRoles: &readers [reader]}
      - {name: etl, password: {secret: pg-etl}, inRoles: *readers}
    databases:
      - name: healthdb
        owner: app
        extensions: &ext [pgcrypto, uuid-ossp]
        schemas: &schemas [{name: ingest, owner: app}, {name: curated, owner: app}]
      - {name: authdb, owner: app, extensions: *ext, schemas: *schemas}
rabbitmq:
  - name: events
    host: mq
    user: user
    password: {secret: mq}
    vhosts: [{name: health}]
    queues:
      - {vhost: health, name: a, type: quorum, arguments: &qargs {x-delivery-limit: 5}}
      - {vhost: health, name: b, type: quorum, arguments: {<<: *qargs, x-max-length: 10}}
`
	const writtenOut = `
version: 1
postgres:
  - name: health
    host: db
    admin: {password: {secret: pg-admin}}
    roles:
      - {name: reader, login: false}
      - {name: app, password: {secret: pg-app}, inRoles: [reader]}
      - {name: etl, password: {secret: pg-etl}, inRoles: [reader]}
    databases:
      - name: healthdb
        owner: app
        extensions: [pgcrypto, uuid-ossp]
        schemas: [{name: ingest, owner: app}, {name: curated, owner: app}]
      - {name: authdb, owner: app, extensions: [pgcrypto, uuid-ossp], schemas: [{name: ingest, owner: app}, {name: curated, owner: app}]}
rabbitmq:
  - name: events
    host: mq
    user: user
    password: {secret: mq}
    vhosts: [{name: health}]
    queues:
      - {vhost: health, name: a, type: quorum, arguments: {x-delivery-limit: 5}}
      - {vhost: health, name: b, type: quorum, arguments: {x-delivery-limit: 5, x-max-length: 10}}
`
	got, err := Load([]byte(withAliases), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Load([]byte(writtenOut), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("with aliases:\n%+v\nwritten out:\n%+v", got, want)
	}
}

// fan aliases one anchored list of names from each of roles roles, among
// enough written nodes that aliases are not nearly the whole document; each
// alias adds 1+names nodes.
func fan(roles, names int) string {
	var b strings.Builder
	b.WriteString("version: 1\npostgres:\n  - name: h\n    host: db\n    admin: {password: {secret: a}}\n    roles:\n")
	fmt.Fprintf(&b, "      - {name: r0, login: false, inRoles: &in %s}\n", list("r0", names))
	for i := 1; i < roles; i++ {
		fmt.Fprintf(&b, "      - {name: r%d, login: false, connectionLimit: 1, inRoles: *in}\n", i)
	}
	return b.String()
}

// TestAliasLimits: the limits themselves, at and just past them.
func TestAliasLimits(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"aliases just within", fan(100, 1009), "a role cannot be a member of itself"},
		{"aliases just past", fan(101, 1009), "postgres[0].roles[100].inRoles: alias *in (line 107) takes the document past 100000 nodes"},
		{"keys at the limit", wideTags(MaxMappingKeys, false), "minio[0].buckets[0].tags: at most 50 tags"},
		{"keys past the limit", wideTags(MaxMappingKeys+1, false), "more than the 1000 allowed"},
		{"a duplicate key", "version: 1\nredis:\n  - name: r\n    name: s\n", "redis[0].name: duplicate key: first at line 3, again at line 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadWithin(t, []byte(tc.doc), 5*time.Second)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error:\n%.2000v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// TestLoadFileSize: a file over MaxFileSize is refused naming the file, without
// being read to its end; so is a config that grows past it when expanded.
func TestLoadFileSize(t *testing.T) {
	dir := t.TempDir()
	padded := func(size int) []byte {
		head := minimal + "#"
		return []byte(head + strings.Repeat("x", size-len(head)-1) + "\n")
	}
	at := filepath.Join(dir, "at.yaml")
	over := filepath.Join(dir, "over.yaml")
	if err := os.WriteFile(at, padded(MaxFileSize), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(over, padded(MaxFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(at); err != nil {
		t.Errorf("a file of exactly %d bytes: %v", MaxFileSize, err)
	}
	_, err := LoadFile(over)
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 || ps[0].String() != over+": file is larger than 1 MiB, the limit for a config file" {
		t.Errorf("a file of %d bytes: %v", MaxFileSize+1, err)
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		done := make(chan error, 1)
		go func() { _, err := LoadFile("/dev/zero"); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.HasPrefix(err.Error(), "/dev/zero: file is larger than") {
				t.Errorf("/dev/zero: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("LoadFile(/dev/zero) still reading after 5s")
		}
	}
	big := strings.Repeat("x", 64<<10)
	env := func(string) (string, bool) { return big, true }
	doc := minimal + strings.Repeat("x: ${BIG}\n", 20)
	if _, err := Load([]byte(doc), env); err == nil || !strings.Contains(err.Error(), "after ${VAR} expansion, over the 1 MiB limit") {
		t.Errorf("a config grown past the limit by expansion: %v", err)
	}
}

// BenchmarkLoadHostile measures each family of hostile shape at its
// largest here (the typed one took seconds before the limits), and the
// costliest use of aliases the limits let through to validation.
func BenchmarkLoadHostile(b *testing.B) {
	for _, tc := range []hostileDoc{
		{name: "laughs", doc: laughs(9, 10)},
		{name: "typed", doc: typed(400)},
		{name: "fanout", doc: fanout(3000)},
		{name: "merge", doc: merged(2, 100, 1000)},
		{name: "wide", doc: wideTags(40_000, false)},
		{name: "same key", doc: wideTags(3000, true)},
		{name: "at the alias limit", doc: fan(100, 1009)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			data := []byte(tc.doc)
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Load(data, noEnv); err == nil {
					b.Fatal("loaded")
				}
			}
		})
	}
}
