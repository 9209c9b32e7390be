package charts

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// ---------------------------------------------------------------------------
// Image: the Dockerfile's build, for both architectures

func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repo(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	var froms []string
	var stages []string // the text of each stage
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "FROM ") {
			froms = append(froms, line)
			stages = append(stages, "")
		}
		if len(stages) > 0 {
			stages[len(stages)-1] += line + "\n"
		}
	}
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, got %v", froms)
	}
	build, final := stages[0], stages[len(stages)-1]
	for _, want := range []string{"--platform=$BUILDPLATFORM", "ARG TARGETOS", "ARG TARGETARCH", "GOOS=$TARGETOS", "GOARCH=$TARGETARCH",
		"CGO_ENABLED=0", "-trimpath", "-X main.version=${VERSION}", "./cmd/bootstrap"} {
		if !strings.Contains(build, want) {
			t.Errorf("build stage lacks %q", want)
		}
	}
	if !strings.HasPrefix(froms[len(froms)-1], "FROM gcr.io/distroless/static-debian12:nonroot") {
		t.Errorf("runtime stage %q, want gcr.io/distroless/static-debian12:nonroot", froms[len(froms)-1])
	}
	if strings.Contains(final, "\nRUN ") {
		t.Error("the runtime stage runs commands: distroless has no shell")
	}
	if !regexp.MustCompile(`(?m)^USER 65532(:65532)?$`).MatchString(final) || !strings.Contains(final, `ENTRYPOINT ["/usr/local/bin/bootstrap"]`) {
		t.Error("runtime stage: want USER 65532 and the exec-form ENTRYPOINT")
	}

	// Every package the binary needs is in the build context .dockerignore leaves.
	ignore, err := os.ReadFile(filepath.Join(repo(t), ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var allowed []string
	for _, line := range strings.Split(string(ignore), "\n") {
		if strings.HasPrefix(line, "!") {
			allowed = append(allowed, strings.TrimPrefix(line, "!"))
		}
	}
	out := mustRun(t, repo(t), nil, "go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", "./cmd/bootstrap")
	for _, dir := range strings.Fields(out) {
		rel, err := filepath.Rel(repo(t), dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // module cache
		}
		ok := false
		for _, a := range allowed {
			ok = ok || strings.HasPrefix(rel+"/", a)
		}
		if !ok {
			t.Errorf(".dockerignore leaves %s out of the build context", rel)
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		if !slices.Contains(allowed, f) {
			t.Errorf(".dockerignore leaves %s out", f)
		}
	}
}

// TestBinaryStaticMultiArch checks the binary as the Dockerfile builds it
// for linux/amd64 and linux/arm64 (CGO_ENABLED=0, -trimpath, version stamp):
// static (no interpreter, no shared library), the arm64 one run under
// qemu-aarch64, the amd64 one as the image's nonroot user.
func TestBinaryStaticMultiArch(t *testing.T) {
	amd64 := bootstrapBin(t) // the same flags, for the host (amd64 here)
	// Not t.TempDir: its parent is 0700, and uid 65532 must reach the files.
	dir, err := os.MkdirTemp("", "charts-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	arm64 := filepath.Join(dir, "bootstrap-arm64")
	mustRun(t, repo(t), []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"}, "go", "build", "-trimpath",
		"-ldflags", "-s -w -X main.version=v0.0.0-test", "-o", arm64, "./cmd/bootstrap")
	for bin, machine := range map[string]elf.Machine{amd64: elf.EM_X86_64, arm64: elf.EM_AARCH64} {
		if runtime.GOARCH != "amd64" && machine == elf.EM_X86_64 {
			continue
		}
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("%v: dynamically linked (%v): distroless static has no libc", machine, p.Type)
			}
		}
		if f.Machine != machine {
			t.Errorf("%s: machine %v, want %v", bin, f.Machine, machine)
		}
		f.Close()
	}

	t.Run("arm64-under-qemu", func(t *testing.T) {
		qemu := testenv.Tool(t, "qemu-aarch64")
		out := mustRun(t, "", nil, qemu, arm64, "version")
		if !strings.Contains(out, "v0.0.0-test") || !strings.Contains(out, "linux/arm64") {
			t.Errorf("arm64 version: %q", out)
		}
		t.Logf("qemu-aarch64: %s", strings.TrimSpace(out))
	})

	t.Run("nonroot", func(t *testing.T) {
		if os.Geteuid() != 0 {
			testenv.Missing(t, "root (to run the binary as uid 65532)")
		}
		cfg := filepath.Join(dir, "bootstrap.yaml")
		if err := os.WriteFile(cfg, bootstrapConfig(t, render(t, namespace)), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(amd64, "validate", "-f", cfg)
		cmd.Dir = "/"
		cmd.Env = []string{}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65532, Gid: 65532}}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "is valid") {
			t.Errorf("as uid 65532: %v\n%s", err, out)
		}
	})
}

// ---------------------------------------------------------------------------
// docker-compose

