// Package image builds the bootstrap container image without a Docker
// engine: it cross-compiles the static binary, puts it on a base image
// (distroless from a registry, an OCI layout, or a distroless-like base made
// here from this machine's CA bundle and tzdata) and writes a reproducible
// multi-arch OCI image layout, and optionally its tarball for `ctr images
// import`.
//
// It owns the image's assembly only. What the image contains — base, binary
// path, user, working directory, entrypoint, command, labels — is owned by
// the repository's Dockerfile, which this package reads (ParseDockerfile,
// Dockerfile.Final), so that `make image` and `make image-docker` cannot
// drift apart. It never pushes, never loads into a container runtime, and
// touches the network only to pull a base image given by reference.
package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// Package is the main package the image runs, relative to the module
	// root; the Dockerfile's build stage builds the same one.
	Package = "./cmd/bootstrap"

	// BaseLocal names the distroless-like base built here (LocalBase): no
	// registry needed.
	BaseLocal = "local"
	// BaseDockerfile names the Dockerfile's own FROM
	// (gcr.io/distroless/static-debian12:nonroot), pulled from its registry.
	BaseDockerfile = "dockerfile"
	// BaseLayoutPrefix starts a base given as an OCI image layout directory:
	// "oci-layout:PATH".
	BaseLayoutPrefix = "oci-layout:"

	// AnnotationImageName is containerd's annotation for an image's full
	// name in an OCI layout; `ctr images import` names the image by it.
	AnnotationImageName = "io.containerd.image.name"
	// AnnotationRefName is the OCI image spec's name of a layout entry.
	AnnotationRefName = "org.opencontainers.image.ref.name"
)

// DefaultPlatforms are the platforms the Dockerfile is built for: amd64
// and the Oracle free tier's Ampere (arm64) nodes.
var DefaultPlatforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64"},
}

// LDFlags are the linker flags of every bootstrap build (Makefile `build`,
// the Dockerfile's build stage and Compile): strip symbols and DWARF, and
// stamp the version.
func LDFlags(version string) string { return "-s -w -X main.version=" + version }

// CompileOptions says how to compile the binary for one platform.
type CompileOptions struct {
	// Go is the go command; "" means "go" on PATH.
	Go string
	// Dir is the module root.
	Dir      string
	Version  string
	Platform v1.Platform
	// Out is the path of the binary to write.
	Out string
}

// Compile cross-compiles Package as the Dockerfile's build stage does:
// CGO_ENABLED=0 (static, no target toolchain needed), -trimpath and
// LDFlags. With -trimpath and the same toolchain, go build is reproducible:
// the same sources give the same bytes.
func Compile(ctx context.Context, o CompileOptions) error {
	goCmd := o.Go
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-ldflags", LDFlags(o.Version), "-o", o.Out, Package)
	cmd.Dir = o.Dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+o.Platform.OS, "GOARCH="+o.Platform.Architecture)
	// A variant is a minimum CPU level: linux/arm/v7 is GOARM=7,
	// linux/amd64/v3 GOAMD64=v3 (arm64's v8 is the only level there is).
	switch v := o.Platform.Variant; {
	case v == "":
	case o.Platform.Architecture == "arm":
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(v, "v"))
	case o.Platform.Architecture == "amd64":
		cmd.Env = append(cmd.Env, "GOAMD64="+v)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("image: go build %s for %s: %w\n%s", Package, o.Platform.String(), err, out)
	}
	return nil
}

// Options says what to build.
type Options struct {
	// Spec is the Dockerfile's final stage (Dockerfile.Final).
	Spec Spec
	// Base is BaseLocal, BaseDockerfile, BaseLayoutPrefix+PATH or an image
	// reference; "" means BaseLocal.
	Base      string
	Platforms []v1.Platform
	// Binaries maps each platform (v1.Platform.String(), e.g.
	// "linux/arm64") to the path of its static binary.
	Binaries map[string]string
	// Epoch is every timestamp in the image: file times in the layers, the
	// config's created and history times (SourceDateEpoch).
	Epoch time.Time
	// LocalBase locates the host files the local base copies; the zero
	// value means this machine's defaults.
	LocalBase LocalBaseFiles
	Logger    *slog.Logger
}

