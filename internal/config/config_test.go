package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func noEnv(string) (string, bool) { return "", false }

// TestInvalidGolden loads every testdata/invalid/*.yaml and compares the
// problems, one per line, with the .golden file beside it.
func TestInvalidGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Load(data, noEnv)
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("want Problems, got %v", err)
			}
			got := ps.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(want) {
				t.Errorf("problems differ from %s:\n--- got\n%s--- want\n%s", golden, got, want)
			}
			if strings.Contains(got, "hunter2") {
				t.Errorf("an inline credential was echoed:\n%s", got)
			}
		})
	}
}

func TestExamplesLoad(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*.yaml")
	if len(files) == 0 {
		t.Fatal("no examples")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Load(data, noEnv); err != nil {
				t.Fatalf("%s:\n%v", f, err)
			}
		})
	}
}

const minimal = `
version: 1
postgres:
  - name: health
    host: db
    admin:
      password: {secret: pg-admin}
`

func TestDefaults(t *testing.T) {
	c, err := Load([]byte(minimal), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Postgres[0]
	if p.Port != 5432 || p.SSLMode != "prefer" || p.Admin.User != "postgres" || p.Admin.Database != "postgres" {
		t.Errorf("postgres defaults not applied: %+v", p)
	}
	if c.Defaults.WaitTimeout.Duration.String() != "5m0s" || c.Defaults.Concurrency != 6 {
		t.Errorf("defaults not applied: %+v", c.Defaults)
	}
	if c.Secrets.Source.Type != "env" || c.Secrets.Output.Type != "none" || c.Secrets.Generate.Length != 32 {
		t.Errorf("secrets defaults not applied: %+v", c.Secrets)
	}
}

func TestExpand(t *testing.T) {
	env := map[string]string{"HOST": "db.example", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct{ in, want, err string }{
		{in: "host: ${HOST}", want: "host: db.example"},
		{in: "host: ${MISSING:-fallback}", want: "host: fallback"},
		{in: "host: ${EMPTY:-fallback}", want: "host: fallback"},
		{in: "host: ${EMPTY}", want: "host: "},
		{in: "pattern: '^a.*$'", want: "pattern: '^a.*$'"},
		{in: "cost: $$5", want: "cost: $5"},
		{in: "# ${NOT_EXPANDED_IN_COMMENTS}", want: "# ${NOT_EXPANDED_IN_COMMENTS}"},
		{in: "a: 1\nhost: ${MISSING}", err: "line 2: environment variable MISSING is not set"},
		{in: "host: ${1BAD}", err: `line 1: bad variable reference "${1BAD}"`},
	} {
		got, err := Expand([]byte(tc.in), lookup)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Expand(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("Expand(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestProblems checks single mistakes, each reported at its path.
func TestProblems(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"syntax error names the line", "version: 1\npostgres: [\n", "line 2"},
		{"tab indentation", "version: 1\npostgres:\n\t- name: x\n", "line 3"},
		{"empty", "", "config is empty"},
		{"unknown top-level key", "version: 1\npostgress: []\n", `postgress: unknown field (line 2); did you mean "postgres"?`},
		{"wrong kind", "version: 1\npostgres: {}\n", "postgres: want a list, got a mapping (line 2)"},
		{"string for int", minimal + "    port: abc\n", `postgres[0].port: want an integer, got a str "abc" (line 8)`},
		{"inline secret ref key", "version: 1\nredis:\n  - {name: r, address: 'h:1', password: {secret: a, value: b}}\n", "redis[0].password.value: unknown field"},
		{"login role without password", minimal + "    roles: [{name: app}]\n", "postgres[0].roles[0].password: is required for a login role"},
		{"reserved role", minimal + "    roles: [{name: pg_app, login: false}]\n", "postgres[0].roles[0].name: role names starting with pg_ are reserved"},
		{"quote in name", minimal + "    databases: [{name: \"a'b\"}]\n", `postgres[0].databases[0].name: invalid name "a'b"`},
		{"create strategy", minimal + "    databases: [{name: d, strategy: FILE_COPY}]\n", `postgres[0].databases[0].strategy: must be wal_log or file_copy, got "FILE_COPY"`},
		{"bucket name", "version: 1\nminio:\n  - {name: m, endpoint: 'h:9000', accessKey: {secret: a}, secretKey: {secret: b}, buckets: [{name: Bad_Bucket}]}\n", "minio[0].buckets[0].name: invalid name"},
		{"endpoint with scheme", "version: 1\nminio:\n  - {name: m, endpoint: 'http://h:9000', accessKey: {secret: a}, secretKey: {secret: b}}\n", "minio[0].endpoint: want host:port without a scheme"},
		{"env source cannot generate", minimal + "secrets: {generate: {enabled: true}}\n", "secrets.generate.enabled: the env source cannot store generated secrets"},
		{"ocivault needs key to generate", minimal + "secrets: {source: {type: ocivault, ocivault: {vaultId: ocid1.vault.oc1..x, region: r}}, generate: {enabled: true}}\n", "secrets.source.ocivault.keyId: is required"},
		{"sealed output needs secrets", minimal + "secrets: {output: {type: sealed, namespace: ns}}\n", "secrets.kubernetesSecrets: output.type is \"sealed\""},
		{"duplicate instance", minimal + "  - name: health\n    host: db2\n    admin: {password: {secret: x}}\n", `postgres[1].name: duplicate postgres instance "health"`},
		{"bad secret name", "version: 1\nredis:\n  - {name: r, address: 'h:1', password: {secret: 'a b'}}\n", `redis[0].password: invalid secret name "a b"`},
		{"policy regex", "version: 1\nrabbitmq:\n  - name: q\n    host: h\n    user: u\n    password: {secret: p}\n    policies: [{vhost: /, name: p, pattern: '(', definition: {max-length: 1}}]\n", "rabbitmq[0].policies[0].pattern: invalid regular expression"},
		{"stream must be durable", "version: 1\nrabbitmq:\n  - name: q\n    host: h\n    user: u\n    password: {secret: p}\n    queues: [{vhost: /, name: s, type: stream, durable: false}]\n", "rabbitmq[0].queues[0].durable: stream queues are always durable"},
		{"grant schema undeclared", minimal + "    roles: [{name: r, login: false}]\n    databases: [{name: d}]\n    grants: [{role: r, database: d, schema: s, on: tables, privileges: [SELECT]}]\n", `postgres[0].grants[0].schema: schema "s" is not declared in database "d"`},
		{"lifecycle without action", "version: 1\nminio:\n  - {name: m, endpoint: 'h:1', accessKey: {secret: a}, secretKey: {secret: b}, buckets: [{name: abc, lifecycle: [{id: x}]}]}\n", "minio[0].buckets[0].lifecycle[0]: needs at least one of"},
		{"bad json policy", "version: 1\nminio:\n  - {name: m, endpoint: 'h:1', accessKey: {secret: a}, secretKey: {secret: b}, buckets: [{name: abc, policy: '{nope'}]}\n", "minio[0].buckets[0].policy: not a valid JSON policy document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load([]byte(tc.doc), noEnv)
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error:\n%v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLessPath(t *testing.T) {
	if !lessPath("roles[2].name", "roles[10].name") || lessPath("roles[10]", "roles[2]") {
		t.Error("indexes must sort numerically")
	}
}

// FuzzLoad: no input makes Load panic or run on (the hostile shapes are
// seeds: mutations of alias bombs must stop too), and every failure is
// Problems with lines of the form "path: reason".
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("../../examples/*.yaml")
	more, _ := filepath.Glob("testdata/invalid/*.yaml")
	for _, p := range append(files, more...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(minimal))
	f.Add([]byte("version: 1\npostgres: [{name: a, host: b, admin: {password: x}}]\n"))
	for _, h := range hostileDocs() {
		if len(h.doc) <= 8<<10 {
			f.Add([]byte(h.doc))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := loadWithin(t, data, 5*time.Second)
		if err == nil {
			if c == nil {
				t.Fatal("nil config without error")
			}
			return
		}
		var ps Problems
		if !errors.As(err, &ps) || len(ps) == 0 {
			t.Fatalf("error is not Problems: %v", err)
		}
		for _, p := range ps {
			if p.Reason == "" {
				t.Fatalf("problem without reason at %q", p.Path)
			}
		}
	})
}

// redisUsersDoc is a valid Redis instance connecting as admin "boot" with
// the given users block (YAML flow list items, one per line).
func redisUsersDoc(users ...string) string {
	doc := "version: 1\nsecrets: {source: {type: file, file: {dir: /run/secrets}}}\nredis:\n  - name: r\n    address: 'h:6379'\n    username: boot\n    password: {secret: redis-admin}\n    users:\n"
	for _, u := range users {
		doc += "      - " + u + "\n"
	}
	return doc
}

// TestRedisUsers checks each mistake in a Redis ACL user, reported at its
// path, and that a valid declaration loads with its secret referenced.
func TestRedisUsers(t *testing.T) {
	ok := redisUsersDoc(
		`{name: "health.api:v1", password: {secret: redis-app}, rules: ["~health:*", "+@all", "-@dangerous", "&chan:*", "on"], rotation: {every: 720h, grace: 10m}}`,
		`{name: reader_2, password: {secret: redis-reader}}`,
	)
	c, err := Load([]byte(ok), noEnv)
	if err != nil {
		t.Fatalf("valid users: %v", err)
	}
	if u := c.Redis[0].Users[0]; u.Rotation == nil || len(u.Rules) != 5 {
		t.Errorf("user not decoded: %+v", u)
	}
	refs := c.SecretRefs(func(string) bool { return true }, false)
	if refs["redis-app"] != "redis[0].users[0].password" || refs["redis-reader"] != "redis[0].users[1].password" {
		t.Errorf("users' secrets not referenced: %v", refs)
	}
	if rs := c.Rotating(func(string) bool { return true }); len(rs) != 1 || rs[0].Kind != "redis" || rs[0].Identities() != [2]string{"health.api:v1", "health.api:v1"} {
		t.Errorf("rotating: %+v", rs)
	}

	const pw = "{secret: s}"
	for _, tc := range []struct {
		name  string
		users []string
		want  string
	}{
		{"name required", []string{`{password: ` + pw + `}`}, "redis[0].users[0].name: is required"},
		{"name syntax", []string{`{name: "a b", password: ` + pw + `}`}, `redis[0].users[0].name: invalid name "a b"`},
		{"name with a slash", []string{`{name: "a/b", password: ` + pw + `}`}, `redis[0].users[0].name: invalid name "a/b"`},
		{"default user", []string{`{name: default, password: ` + pw + `}`}, `redis[0].users[0].name: "default" is the user of clients that send no name`},
		{"admin user", []string{`{name: boot, password: ` + pw + `}`}, `redis[0].users[0].name: "boot" is the user bootstrap connects as`},
		{"duplicate", []string{`{name: app, password: {secret: s1}}`, `{name: app, password: {secret: s2}}`}, `redis[0].users[1].name: duplicate user "app" (first at redis[0].users[0].name)`},
		{"password required", []string{`{name: app}`}, "redis[0].users[0].password: is required: {secret: NAME}"},
		{"password inline", []string{`{name: app, password: hunter2}`}, "redis[0].users[0].password: credentials are never written inline"},
		{"empty rule", []string{`{name: app, password: ` + pw + `, rules: ["+@all", ""]}`}, "redis[0].users[0].rules[1]: is empty"},
		{"whitespace", []string{`{name: app, password: ` + pw + `, rules: ["~a:* +@all"]}`}, "redis[0].users[0].rules[0]: holds whitespace: give each ACL rule as its own list item"},
		{"selector", []string{`{name: app, password: ` + pw + `, rules: ["(~a:* +get)"]}`}, "redis[0].users[0].rules[0]: holds whitespace: selectors"},
		{"add password", []string{`{name: app, password: ` + pw + `, rules: [">hunter2"]}`}, `redis[0].users[0].rules[0]: a rule starting with ">" sets or removes a password`},
		{"remove password", []string{`{name: app, password: ` + pw + `, rules: ["+@all", "<hunter2"]}`}, `redis[0].users[0].rules[1]: a rule starting with "<"`},
		{"hashed password", []string{`{name: app, password: ` + pw + `, rules: ["#abc"]}`}, `redis[0].users[0].rules[0]: a rule starting with "#"`},
		{"remove hash", []string{`{name: app, password: ` + pw + `, rules: ["!abc"]}`}, `redis[0].users[0].rules[0]: a rule starting with "!"`},
		{"password rule with a space", []string{`{name: app, password: ` + pw + `, rules: ["> hunter2"]}`}, `redis[0].users[0].rules[0]: a rule starting with ">"`},
		{"nopass", []string{`{name: app, password: ` + pw + `, rules: [nopass]}`}, `redis[0].users[0].rules[0]: rule "nopass" changes the user's passwords`},
		{"resetpass", []string{`{name: app, password: ` + pw + `, rules: [ResetPass]}`}, `redis[0].users[0].rules[0]: rule "ResetPass" changes the user's passwords`},
		{"reset", []string{`{name: app, password: ` + pw + `, rules: [reset]}`}, `redis[0].users[0].rules[0]: rule "reset" changes the user's passwords`},
		{"off", []string{`{name: app, password: ` + pw + `, rules: [off]}`}, `redis[0].users[0].rules[0]: rule "off" disables the user`},
		{"rotation every", []string{`{name: app, password: ` + pw + `, rotation: {every: -1h}}`}, "redis[0].users[0].rotation.every: want a positive duration"},
		{"rotation grace", []string{`{name: app, password: ` + pw + `, rotation: {every: 1h, grace: 2h}}`}, "redis[0].users[0].rotation.grace: must be shorter than every"},
		{"rotation secret shared", []string{`{name: a, password: ` + pw + `, rotation: {}}`, `{name: b, password: ` + pw + `, rotation: {}}`}, `redis[0].users[1].password: secret "s" rotates with redis[0].users[0] already`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load([]byte(redisUsersDoc(tc.users...)), noEnv)
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error:\n%v\nwant it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("a password was echoed:\n%v", err)
			}
		})
	}
}

// TestRedisUsersDefaultAdmin: with no username the instance connects as
// "default", which no declared user may be.
func TestRedisUsersDefaultAdmin(t *testing.T) {
	doc := "version: 1\nredis:\n  - name: r\n    address: 'h:6379'\n    users: [{name: default, password: {secret: s}}, {name: app, password: {secret: s2}}]\n"
	_, err := Load([]byte(doc), noEnv)
	if err == nil || !strings.Contains(err.Error(), `redis[0].users[0].name: "default"`) {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), "users[1]") {
		t.Errorf("a valid user is reported: %v", err)
	}
}