func TestComposeFile(t *testing.T) {
	compose := testenv.Tool(t, "docker-compose")
	deploy := filepath.Join(repo(t), "deploy")
	file := filepath.Join(deploy, "docker-compose.yml")
	mustRun(t, deploy, nil, compose, "-f", file, "config", "-q")
	var c struct {
		Services map[string]struct {
			Build struct {
				Context, Dockerfile string
			}
			Command     []string
			DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
			Healthcheck map[string]any
			Secrets     []any
			ReadOnly    bool `yaml:"read_only"`
			User        string
			Volumes     []any
		}
		Secrets map[string]struct{ File string }
	}
	if err := yaml.Unmarshal([]byte(mustRun(t, deploy, nil, compose, "-f", file, "config")), &c); err != nil {
		t.Fatal(err)
	}
	data := []string{"postgresql-health", "postgresql-auth", "redis-health", "redis-auth", "minio", "rabbitmq"}
	if len(c.Services) != len(data)+1 {
		t.Errorf("services %v, want the six data services and bootstrap", keysOf(c.Services))
	}
	for _, s := range data {
		svc, ok := c.Services[s]
		if !ok {
			t.Errorf("no service %s", s)
			continue
		}
		if len(list(svc.Healthcheck["test"])) == 0 {
			t.Errorf("%s has no health check", s)
		}
		if len(svc.Secrets) == 0 {
			t.Errorf("%s gets no credentials from compose secrets", s)
		}
	}
	b := c.Services["bootstrap"]
	if b.Build.Dockerfile != "Dockerfile" || b.Build.Context != repo(t) {
		t.Errorf("bootstrap build %+v, want the repository's Dockerfile", b.Build)
	}
	for _, s := range data {
		if b.DependsOn[s].Condition != "service_healthy" {
			t.Errorf("bootstrap depends_on %s: %q, want service_healthy", s, b.DependsOn[s].Condition)
		}
	}
	if !b.ReadOnly || b.User != "65532:65532" {
		t.Errorf("bootstrap read_only=%v user=%q, want a read-only root filesystem as 65532", b.ReadOnly, b.User)
	}
	for name, s := range c.Secrets {
		if filepath.Dir(s.File) != filepath.Join(deploy, "secrets") || filepath.Base(s.File) != name {
			t.Errorf("secret %s from %q, want the file source deploy/secrets/%s", name, s.File, name)
		}
	}

	// The config bootstrap runs with validates, reads secrets from the
	// compose secrets, and points at the compose services.
	raw, err := os.ReadFile(filepath.Join(deploy, "bootstrap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	validate(t, "compose-bootstrap.yaml", raw)
	cfg := loadConfig(t, raw)
	if cfg.Secrets.Source.Type != "file" || cfg.Secrets.Source.File.Dir != "/run/secrets" || cfg.Secrets.Output.Type != "none" {
		t.Errorf("secrets %+v, want the file source in /run/secrets and output none", cfg.Secrets)
	}
	given := map[string]bool{}
	for _, s := range b.Secrets {
		name := str(s)
		if m, ok := s.(map[string]any); ok {
			name = str(m["source"])
		}
		given[name] = true
	}
	script, err := os.ReadFile(filepath.Join(deploy, "init-secrets.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for name := range cfg.SecretRefs(func(string) bool { return true }, true) {
		if !given[name] {
			t.Errorf("bootstrap.yaml reads secret %s, not given to the bootstrap service", name)
		}
		if _, ok := c.Secrets[name]; !ok || !regexp.MustCompile(`\b`+regexp.QuoteMeta(name)+`\b`).Match(script) {
			t.Errorf("secret %s: not declared in the compose file or not written by init-secrets.sh", name)
		}
	}
	// The config and the migrations it names are mounted into the container.
	mounts := map[string]string{} // container path -> host path
	for _, v := range b.Volumes {
		parts := strings.Split(str(v), ":")
		if len(parts) >= 2 {
			mounts[parts[1]] = parts[0]
		}
	}
	if _, err := os.Stat(mounts["/etc/bootstrap/bootstrap.yaml"]); err != nil || !slices.Equal(b.Command[:2], []string{"apply", "-f"}) ||
		b.Command[2] != "/etc/bootstrap/bootstrap.yaml" {
		t.Errorf("bootstrap runs %v with mounts %v, want apply -f the mounted deploy/bootstrap.yaml", b.Command, mounts)
	}
	for _, p := range cfg.Postgres {
		for _, d := range p.Databases {
			if d.Migrations == "" {
				continue
			}
			found := false
			for target, src := range mounts {
				if rest, ok := strings.CutPrefix(d.Migrations, target+"/"); ok {
					if fi, err := os.Stat(filepath.Join(src, rest)); err == nil && fi.IsDir() {
						found = true
					}
				}
			}
			if !found {
				t.Errorf("postgres/%s database %s: migrations %s is not a mounted folder", p.Name, d.Name, d.Migrations)
			}
		}
	}

	hosts := map[string]string{}
	for _, p := range cfg.Postgres {
		hosts[p.Host] = str(p.Port)
	}
	for _, r := range cfg.Redis {
		h, p, _ := strings.Cut(r.Address, ":")
		hosts[h] = p
	}
	for _, m := range cfg.MinIO {
		h, p, _ := strings.Cut(m.Endpoint, ":")
		hosts[h] = p
	}
	for _, r := range cfg.RabbitMQ {
		hosts[r.Host] = str(r.Port)
	}
	for h := range hosts {
		if _, ok := c.Services[h]; !ok || !slices.Contains(data, h) {
			t.Errorf("bootstrap.yaml points at %s, not a data service of the compose file", h)
		}
	}
	if len(hosts) != len(data) {
		t.Errorf("bootstrap.yaml reaches %v, want all six services", hosts)
	}
}

func keysOf[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