// Build assembles the multi-arch image: for each platform, the base for
// that platform plus one layer holding the binary, and the Dockerfile's
// config on top. Nothing is written; see WriteLayout.
func Build(ctx context.Context, o Options) (v1.ImageIndex, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(o.Platforms) == 0 {
		return nil, errors.New("image: no platforms")
	}
	base := o.base()
	var adds []mutate.IndexAddendum
	allOCI := true
	for _, p := range o.Platforms {
		start := time.Now()
		bin, ok := o.Binaries[p.String()]
		if !ok {
			return nil, fmt.Errorf("image %s: no binary", p.String())
		}
		b, err := baseImage(ctx, base, p, o)
		if err != nil {
			return nil, err
		}
		img, err := assemble(b, bin, p, o)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", p.String(), err)
		}
		mt, err := img.MediaType()
		if err != nil {
			return nil, fmt.Errorf("image %s: manifest media type: %w", p.String(), err)
		}
		allOCI = allOCI && mt == types.OCIManifestSchema1
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("image %s: config: %w", p.String(), err)
		}
		desc := cf.Platform()
		adds = append(adds, mutate.IndexAddendum{Add: plainImage{img}, Descriptor: v1.Descriptor{Platform: desc}})
		log.Info("assembled image", "platform", p.String(), "base", base, "duration", time.Since(start).Round(time.Millisecond))
	}
	idxType := types.OCIImageIndex
	if !allOCI {
		// A Docker base (schema 2) stays Docker throughout: an OCI index
		// of Docker manifests is something registries reject.
		idxType = types.DockerManifestList
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, idxType), adds...), nil
}

// plainImage keeps artifactType off the image's index entry:
// go-containerregistry fills it with the config's media type, a field OCI
// means for artifacts, which buildx and containerd leave out for images.
type plainImage struct{ v1.Image }

func (plainImage) ArtifactType() (string, error) { return "", nil }

// base is the base Build starts from: Base, with "" meaning BaseLocal and
// BaseDockerfile meaning the Dockerfile's FROM.
func (o Options) base() string {
	switch o.Base {
	case "":
		return BaseLocal
	case BaseDockerfile:
		return o.Spec.Base
	}
	return o.Base
}

func baseImage(ctx context.Context, base string, p v1.Platform, o Options) (v1.Image, error) {
	switch {
	case base == BaseLocal:
		img, err := LocalBase(p, o.Epoch, o.LocalBase)
		if err != nil {
			return nil, err
		}
		return img, nil
	case strings.HasPrefix(base, BaseLayoutPrefix):
		dir := strings.TrimPrefix(base, BaseLayoutPrefix)
		idx, err := layout.ImageIndexFromPath(dir)
		if err != nil {
			return nil, fmt.Errorf("image: base %s: %w", base, err)
		}
		img, err := findPlatform(idx, p)
		if err != nil {
			return nil, fmt.Errorf("image: base %s: %w", base, err)
		}
		return img, nil
	default:
		ref, err := name.ParseReference(base)
		if err != nil {
			return nil, fmt.Errorf("image: base %q: not %s, %s, %sPATH or an image reference: %w", base, BaseLocal, BaseDockerfile, BaseLayoutPrefix, err)
		}
		// Credentials as docker login and the credential helpers keep
		// them; anonymous for a public base like distroless.
		img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithPlatform(p),
			remote.WithAuthFromKeychain(authn.DefaultKeychain))
		if err != nil {
			return nil, fmt.Errorf("image: pull base %s for %s: %w", ref, p.String(), err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("image: base %s config: %w", ref, err)
		}
		if !platformMatches(cf.Platform(), p) {
			// A single-platform base is returned whatever was asked.
			return nil, fmt.Errorf("image: base %s is %s, not %s", ref, cf.Platform().String(), p.String())
		}
		return img, nil
	}
}

