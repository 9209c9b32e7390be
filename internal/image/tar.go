package image

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// WriteTar packs the OCI layout in dir into the tarball out, the form
// `ctr -n k8s.io images import` and `docker load` accept: paths relative to
// the layout's root, in path order, every time epoch, owned by root, so
// that the same layout gives the same tarball. It writes beside out first.
func WriteTar(dir, out string, epoch time.Time) (err error) {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("image: tarball %s: %w", out, err)
	}
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return fmt.Errorf("image: tarball %s: %w", out, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	tw := tar.NewWriter(f)
	// WalkDir visits in lexical order: oci-layout and index.json after
	// blobs/, which importers do not mind (containerd reads the whole tar
	// before it interprets index.json).
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: epoch.UTC().Truncate(time.Second), Format: tar.FormatPAX}
		if d.IsDir() {
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
			return tw.WriteHeader(h)
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file", p)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, info.Size()
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err != nil {
		return fmt.Errorf("image: tarball %s of %s: %w", out, dir, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("image: tarball %s: %w", out, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("image: tarball %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("image: tarball %s: %w", out, err)
	}
	if err := os.Rename(f.Name(), out); err != nil {
		return fmt.Errorf("image: tarball %s: %w", out, err)
	}
	return nil
}
