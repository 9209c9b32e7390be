package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// LocalBaseFiles are the host files the local base copies.
type LocalBaseFiles struct {
	// CACerts is the CA bundle; "" means Debian's
	// /etc/ssl/certs/ca-certificates.crt. It must exist: bootstrap talks
	// TLS to OCI Vault.
	CACerts string
	// Zoneinfo is the tz database; "" means /usr/share/zoneinfo. Copied
	// when present.
	Zoneinfo string
}

const (
	defaultCACerts  = "/etc/ssl/certs/ca-certificates.crt"
	defaultZoneinfo = "/usr/share/zoneinfo"

	// NonrootUID is distroless's nonroot user and group.
	NonrootUID = 65532
)

// The accounts of gcr.io/distroless/static-debian12; nonroot's home is the
// Dockerfile's WORKDIR. No login shell: there is none in the image.
const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group = "root:x:0:\n" +
		"nobody:x:65534:\n" +
		"tty:x:5:\n" +
		"staff:x:50:\n" +
		"nonroot:x:65532:\n"
	// Go's resolver reads it; "files dns" is also what it assumes without.
	nsswitch = "hosts: files dns\n"
)

// LocalBase is a base image with the layout of
// gcr.io/distroless/static-debian12:nonroot for what a static Go binary
// needs, made without a registry: /etc/passwd and /etc/group (root,
// nobody, nonroot 65532), /home/nonroot (owned by 65532, mode 0700), /root,
// /tmp (1777), this machine's CA bundle and tz database. It holds no
// executable file at all, no shell, no package manager. Its config is
// distroless's: user 65532, working directory /home/nonroot, PATH and
// SSL_CERT_FILE. Its one layer is the same for every platform; the same
// host files and epoch give the same digest.
func LocalBase(p v1.Platform, epoch time.Time, lf LocalBaseFiles) (v1.Image, error) {
	if lf.CACerts == "" {
		lf.CACerts = defaultCACerts
	}
	if lf.Zoneinfo == "" {
		lf.Zoneinfo = defaultZoneinfo
	}
	var fs files
	fs.addDir("etc", 0o755, 0, 0)
	fs.addFile("etc/passwd", []byte(passwd), 0o644, 0, 0)
	fs.addFile("etc/group", []byte(group), 0o644, 0, 0)
	fs.addFile("etc/nsswitch.conf", []byte(nsswitch), 0o644, 0, 0)
	ca, err := os.ReadFile(lf.CACerts)
	if err != nil {
		return nil, fmt.Errorf("image: local base: CA bundle (install Debian's ca-certificates): %w", err)
	}
	fs.addFile("etc/ssl/certs/ca-certificates.crt", ca, 0o644, 0, 0)
	fs.addDir("home/nonroot", 0o700, NonrootUID, NonrootUID)
	fs.addDir("root", 0o700, 0, 0)
	fs.addDir("tmp", 0o1777, 0, 0)
	if err := fs.addTree("usr/share/zoneinfo", lf.Zoneinfo); err != nil {
		return nil, fmt.Errorf("image: local base: zoneinfo: %w", err)
	}
	layer, err := fs.layer(epoch, types.OCILayer)
	if err != nil {
		return nil, fmt.Errorf("image: local base: %w", err)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: epoch},
			CreatedBy: "internal/image: local base like gcr.io/distroless/static-debian12:nonroot",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("image: local base: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image: local base: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: epoch}
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	if p.Architecture == "arm64" && p.Variant == "" {
		cf.Variant = "v8" // as distroless's own arm64 image says
	}
	cf.Config = v1.Config{
		User:       fmt.Sprint(NonrootUID),
		WorkingDir: "/home/nonroot",
		Env: []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
		},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image: local base: %w", err)
	}
	return img, nil
}

// files is a layer's content, keyed by clean relative path.
type files struct {
	hdrs   map[string]tar.Header
	bodies map[string][]byte
}

func (f *files) put(h tar.Header, body []byte) {
	if f.hdrs == nil {
		f.hdrs, f.bodies = map[string]tar.Header{}, map[string][]byte{}
	}
	f.hdrs[h.Name], f.bodies[h.Name] = h, body
}

func (f *files) addDir(p string, mode int64, uid, gid int) {
	p = clean(p)
	f.put(tar.Header{Typeflag: tar.TypeDir, Name: p, Mode: mode, Uid: uid, Gid: gid}, nil)
}

func (f *files) addFile(p string, body []byte, mode int64, uid, gid int) {
	p = clean(p)
	f.put(tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: mode, Uid: uid, Gid: gid, Size: int64(len(body))}, body)
}

func (f *files) addSymlink(p, target string) {
	p = clean(p)
	f.put(tar.Header{Typeflag: tar.TypeSymlink, Name: p, Linkname: target, Mode: 0o777}, nil)
}

// addTree copies the host folder src to dst: folders 0755, files 0644
// (never executable, whatever the host says), relative symlinks that stay
// inside the tree; owned by root. A missing src adds nothing.
func (f *files) addTree(dst, src string) error {
	if _, err := os.Stat(src); os.IsNotExist(err) {
		return nil
	}
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		name := path.Join(dst, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			f.addDir(name, 0o755, 0, 0)
		case d.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			// Debian's zoneinfo/localtime points at /etc/localtime, which
			// the image does not have: leave dangling links out.
			resolved := path.Join(path.Dir(name), filepath.ToSlash(target))
			if path.IsAbs(target) || !strings.HasPrefix(resolved+"/", dst+"/") {
				return nil
			}
			f.addSymlink(name, filepath.ToSlash(target))
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			f.addFile(name, b, 0o644, 0, 0)
		}
		return nil
	})
}

func clean(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }

// layer writes the files as one tar, parents before children in path
// order, every time epoch, and gzips it: the same files give the same
// bytes and so the same digest.
func (f *files) layer(epoch time.Time, mt types.MediaType) (v1.Layer, error) {
	for p := range f.hdrs {
		for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := f.hdrs[d]; !ok {
				f.addDir(d, 0o755, 0, 0)
			}
		}
	}
	names := make([]string, 0, len(f.hdrs))
	for p := range f.hdrs {
		names = append(names, p)
	}
	// A parent is a prefix of its children, so it sorts first.
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range names {
		h := f.hdrs[p]
		if h.Typeflag == tar.TypeDir {
			h.Name += "/"
		}
		h.ModTime = epoch.UTC().Truncate(time.Second)
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			return nil, fmt.Errorf("tar %s: %w", p, err)
		}
		if _, err := tw.Write(f.bodies[p]); err != nil {
			return nil, fmt.Errorf("tar %s: %w", p, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("tar: %w", err)
	}
	b := buf.Bytes()
	// gzip's default level: on the 37 MiB binary, best compression takes
	// 2.4 times as long for the same 12 MiB. Compressed once, then cached.
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(mt), tarball.WithCompressionLevel(gzip.DefaultCompression), tarball.WithCompressedCaching)
}