// findPlatform finds the image for p in an index, descending into nested
// indexes (a layout written by `crane pull --format=oci` or buildx holds
// an index of the image's index).
func findPlatform(idx v1.ImageIndex, p v1.Platform) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range im.Manifests {
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("index %s: %w", d.Digest, err)
			}
			img, err := findPlatform(child, p)
			if err == nil {
				return img, nil
			}
			if !errors.Is(err, errNoPlatform) {
				return nil, err
			}
		case d.MediaType.IsImage():
			if d.Platform != nil && !platformMatches(d.Platform, p) {
				continue
			}
			img, err := idx.Image(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("image %s: %w", d.Digest, err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				return nil, fmt.Errorf("image %s config: %w", d.Digest, err)
			}
			if platformMatches(cf.Platform(), p) {
				return img, nil
			}
		}
	}
	return nil, fmt.Errorf("%w %s", errNoPlatform, p.String())
}

var errNoPlatform = errors.New("no image for platform")

// platformMatches compares OS and architecture, and the variant only when
// both give one (arm64 is "v8" or nothing, depending on who built it).
func platformMatches(got *v1.Platform, want v1.Platform) bool {
	if got == nil {
		return false
	}
	return got.OS == want.OS && got.Architecture == want.Architecture &&
		(got.Variant == "" || want.Variant == "" || got.Variant == want.Variant)
}

