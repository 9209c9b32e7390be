// Package node makes images for the one-node Kubernetes of the test
// environment (scripts/testenv.d/node.sh) and imports them into its
// containerd, where pods find them without pulling anything.
//
// An image here is one layer of static files on an empty root file system,
// written as an OCI image layout in a tar archive — what `ctr images import`
// takes — with nothing but the standard library: node.sh uses it (through
// ./mkimage) for the sandbox ("pause") image, and tests use it for the
// programs they run in pods. It never contacts a registry; pods that use
// these images must say imagePullPolicy: Never (or IfNotPresent).
package node

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Namespace is the containerd namespace the kubelet's CRI plugin uses.
const Namespace = "k8s.io"

// PauseImage is the sandbox image node.sh builds from ./pause and points
// containerd's sandbox_image at (BOOTSTRAP_TEST_NODE_PAUSE_IMAGE).
const PauseImage = "localhost/bootstrap-testenv/pause:1"

// File is one file of an image.
type File struct {
	// Path is where the file is in the image, absolute ("/probe").
	Path string
	// Source is the file on this machine to copy.
	Source string
	// Mode is the file's permission bits; 0 means 0555.
	Mode fs.FileMode
}

// Image is a one-layer image of static files on an empty root file system.
type Image struct {
	// Name is the full reference containerd and the kubelet know the image
	// by, such as localhost/bootstrap-testenv/probe:1.
	Name string
	// Files are the image's files; their parent directories are added.
	Files []File
	// Entrypoint is the command the image runs.
	Entrypoint []string
	// User is the image's user, numeric ("65532:65532"), so that pods with
	// runAsNonRoot can run it.
	User string
	// Env is the image's environment ("KEY=value").
	Env []string
	// OS and Arch are the image's platform; empty means this machine's.
	OS, Arch string
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

type blob struct {
	digest string
	data   []byte
}

func newBlob(data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{digest: "sha256:" + hex.EncodeToString(sum[:]), data: data}
}

// epoch dates every file, so the same files give the same digests.
var epoch = time.Unix(0, 0).UTC()

// WriteArchive writes img as an OCI image layout in a tar archive, its
// index naming the image in the io.containerd.image.name annotation.
// The same files give the same bytes.
func (img Image) WriteArchive(w io.Writer) error {
	if err := img.check(); err != nil {
		return err
	}
	layer, err := img.layer()
	if err != nil {
		return err
	}
	osName, arch := img.OS, img.Arch
	if osName == "" {
		osName = runtime.GOOS
	}
	if arch == "" {
		arch = runtime.GOARCH
	}
	env := img.Env
	if env == nil {
		env = []string{"PATH=/"}
	}
	config, err := json.Marshal(map[string]any{
		"architecture": arch,
		"os":           osName,
		"created":      epoch.Format(time.RFC3339),
		"config": map[string]any{
			"Entrypoint": img.Entrypoint,
			"User":       img.User,
			"Env":        env,
			"WorkingDir": "/",
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layer.digest}},
	})
	if err != nil {
		return err
	}
	cfg := newBlob(config)
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: cfg.digest, Size: int64(len(cfg.data))},
		"layers":        []descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: layer.digest, Size: int64(len(layer.data))}},
	})
	if err != nil {
		return err
	}
	man := newBlob(manifest)
	tag := img.Name[strings.LastIndex(img.Name, ":")+1:]
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []descriptor{{
			MediaType: "application/vnd.oci.image.manifest.v1+json",
			Digest:    man.digest,
			Size:      int64(len(man.data)),
			Annotations: map[string]string{
				"io.containerd.image.name":          img.Name,
				"org.opencontainers.image.ref.name": tag,
			},
			Platform: &platform{Architecture: arch, OS: osName},
		}},
	})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
	}
	put := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, b := range []blob{layer, cfg, man} {
		if err := put("blobs/sha256/"+strings.TrimPrefix(b.digest, "sha256:"), b.data); err != nil {
			return err
		}
	}
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := put("index.json", index); err != nil {
		return err
	}
	return tw.Close()
}

// WriteArchiveFile writes img's archive to the file at path.
func (img Image) WriteArchiveFile(path string) error {
	var buf bytes.Buffer
	if err := img.WriteArchive(&buf); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func (img Image) check() error {
	var errs []error
	if img.Name == "" || !strings.Contains(img.Name, "/") || !strings.Contains(img.Name[strings.LastIndex(img.Name, "/"):], ":") {
		errs = append(errs, fmt.Errorf("node: image name %q: want a full reference with a tag, like localhost/bootstrap-testenv/probe:1", img.Name))
	}
	if len(img.Files) == 0 {
		errs = append(errs, errors.New("node: image has no files"))
	}
	if len(img.Entrypoint) == 0 {
		errs = append(errs, errors.New("node: image has no entrypoint"))
	}
	for _, f := range img.Files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
			errs = append(errs, fmt.Errorf("node: file path %q: want a clean absolute path", f.Path))
		}
	}
	return errors.Join(errs...)
}

// layer is the uncompressed tar of the image's files and their parents.
func (img Image) layer() (blob, error) {
	files := append([]File(nil), img.Files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		name := strings.TrimPrefix(f.Path, "/")
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if dirs[d] {
				break
			}
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch}); err != nil {
				return blob{}, err
			}
		}
		data, err := os.ReadFile(f.Source)
		if err != nil {
			return blob{}, fmt.Errorf("node: image file %s: %w", f.Path, err)
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o555
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(mode.Perm()), Size: int64(len(data)), ModTime: epoch}); err != nil {
			return blob{}, err
		}
		if _, err := tw.Write(data); err != nil {
			return blob{}, err
		}
	}
	if err := tw.Close(); err != nil {
		return blob{}, err
	}
	return newBlob(buf.Bytes()), nil
}

// Compile builds the Go package pkg (a path or ./pattern relative to dir)
// into out as a static binary: CGO_ENABLED=0, -trimpath, stripped.
func Compile(ctx context.Context, dir, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("node: go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// Import imports the archive at path into the k8s.io namespace of the
// containerd listening on address, with the ctr binary at ctr:
//
//	ctr --address ADDRESS -n k8s.io images import ARCHIVE
func Import(ctx context.Context, ctr, address, archive string) error {
	cmd := exec.CommandContext(ctx, ctr, "--address", address, "-n", Namespace, "images", "import", archive)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("node: ctr images import %s: %w\n%s", archive, err, b)
	}
	return nil
}

// Remove deletes the image name from the k8s.io namespace of the containerd
// listening on address; an image that is not there is no error.
func Remove(ctx context.Context, ctr, address, name string) error {
	cmd := exec.CommandContext(ctx, ctr, "--address", address, "-n", Namespace, "images", "rm", name)
	if b, err := cmd.CombinedOutput(); err != nil && !strings.Contains(string(b), "not found") {
		return fmt.Errorf("node: ctr images rm %s: %w\n%s", name, err, b)
	}
	return nil
}
