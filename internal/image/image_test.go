package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/health-data-ai/bootstrap/internal/testenv"
)

const testVersion = "v0.0.0-imagetest"

// testEpoch dates the test images: any fixed time will do.
var testEpoch = time.Unix(1700000000, 0).UTC()

// The two cross-compiled binaries, built once for every test here: a cold
// build of bootstrap takes minutes on two cores, assembling the image a
// few seconds. Building the image twice from the same binaries checks the
// assembly is deterministic; the binaries themselves are reproducible
// because go build is, with -trimpath and the same toolchain (Compile).
var compiled struct {
	once sync.Once
	dir  string
	bins map[string]string
	took time.Duration
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if compiled.dir != "" {
		os.RemoveAll(compiled.dir)
	}
	os.Exit(code)
}

func binaries(t *testing.T) map[string]string {
	t.Helper()
	compiled.once.Do(func() {
		compiled.dir, compiled.err = os.MkdirTemp("", "bootstrap-image-test-")
		if compiled.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		start := time.Now()
		compiled.bins = map[string]string{}
		g, gctx := errgroup.WithContext(ctx)
		for _, p := range DefaultPlatforms {
			out := filepath.Join(compiled.dir, "bootstrap-"+p.Architecture)
			compiled.bins[p.String()] = out
			g.Go(func() error {
				return Compile(gctx, CompileOptions{Dir: repoRoot, Version: testVersion, Platform: p, Out: out})
			})
		}
		compiled.err = g.Wait()
		compiled.took = time.Since(start)
	})
	if compiled.err != nil {
		t.Fatal(compiled.err)
	}
	return compiled.bins
}

