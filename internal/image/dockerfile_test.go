package image

import (
	"bufio"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the module root, where the Dockerfile and Makefile live.
const repoRoot = "../.."

func parseFile(t *testing.T, p string) *Dockerfile {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	df, err := ParseDockerfile(f)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return df
}

// TestDockerfileAgreesWithBuilder pins what `make image` and `make
// image-docker` share. The builder reads the final stage from the
// Dockerfile, so the Dockerfile owns the image's settings; this checks that
// reading gives what the platform needs (the values the chart and
// DESIGN.md rely on) and that the parts the builder cannot read — the
// build stage's go build and the Makefile's — build the same binary.
func TestDockerfileAgreesWithBuilder(t *testing.T) {
	df := parseFile(t, filepath.Join(repoRoot, "Dockerfile"))
	spec, err := df.Final(map[string]string{"VERSION": "1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	want := Spec{
		Base:       "gcr.io/distroless/static-debian12:nonroot",
		Binary:     "/usr/local/bin/bootstrap",
		BinaryMode: 0o755,
		CopyFrom:   "build",
		CopySource: "/out/bootstrap",
		User:       "65532:65532",
		WorkingDir: "/home/nonroot",
		Entrypoint: []string{"/usr/local/bin/bootstrap"},
		Cmd:        []string{"version"},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "bootstrap",
			"org.opencontainers.image.description": spec.Labels["org.opencontainers.image.description"],
			"org.opencontainers.image.source":      "https://github.com/health-data-ai/bootstrap",
			"org.opencontainers.image.version":     "1.2.3",
		},
	}
	if !reflect.DeepEqual(spec, want) {
		t.Errorf("Dockerfile final stage:\n got %+v\nwant %+v", spec, want)
	}
	if spec.Labels["org.opencontainers.image.description"] == "" {
		t.Error("no org.opencontainers.image.description label")
	}
	if got := (Options{Spec: spec, Base: BaseDockerfile}).base(); got != spec.Base {
		t.Errorf("--base %s resolves to %q, want the Dockerfile's FROM %q", BaseDockerfile, got, spec.Base)
	}
	if got := (Options{Spec: spec}).base(); got != BaseLocal {
		t.Errorf("the default base is %q, want %q (offline)", got, BaseLocal)
	}

	// The build stage: the stage COPY takes the binary from must run the
	// go build that Compile runs, writing the file COPY takes.
	build := df.Stage(spec.CopyFrom)
	if build == nil {
		t.Fatalf("COPY --from=%s: no such stage", spec.CopyFrom)
	}
	var goBuild string
	for _, in := range build.Instructions {
		if in.Command == "RUN" && strings.Contains(in.Args, "go build") {
			goBuild = strings.Join(strings.Fields(in.Args), " ")
		}
	}
	for _, part := range []string{
		"CGO_ENABLED=0",
		"GOOS=$TARGETOS GOARCH=$TARGETARCH",
		"go build -trimpath",
		`-ldflags "` + LDFlags("${VERSION}") + `"`,
		"-o " + spec.CopySource + " " + Package,
	} {
		if !strings.Contains(goBuild, part) {
			t.Errorf("the Dockerfile's build stage runs %q; it lacks %q, which Compile uses", goBuild, part)
		}
	}

	// The Makefile's build target makes the same binary.
	mk, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mk), "\nLDFLAGS := "+LDFlags("$(VERSION)")+"\n") {
		t.Errorf("Makefile: no line LDFLAGS := %s", LDFlags("$(VERSION)"))
	}
	buildLine := regexp.MustCompile(`(?m)^build:\n\tCGO_ENABLED=0 \$\(GO\) build -trimpath -ldflags '\$\(LDFLAGS\)' -o \$\(BIN\) (\S+)$`)
	if m := buildLine.FindStringSubmatch(string(mk)); m == nil || m[1] != Package {
		t.Errorf("Makefile: the build target is not CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' ... %s", Package)
	}
}