// assemble adds the binary layer and the Dockerfile's config to base.
func assemble(base v1.Image, binPath string, p v1.Platform, o Options) (v1.Image, error) {
	spec := o.Spec
	bin, err := os.ReadFile(binPath)
	if err != nil {
		return nil, fmt.Errorf("read binary: %w", err)
	}
	bm, err := base.MediaType()
	if err != nil {
		return nil, fmt.Errorf("base media type: %w", err)
	}
	layerType := types.OCILayer
	if bm == types.DockerManifestSchema2 {
		layerType = types.DockerLayer
	}
	var fs files
	fs.addFile(spec.Binary, bin, spec.BinaryMode, spec.BinaryUID, spec.BinaryGID)
	layer, err := fs.layer(o.Epoch, layerType)
	if err != nil {
		return nil, fmt.Errorf("binary layer: %w", err)
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: o.Epoch},
			CreatedBy: fmt.Sprintf("COPY --from=%s %s %s # internal/image", spec.CopyFrom, spec.CopySource, spec.Binary),
			Comment:   "bootstrap " + spec.Labels["org.opencontainers.image.version"],
		},
	})
	if err != nil {
		return nil, fmt.Errorf("append binary layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: o.Epoch}
	cf.OS, cf.Architecture = p.OS, p.Architecture
	if p.Variant != "" {
		cf.Variant = p.Variant
	}
	c := &cf.Config
	c.User = spec.User
	c.WorkingDir = spec.WorkingDir
	c.Entrypoint = spec.Entrypoint
	c.Cmd = spec.Cmd
	for _, e := range spec.Env {
		k, v, _ := strings.Cut(e, "=")
		c.Env = setEnv(c.Env, k, v)
	}
	if c.Labels == nil {
		c.Labels = map[string]string{}
	}
	for k, v := range spec.Labels {
		c.Labels[k] = v
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("set config: %w", err)
	}
	return img, nil
}

// SourceDateEpoch is the time stamped on everything in the image, so that
// the same sources give the same digest: SOURCE_DATE_EPOCH (sourceDateEpoch)
// when set, else the time of the git commit checked out in dir, else the
// Unix epoch. It says which it used.
func SourceDateEpoch(ctx context.Context, sourceDateEpoch, dir string) (time.Time, string, error) {
	if sourceDateEpoch != "" {
		s, err := strconv.ParseInt(sourceDateEpoch, 10, 64)
		if err != nil || s < 0 {
			return time.Time{}, "", fmt.Errorf("image: SOURCE_DATE_EPOCH=%q: want seconds since 1970", sourceDateEpoch)
		}
		return time.Unix(s, 0).UTC(), "SOURCE_DATE_EPOCH", nil
	}
	cmd := exec.CommandContext(ctx, "git", "log", "-1", "--format=%ct")
	cmd.Dir = dir
	cmd.Stderr = io.Discard
	if out, err := cmd.Output(); err == nil {
		if s, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil {
			return time.Unix(s, 0).UTC(), "git commit time", nil
		}
	}
	return time.Unix(0, 0).UTC(), "zero (no SOURCE_DATE_EPOCH, no git commit)", nil
}

// ImageName is the full name containerd and the kubelet know an image by
// (docker.io/library/bootstrap:v1 for bootstrap:v1): the kubelet asks for
// the normalized form of the name in the pod spec, and `ctr images import`
// stores the io.containerd.image.name annotation as it is.
func ImageName(ref string) (string, error) {
	t, err := name.NewTag(ref)
	if err != nil {
		return "", fmt.Errorf("image: name %q: want repository[:tag]: %w", ref, err)
	}
	reg := t.RegistryStr()
	if reg == name.DefaultRegistry {
		// go-containerregistry says index.docker.io, containerd and the
		// kubelet say docker.io.
		reg = "docker.io"
	}
	return reg + "/" + t.RepositoryStr() + ":" + t.TagStr(), nil
}

// Annotations are the annotations of the image's entry in the layout's
// index.json: containerd's full name, and the OCI ref name, which the OCI
// spec and containerd's own exporter make the tag alone.
func Annotations(imageName string) map[string]string {
	tag := imageName[strings.LastIndex(imageName, ":")+1:]
	return map[string]string{
		AnnotationImageName: imageName,
		AnnotationRefName:   tag,
	}
}

// WriteLayout writes idx as an OCI image layout in dir, its one index.json
// entry annotated with Annotations(imageName), and returns the index's
// digest. It writes beside dir first and then replaces dir, which must be
// absent, empty or an OCI layout (it is never a folder of something else).
func WriteLayout(dir string, idx v1.ImageIndex, imageName string) (v1.Hash, error) {
	d, err := idx.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("image: index digest: %w", err)
	}
	if err := replaceable(dir); err != nil {
		return v1.Hash{}, err
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return v1.Hash{}, fmt.Errorf("image: layout %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return v1.Hash{}, fmt.Errorf("image: layout %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp)
	top := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{
		Add:        idx,
		Descriptor: v1.Descriptor{Annotations: Annotations(imageName)},
	})
	if _, err := layout.Write(tmp, top); err != nil {
		return v1.Hash{}, fmt.Errorf("image: layout %s: %w", dir, err)
	}
	// The layout package creates files 0777 &^ umask; a layout is data.
	if err := normalizeModes(tmp); err != nil {
		return v1.Hash{}, fmt.Errorf("image: layout %s: %w", dir, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return v1.Hash{}, fmt.Errorf("image: replace layout %s: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return v1.Hash{}, fmt.Errorf("image: layout %s: %w", dir, err)
	}
	return d, nil
}

func replaceable(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || err == nil && len(entries) == 0 {
		return nil
	}
	if err != nil {
		return fmt.Errorf("image: layout %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return fmt.Errorf("image: layout %s: not empty and not an OCI layout; refusing to replace it", dir)
	}
	return nil
}

func normalizeModes(root string) error {
	return filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(p, 0o755)
		}
		return os.Chmod(p, 0o644)
	})
}

// Size is what an image weighs.
type Size struct {
	// Compressed is what a pull transfers and a registry stores: manifest,
	// config and compressed layers.
	Compressed int64
	// Uncompressed is the layers unpacked (the tar streams, overwritten
	// files counted in each layer).
	Uncompressed int64
}

// Sizes returns the size of img, reading each layer once.
func Sizes(img v1.Image) (Size, error) {
	var s Size
	m, err := img.Manifest()
	if err != nil {
		return s, fmt.Errorf("image: manifest: %w", err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return s, fmt.Errorf("image: manifest: %w", err)
	}
	s.Compressed = int64(len(raw)) + m.Config.Size
	layers, err := img.Layers()
	if err != nil {
		return s, fmt.Errorf("image: layers: %w", err)
	}
	for _, l := range layers {
		n, err := l.Size()
		if err != nil {
			return s, fmt.Errorf("image: layer size: %w", err)
		}
		s.Compressed += n
		rc, err := l.Uncompressed()
		if err != nil {
			return s, fmt.Errorf("image: layer: %w", err)
		}
		u, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return s, fmt.Errorf("image: read layer: %w", err)
		}
		s.Uncompressed += u
	}
	return s, nil
}