func testSpec(t *testing.T) Spec {
	t.Helper()
	spec, err := parseFile(t, filepath.Join(repoRoot, "Dockerfile")).Final(map[string]string{"VERSION": testVersion})
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func build(t *testing.T, o Options) v1.ImageIndex {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	idx, err := Build(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func imageDigest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestImage builds the image offline on the local base, writes it as an
// OCI layout, reads it back with go-containerregistry's layout package as
// a consumer would and checks every platform's image: config, files,
// binary. Then: the same inputs give the same digest; a base read from an
// OCI layout or pulled from a (loopback) registry gives the same image;
// the tarball holds the same layout.
func TestImage(t *testing.T) {
	bins := binaries(t)
	t.Logf("compiled %s for linux/amd64 and linux/arm64 in %s", Package, compiled.took.Round(time.Millisecond))
	spec := testSpec(t)
	opts := Options{Spec: spec, Platforms: DefaultPlatforms, Binaries: bins, Epoch: testEpoch}
	imageName := "docker.io/library/bootstrap:" + testVersion

	start := time.Now()
	dir := filepath.Join(t.TempDir(), "layout")
	digest, err := WriteLayout(dir, build(t, opts), imageName)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("assembled and wrote the layout in %s: %s", time.Since(start).Round(time.Millisecond), digest)

	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Manifests) != 1 {
		t.Fatalf("index.json has %d entries, want 1", len(tm.Manifests))
	}
	entry := tm.Manifests[0]
	if entry.Digest != digest || entry.MediaType != types.OCIImageIndex {
		t.Errorf("index.json entry %s %s, want %s %s", entry.MediaType, entry.Digest, types.OCIImageIndex, digest)
	}
	wantAnn := map[string]string{AnnotationImageName: imageName, AnnotationRefName: testVersion}
	if !reflect.DeepEqual(entry.Annotations, wantAnn) {
		t.Errorf("index.json annotations %v, want %v", entry.Annotations, wantAnn)
	}
	idx, err := top.ImageIndex(entry.Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var plats []string
	for _, m := range im.Manifests {
		if m.Platform == nil {
			t.Fatalf("manifest %s has no platform", m.Digest)
		}
		if m.ArtifactType != "" || m.MediaType != types.OCIManifestSchema1 {
			t.Errorf("manifest %s: %s, artifactType %q; want an OCI image manifest, no artifactType", m.Digest, m.MediaType, m.ArtifactType)
		}
		plats = append(plats, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	slices.Sort(plats)
	if !slices.Equal(plats, []string{"linux/amd64", "linux/arm64"}) {
		t.Fatalf("platforms %v, want exactly linux/amd64 and linux/arm64", plats)
	}
	for _, m := range im.Manifests {
		t.Run(m.Platform.Architecture, func(t *testing.T) { checkImage(t, idx, m, spec) })
	}

	t.Run("reproducible", func(t *testing.T) {
		dir2 := filepath.Join(t.TempDir(), "layout")
		d2, err := WriteLayout(dir2, build(t, opts), imageName)
		if err != nil {
			t.Fatal(err)
		}
		if d2 != digest {
			t.Fatalf("second build: %s, first %s", d2, digest)
		}
		t1, t2 := filepath.Join(t.TempDir(), "1.tar"), filepath.Join(t.TempDir(), "2.tar")
		if err := WriteTar(dir, t1, testEpoch); err != nil {
			t.Fatal(err)
		}
		if err := WriteTar(dir2, t2, testEpoch); err != nil {
			t.Fatal(err)
		}
		if a, b := fileSum(t, t1), fileSum(t, t2); a != b {
			t.Errorf("tarballs differ: %s, %s", a, b)
		}
	})

	// A base from an OCI layout or a registry resolves, platform by
	// platform, to the very image LocalBase makes; the assembly on top is
	// the code checked above. (Comparing bases, not whole images, keeps
	// this test quick under -race, where gzip is slow.)
	baseIdx := localBaseIndex(t)
	sameBase := func(t *testing.T, base string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for _, p := range DefaultPlatforms {
			img, err := baseImage(ctx, base, p, opts)
			if err != nil {
				t.Fatal(err)
			}
			want, err := LocalBase(p, testEpoch, LocalBaseFiles{})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := imageDigest(t, img), imageDigest(t, want); got != want {
				t.Errorf("%s for %s: %s, want the local base %s", base, p.String(), got, want)
			}
		}
	}

	t.Run("base from oci-layout", func(t *testing.T) {
		// An index of the base's index, as crane pull --format=oci or
		// buildx write one.
		baseDir := filepath.Join(t.TempDir(), "base")
		nested := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: baseIdx})
		if _, err := layout.Write(baseDir, nested); err != nil {
			t.Fatal(err)
		}
		sameBase(t, BaseLayoutPrefix+baseDir)
		if _, err := baseImage(context.Background(), BaseLayoutPrefix+baseDir, v1.Platform{OS: "linux", Architecture: "s390x"}, opts); err == nil || !errors.Is(err, errNoPlatform) {
			t.Errorf("a platform the layout lacks: %v, want %v", err, errNoPlatform)
		}
	})

	t.Run("base from registry", func(t *testing.T) {
		// go-containerregistry's own registry, serving the distribution
		// API over real HTTP on loopback: the pull path without the
		// internet.
		srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
		defer srv.Close()
		ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/distroless/static-debian12:nonroot")
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.WriteIndex(ref, baseIdx); err != nil {
			t.Fatal(err)
		}
		sameBase(t, ref.String())
	})

	t.Run("tarball", func(t *testing.T) {
		tarPath := filepath.Join(t.TempDir(), "bootstrap-image.tar")
		if err := WriteTar(dir, tarPath, testEpoch); err != nil {
			t.Fatal(err)
		}
		out := t.TempDir()
		names := untar(t, tarPath, out)
		for _, want := range []string{"oci-layout", "index.json", "blobs/sha256/" + digest.Hex} {
			if !slices.Contains(names, want) {
				t.Errorf("tarball lacks %s; has %v", want, names)
			}
		}
		back, err := layout.ImageIndexFromPath(out)
		if err != nil {
			t.Fatal(err)
		}
		bm, err := back.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if len(bm.Manifests) != 1 || bm.Manifests[0].Digest != digest || !reflect.DeepEqual(bm.Manifests[0].Annotations, wantAnn) {
			t.Errorf("tarball's index.json: %+v", bm.Manifests)
		}
		// Every blob is what its name says.
		for _, n := range names {
			if hexDigest, ok := strings.CutPrefix(n, "blobs/sha256/"); ok && hexDigest != "" {
				if got := fileSum(t, filepath.Join(out, n)); got != hexDigest {
					t.Errorf("blob %s has digest %s", n, got)
				}
			}
		}
	})
}

// checkImage checks one platform's image against the Dockerfile's spec
// and, independently, against what the platform needs.
func checkImage(t *testing.T, idx v1.ImageIndex, desc v1.Descriptor, spec Spec) {
	arch := desc.Platform.Architecture
	img, err := idx.Image(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != arch || !reflect.DeepEqual(cf.Platform(), desc.Platform) {
		t.Errorf("config platform %s, index says %s", cf.Platform(), desc.Platform)
	}
	c := cf.Config
	u, g, _ := strings.Cut(c.User, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if err1 != nil || err2 != nil || uid != NonrootUID || gid != NonrootUID {
		// Numeric, or runAsNonRoot cannot verify the user.
		t.Errorf("user %q, want numeric 65532:65532", c.User)
	}
	for _, x := range []struct {
		what      string
		got, spec any
		want      any
	}{
		{"user", c.User, spec.User, "65532:65532"},
		{"entrypoint", c.Entrypoint, spec.Entrypoint, []string{"/usr/local/bin/bootstrap"}},
		{"cmd", c.Cmd, spec.Cmd, []string{"version"}},
		{"working dir", c.WorkingDir, spec.WorkingDir, "/home/nonroot"},
	} {
		if !reflect.DeepEqual(x.got, x.spec) || !reflect.DeepEqual(x.got, x.want) {
			t.Errorf("%s %q; the Dockerfile says %q, want %q", x.what, x.got, x.spec, x.want)
		}
	}
	for k, v := range spec.Labels {
		if c.Labels[k] != v {
			t.Errorf("label %s=%q, the Dockerfile says %q", k, c.Labels[k], v)
		}
	}
	for _, k := range []string{"title", "description", "source", "version"} {
		if c.Labels["org.opencontainers.image."+k] == "" {
			t.Errorf("no label org.opencontainers.image.%s", k)
		}
	}
	if c.Labels["org.opencontainers.image.version"] != testVersion {
		t.Errorf("version label %q, want %q", c.Labels["org.opencontainers.image.version"], testVersion)
	}
	if !slices.Contains(c.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt") {
		t.Errorf("env %q: no SSL_CERT_FILE", c.Env)
	}
	if !cf.Created.Time.Equal(testEpoch) {
		t.Errorf("created %s, want the epoch %s", cf.Created.Time, testEpoch)
	}

	size, err := Sizes(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("linux/%s %s: %.1f MiB compressed, %.1f MiB uncompressed", arch, desc.Digest, mib(size.Compressed), mib(size.Uncompressed))
	// Today about 13 and 40 MiB, nearly all of it the binary: a jump
	// means something unintended came in.
	if size.Compressed > 30<<20 || size.Uncompressed > 60<<20 {
		t.Errorf("image too large: %.1f MiB compressed (limit 30), %.1f MiB uncompressed (limit 60)", mib(size.Compressed), mib(size.Uncompressed))
	}

	fsys := flatten(t, img)
	binPath := strings.TrimPrefix(spec.Binary, "/")
	bin, ok := fsys[binPath]
	if !ok {
		t.Fatalf("no %s in the image", spec.Binary)
	}
	if bin.Typeflag != tar.TypeReg || bin.Mode&0o7777 != 0o755 || bin.Uid != 0 || bin.Gid != 0 {
		t.Errorf("%s: type %c mode %o owner %d:%d, want a 0755 file owned by 0:0", spec.Binary, bin.Typeflag, bin.Mode, bin.Uid, bin.Gid)
	}
	checkELF(t, bin.body, arch)

	for _, problem := range executables(fsys, binPath) {
		t.Error(problem)
	}
	for _, d := range []struct {
		path     string
		mode     int64
		uid, gid int
	}{
		{"home/nonroot", 0o700, NonrootUID, NonrootUID},
		{"tmp", 0o1777, 0, 0},
		{"root", 0o700, 0, 0},
	} {
		e, ok := fsys[d.path]
		if !ok || e.Typeflag != tar.TypeDir || e.Mode&0o7777 != d.mode || e.Uid != d.uid || e.Gid != d.gid {
			t.Errorf("/%s: %+v, want a folder %o owned by %d:%d", d.path, e, d.mode, d.uid, d.gid)
		}
	}

	accounts := map[string]string{
		"etc/passwd": "nonroot:x:65532:65532:nonroot:/home/nonroot:",
		"etc/group":  "nonroot:x:65532:",
	}
	for f, line := range accounts {
		e, ok := fsys[f]
		if !ok || !slices.ContainsFunc(strings.Split(string(e.body), "\n"), func(l string) bool { return strings.HasPrefix(l, line) }) {
			t.Errorf("/%s has no line %q", f, line)
		}
	}
	if e := fsys["etc/passwd"]; e == nil || !strings.HasPrefix(string(e.body), "root:x:0:0:") || !strings.Contains(string(e.body), "\nnobody:x:65534:65534:") {
		t.Error("/etc/passwd lacks root or nobody")
	}

	ca, ok := fsys["etc/ssl/certs/ca-certificates.crt"]
	host, err := os.ReadFile(defaultCACerts)
	if err != nil {
		t.Fatal(err)
	}
	if !ok || !bytes.Contains(ca.body, []byte("-----BEGIN CERTIFICATE-----")) || !bytes.Equal(ca.body, host) {
		t.Error("no CA bundle, or not this machine's")
	}
	if _, err := os.Stat(filepath.Join(defaultZoneinfo, "Europe/Berlin")); err == nil {
		if _, ok := fsys["usr/share/zoneinfo/Europe/Berlin"]; !ok {
			t.Error("no /usr/share/zoneinfo/Europe/Berlin, though this machine has one")
		}
	}

	t.Run("run", func(t *testing.T) {
		exe := filepath.Join(t.TempDir(), "bootstrap")
		if err := os.WriteFile(exe, bin.body, 0o755); err != nil {
			t.Fatal(err)
		}
		argv := append(emulator(t, arch), exe, "version")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", argv, err, out)
		}
		if want := "bootstrap " + testVersion + " "; !strings.HasPrefix(string(out), want) || !strings.Contains(string(out), "linux/"+arch) {
			t.Errorf("%q printed %q, want %q... linux/%s", argv, out, want, arch)
		}
		t.Logf("%q: %s", argv, strings.TrimSpace(string(out)))
	})
}

// executables lists every way fsys could run something other than the
// binary at binPath: a shell by name, an executable or setuid file, a link
// (symbolic or hard) to the binary under another name, a dangling link, a
// device or anything else that is not a folder, file or symbolic link.
func executables(fsys map[string]*fileEntry, binPath string) []string {
	var out []string
	shells := []string{"sh", "bash", "ash", "dash", "zsh", "busybox"}
	for p, e := range fsys {
		if slices.Contains(shells, path.Base(p)) {
			out = append(out, p+": a shell in the image")
		}
		switch e.Typeflag {
		case tar.TypeDir:
		case tar.TypeReg:
			if e.Mode&0o111 != 0 && p != binPath {
				out = append(out, fmt.Sprintf("%s: executable (mode %o); only /%s may be", p, e.Mode, binPath))
			}
			if e.Mode&0o6000 != 0 {
				out = append(out, fmt.Sprintf("%s: setuid or setgid (mode %o)", p, e.Mode))
			}
		case tar.TypeSymlink:
			// A link may only lead to a file checked above, and not to
			// the binary under another name.
			if target := resolve(fsys, p); target == "" {
				out = append(out, p+" -> "+e.Linkname+": dangling")
			} else if target == binPath {
				out = append(out, p+": a link to the binary")
			}
		default:
			out = append(out, fmt.Sprintf("%s: type %q; want only folders, files and symbolic links", p, e.Typeflag))
		}
	}
	slices.Sort(out)
	return out
}

func TestExecutables(t *testing.T) {
	reg := func(mode int64) *fileEntry {
		return &fileEntry{Header: tar.Header{Typeflag: tar.TypeReg, Mode: mode}}
	}
	link := func(to string) *fileEntry {
		return &fileEntry{Header: tar.Header{Typeflag: tar.TypeSymlink, Linkname: to}}
	}
	fsys := map[string]*fileEntry{
		"usr/local/bin/bootstrap": reg(0o755),
		"usr":                     {Header: tar.Header{Typeflag: tar.TypeDir, Mode: 0o755}},
		"etc/passwd":              reg(0o644),
		"usr/bin/tool":            reg(0o744),
		"usr/bin/su":              reg(0o4644),
		"bin/sh":                  reg(0o644),
		"usr/bin/b":               link("../local/bin/bootstrap"),
		"usr/bin/abs":             link("/usr/local/bin/bootstrap"),
		"usr/bin/gone":            link("nothing"),
		"etc/ok":                  link("passwd"),
		"usr/bin/hard":            {Header: tar.Header{Typeflag: tar.TypeLink, Linkname: "usr/local/bin/bootstrap"}},
		"dev/null":                {Header: tar.Header{Typeflag: tar.TypeChar}},
	}
	want := []string{
		"bin/sh: a shell in the image",
		"dev/null: type '3'; want only folders, files and symbolic links",
		"usr/bin/abs: a link to the binary",
		"usr/bin/b: a link to the binary",
		"usr/bin/gone -> nothing: dangling",
		"usr/bin/hard: type '1'; want only folders, files and symbolic links",
		"usr/bin/su: setuid or setgid (mode 4644)",
		"usr/bin/tool: executable (mode 744); only /usr/local/bin/bootstrap may be",
	}
	if got := executables(fsys, "usr/local/bin/bootstrap"); !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestLocalBaseTree: whatever the host's tz database holds, the base
// copies it as plain data: files 0644, folders 0755, owned by root, and
// only the symbolic links that stay inside it. A missing CA bundle fails.
func TestLocalBaseTree(t *testing.T) {
	host := t.TempDir()
	zi := filepath.Join(host, "zoneinfo")
	for _, d := range []string{"Europe", "posix"} {
		if err := os.MkdirAll(filepath.Join(zi, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for p, mode := range map[string]os.FileMode{"Europe/Berlin": 0o755, "UTC": 0o600, "tzselect": 0o4755} {
		if err := os.WriteFile(filepath.Join(zi, p), []byte(p), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(zi, p), mode); err != nil {
			t.Fatal(err)
		}
	}
	for p, to := range map[string]string{"posix/Berlin": "../Europe/Berlin", "localtime": "/etc/localtime", "escape": "../outside", "Zulu": "UTC"} {
		if err := os.Symlink(to, filepath.Join(zi, p)); err != nil {
			t.Fatal(err)
		}
	}
	ca := filepath.Join(host, "ca.crt")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	img, err := LocalBase(v1.Platform{OS: "linux", Architecture: "arm64"}, testEpoch, LocalBaseFiles{CACerts: ca, Zoneinfo: zi})
	if err != nil {
		t.Fatal(err)
	}
	fsys := flatten(t, img)
	if problems := executables(fsys, ""); len(problems) != 0 {
		t.Errorf("the base can run something:\n%s", strings.Join(problems, "\n"))
	}
	for p, want := range map[string]string{
		"usr/share/zoneinfo/Europe/Berlin":  "file 644",
		"usr/share/zoneinfo/UTC":            "file 644",
		"usr/share/zoneinfo/tzselect":       "file 644",
		"usr/share/zoneinfo/posix":          "dir 755",
		"usr/share/zoneinfo/posix/Berlin":   "link ../Europe/Berlin",
		"usr/share/zoneinfo/Zulu":           "link UTC",
		"usr/share/zoneinfo/localtime":      "absent",
		"usr/share/zoneinfo/escape":         "absent",
		"etc/ssl/certs/ca-certificates.crt": "file 644",
	} {
		got := "absent"
		if e, ok := fsys[p]; ok {
			switch e.Typeflag {
			case tar.TypeReg:
				got = fmt.Sprintf("file %o", e.Mode)
			case tar.TypeDir:
				got = fmt.Sprintf("dir %o", e.Mode)
			case tar.TypeSymlink:
				got = "link " + e.Linkname
			}
			if e.Uid != 0 || e.Gid != 0 || !e.ModTime.Equal(testEpoch) {
				t.Errorf("%s: owner %d:%d time %s", p, e.Uid, e.Gid, e.ModTime)
			}
		}
		if got != want {
			t.Errorf("%s: %s, want %s", p, got, want)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Architecture != "arm64" || cf.Variant != "v8" || cf.Config.User != "65532" || cf.Config.WorkingDir != "/home/nonroot" {
		t.Errorf("base config %+v", cf)
	}

	if _, err := LocalBase(v1.Platform{OS: "linux", Architecture: "amd64"}, testEpoch, LocalBaseFiles{CACerts: filepath.Join(host, "none")}); err == nil || !strings.Contains(err.Error(), "CA bundle") {
		t.Errorf("no CA bundle: %v", err)
	}
}

// checkELF: a static executable for the platform's machine.
func checkELF(t *testing.T, b []byte, arch string) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("binary is not ELF: %v", err)
	}
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Machine != want || f.Type != elf.ET_EXEC {
		t.Errorf("binary: %s %s, want %s %s", f.Machine, f.Type, want, elf.ET_EXEC)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("binary has %s: dynamically linked, but the image has no libc", p.Type)
		}
	}
}

// emulator is the command that runs a binary for arch here: none for
// this machine's own architecture, qemu-user for the other one (from
// BOOTSTRAP_TEST_QEMU_AARCH64 or PATH, as scripts/testenv.sh up qemu
// installs it).
func emulator(t *testing.T, arch string) []string {
	t.Helper()
	if arch == runtime.GOARCH {
		return nil
	}
	qarch := map[string]string{"arm64": "aarch64", "amd64": "x86_64"}[arch]
	key := "BOOTSTRAP_TEST_QEMU_" + strings.ToUpper(qarch)
	if p := testenv.Getenv(key); p != "" {
		if _, err := os.Stat(p); err != nil {
			testenv.Missing(t, "qemu-"+qarch+" at "+p+" ("+key+")")
		}
		return []string{p}
	}
	for _, n := range []string{"qemu-" + qarch, "qemu-" + qarch + "-static"} {
		if p, err := exec.LookPath(n); err == nil {
			return []string{p}
		}
	}
	testenv.Missing(t, "qemu-"+qarch+" (Debian's qemu-user; "+key+")")
	return nil
}

type fileEntry struct {
	tar.Header
	body []byte
}

// flatten reads the image's filesystem as a container sees it (all
// layers applied) into a map by clean relative path.
func flatten(t *testing.T, img v1.Image) map[string]*fileEntry {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string]*fileEntry{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		p := clean(h.Name)
		out[p] = &fileEntry{Header: *h, body: b}
	}
}

// resolve follows symlinks from p to a file or folder in fsys, "" if the
// chain dangles or loops.
func resolve(fsys map[string]*fileEntry, p string) string {
	for range 40 {
		e, ok := fsys[p]
		if !ok {
			return ""
		}
		if e.Typeflag != tar.TypeSymlink {
			return p
		}
		if path.IsAbs(e.Linkname) {
			p = clean(e.Linkname)
		} else {
			p = clean(path.Join(path.Dir(p), e.Linkname))
		}
	}
	return ""
}

func localBaseIndex(t *testing.T) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, p := range DefaultPlatforms {
		img, err := LocalBase(p, testEpoch, LocalBaseFiles{})
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: cf.Platform()}})
	}
	return mutate.AppendManifests(empty.Index, adds...)
}

func untar(t *testing.T, tarPath, dir string) []string {
	t.Helper()
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != clean(h.Name) && h.Name != clean(h.Name)+"/" {
			t.Errorf("tarball entry %q: want a clean relative path", h.Name)
		}
		if !h.ModTime.Equal(testEpoch) || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("tarball entry %s: time %s owner %d:%d", h.Name, h.ModTime, h.Uid, h.Gid)
		}
		p := filepath.Join(dir, filepath.FromSlash(clean(h.Name)))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			names = append(names, h.Name)
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		default:
			t.Errorf("tarball entry %s: type %c; containerd imports regular files only", h.Name, h.Typeflag)
		}
	}
}

func fileSum(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