func TestFinal(t *testing.T) {
	const head = "ARG GO_VERSION=1.26\nFROM golang:${GO_VERSION} AS build\nRUN go build -o /out/x .\n"
	tests := []struct {
		name  string
		final string
		args  map[string]string
		check func(t *testing.T, s Spec)
		err   string
	}{
		{
			name: "labels, args and continuations",
			final: "FROM example.com/base:${GO_VERSION}\nARG VERSION=dev\nARG GO_VERSION\n" +
				"LABEL a=\"x ${VERSION}\" \\\n  # a comment inside the continuation\n  b='$VERSION' c=$VERSION\n" +
				"COPY --from=build /out/x /usr/bin/\nUSER 1:2\nWORKDIR /w\nWORKDIR sub\n" +
				"ENTRYPOINT [\"/usr/bin/x\"]\nENV K=v K2=\"a b\"\n",
			args: map[string]string{"VERSION": "9"},
			check: func(t *testing.T, s Spec) {
				want := map[string]string{"a": "x 9", "b": "$VERSION", "c": "9"}
				if !reflect.DeepEqual(s.Labels, want) {
					t.Errorf("labels %v, want %v", s.Labels, want)
				}
				if s.Base != "example.com/base:1.26" || s.Binary != "/usr/bin/x" || s.User != "1:2" || s.WorkingDir != "/w/sub" {
					t.Errorf("got %+v", s)
				}
				if !slices.Equal(s.Env, []string{"K=v", "K2=a b"}) || s.Cmd != nil {
					t.Errorf("env %q cmd %q", s.Env, s.Cmd)
				}
			},
		},
		{
			name:  "ARG default when no build arg",
			final: "FROM b\nARG VERSION=dev\nLABEL v=$VERSION\nCOPY --from=build --chown=10:20 --chmod=0700 /out/x /x\nENTRYPOINT [\"/x\"]\nCMD [\"a\", \"b\"]\n",
			check: func(t *testing.T, s Spec) {
				if s.Labels["v"] != "dev" || s.BinaryUID != 10 || s.BinaryGID != 20 || s.BinaryMode != 0o700 || !slices.Equal(s.Cmd, []string{"a", "b"}) {
					t.Errorf("got %+v", s)
				}
			},
		},
		{
			name:  "quoted ARG default",
			final: "FROM b\nARG D=\"a b\" E=x\nLABEL d=\"$D\" e=${E}\nCOPY --from=build [\"/out/x\", \"/x\"]\nENTRYPOINT [\"/x\"]\n",
			check: func(t *testing.T, s Spec) {
				if s.Labels["d"] != "a b" || s.Labels["e"] != "x" || s.Binary != "/x" {
					t.Errorf("got %+v", s)
				}
			},
		},
		{name: "RUN", final: "FROM b\nRUN true\nCOPY --from=build /out/x /x\nENTRYPOINT [\"/x\"]\n", err: "RUN: not supported"},
		{name: "ADD", final: "FROM b\nADD x /x\n", err: "ADD: not supported"},
		{name: "shell form", final: "FROM b\nCOPY --from=build /out/x /x\nENTRYPOINT /x\n", err: "exec form"},
		{name: "two COPYs", final: "FROM b\nCOPY --from=build /out/x /x\nCOPY --from=build /out/x /y\n", err: "a second COPY"},
		{name: "COPY from context", final: "FROM b\nCOPY x /x\n", err: "--from"},
		{name: "wildcard", final: "FROM b\nCOPY --from=build /out/* /x/\n", err: "wildcards"},
		{name: "undeclared variable", final: "FROM b\nLABEL v=$VERSION\n", err: "$VERSION is not declared"},
		{name: "global arg needs a bare ARG", final: "FROM b\nUSER $GO_VERSION\n", err: "$GO_VERSION is not declared"},
		{name: "no COPY", final: "FROM b\nENTRYPOINT [\"/x\"]\n", err: "no COPY"},
		{name: "no ENTRYPOINT", final: "FROM b\nCOPY --from=build /out/x /x\n", err: "no ENTRYPOINT"},
		{name: "final stage from a stage", final: "FROM build\nCOPY --from=build /out/x /x\nENTRYPOINT [\"/x\"]\n", err: "not a stage"},
		{name: "unsupported expansion", final: "FROM b\nARG V\nLABEL v=${V:-x}\n", err: "only plain"},
		{name: "unterminated quote", final: "FROM b\nLABEL v=\"x\n", err: "unterminated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			df, err := ParseDockerfile(strings.NewReader(head + tt.final))
			if err != nil {
				t.Fatal(err)
			}
			s, err := df.Final(tt.args)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
}

func TestParseDockerfileErrors(t *testing.T) {
	for _, tt := range []struct{ in, err string }{
		{"", "no FROM"},
		{"RUN x\nFROM a\n", "before the first FROM"},
		{"FROM a AS\n", "want FROM"},
		{"FROM a\nRUN <<EOF\necho\nEOF\n", "heredocs"},
		{"FROM a\nRUN x \\\n", "line continuation"},
	} {
		_, err := ParseDockerfile(strings.NewReader(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%q: err %v, want one containing %q", tt.in, err, tt.err)
		}
	}
}

// FuzzParseDockerfile: no input makes the parser or Final panic, and the
// instruction count never exceeds the line count.
func FuzzParseDockerfile(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile")); err == nil {
		f.Add(string(b))
	}
	f.Add("FROM a\nLABEL a=\"${V}\" b='c' \\\n d=e\nCOPY --from=x a b\nENTRYPOINT [\"x\"]\n")
	f.Add("FROM a\nARG V=1\nUSER \"$V\\\"\"\n")
	f.Fuzz(func(t *testing.T, s string) {
		df, err := ParseDockerfile(strings.NewReader(s))
		if err != nil {
			return
		}
		lines := 0
		for sc := bufio.NewScanner(strings.NewReader(s)); sc.Scan(); {
			lines++
		}
		n := len(df.GlobalArgs)
		for _, st := range df.Stages {
			n += 1 + len(st.Instructions)
		}
		if n > lines {
			t.Fatalf("%d instructions from %d lines", n, lines)
		}
		_, _ = df.Final(map[string]string{"VERSION": "v"})
	})
}

func TestImageName(t *testing.T) {
	for _, tt := range []struct{ in, want, err string }{
		{in: "bootstrap:v1", want: "docker.io/library/bootstrap:v1"},
		{in: "bootstrap", want: "docker.io/library/bootstrap:latest"},
		{in: "docker.io/bootstrap:v1", want: "docker.io/library/bootstrap:v1"},
		{in: "index.docker.io/health/bootstrap:v1", want: "docker.io/health/bootstrap:v1"},
		{in: "ghcr.io/health-data-ai/bootstrap:29b6fa5-dirty", want: "ghcr.io/health-data-ai/bootstrap:29b6fa5-dirty"},
		{in: "localhost:5000/bootstrap:v1", want: "localhost:5000/bootstrap:v1"},
		{in: "Bootstrap:v1", err: "name"},
		{in: "bootstrap@sha256:0000000000000000000000000000000000000000000000000000000000000000", err: "name"},
	} {
		got, err := ImageName(tt.in)
		if tt.err != "" {
			if err == nil {
				t.Errorf("%s: %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	want := map[string]string{AnnotationImageName: "localhost:5000/bootstrap:v1", AnnotationRefName: "v1"}
	if got := Annotations("localhost:5000/bootstrap:v1"); !reflect.DeepEqual(got, want) {
		t.Errorf("annotations %v, want %v", got, want)
	}
}
