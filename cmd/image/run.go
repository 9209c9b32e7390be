package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"golang.org/x/sync/errgroup"

	"github.com/health-data-ai/bootstrap/internal/image"
)

const (
	exitOK      = 0
	exitFailed  = 1
	exitInvalid = 2
)

const usage = `usage: image [flags]

Builds the bootstrap image from the Dockerfile's final stage, without Docker,
as an OCI image layout (and, with --tar, its tarball for ctr images import).

  --dockerfile PATH    the Dockerfile (default Dockerfile)
  --dir DIR            the module root to compile ./cmd/bootstrap in (default .)
  --version V          stamped into the binary and the version label (default dev)
  --name REF           the image's name (default bootstrap:VERSION); the layout
                       names it in full, docker.io/library/bootstrap:VERSION
  --base BASE          local (default): a distroless-like base made here, offline;
                       dockerfile: the Dockerfile's FROM, pulled from its registry;
                       oci-layout:PATH: an OCI image layout; or any image reference
  --platforms LIST     default linux/amd64,linux/arm64
  --binary P=PATH      a prebuilt static binary for platform P (repeatable);
                       platforms without one are compiled
  --out DIR            the OCI layout to write (default bin/image)
  --tar PATH           also write the layout as a tarball
  --go CMD             the go command (default go)

SOURCE_DATE_EPOCH, else the git commit time, else 0, dates every file and the
config, so the same sources give the same digest.
`

type binaries map[string]string

func (b binaries) String() string { return fmt.Sprint(map[string]string(b)) }

func (b binaries) Set(s string) error {
	p, path, ok := strings.Cut(s, "=")
	if !ok || path == "" {
		return fmt.Errorf("want PLATFORM=PATH, got %q", s)
	}
	pl, err := v1.ParsePlatform(p)
	if err != nil {
		return err
	}
	b[pl.String()] = path
	return nil
}

type options struct {
	dockerfile, dir, version, name, base, platforms, out, tar, goCmd string
	binaries                                                         binaries
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o := options{binaries: binaries{}}
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.dockerfile, "dockerfile", "Dockerfile", "")
	fs.StringVar(&o.dir, "dir", ".", "")
	fs.StringVar(&o.version, "version", "dev", "")
	fs.StringVar(&o.name, "name", "", "")
	fs.StringVar(&o.base, "base", image.BaseLocal, "")
	fs.StringVar(&o.platforms, "platforms", "linux/amd64,linux/arm64", "")
	fs.Var(o.binaries, "binary", "")
	fs.StringVar(&o.out, "out", "bin/image", "")
	fs.StringVar(&o.tar, "tar", "", "")
	fs.StringVar(&o.goCmd, "go", "go", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return exitOK
		}
		fmt.Fprintf(stderr, "error: %s\n\n%s", err, usage)
		return exitInvalid
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "error: unexpected argument %q\n\n%s", fs.Arg(0), usage)
		return exitInvalid
	}
	if o.name == "" {
		o.name = "bootstrap:" + o.version
	}
	var plats []v1.Platform
	for _, s := range strings.Split(o.platforms, ",") {
		p, err := v1.ParsePlatform(strings.TrimSpace(s))
		if err == nil && (p.OS == "" || p.Architecture == "") {
			err = fmt.Errorf("%q: want OS/ARCH", s)
		}
		if err != nil {
			fmt.Fprintf(stderr, "error: --platforms: %s\n", err)
			return exitInvalid
		}
		plats = append(plats, *p)
	}
	imageName, err := image.ImageName(o.name)
	if err != nil {
		fmt.Fprintf(stderr, "error: --name: %s\n", err)
		return exitInvalid
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if err := build(ctx, o, plats, imageName, log, stdout); err != nil {
		fmt.Fprintf(stderr, "error: %s\n", err)
		return exitFailed
	}
	return exitOK
}

func build(ctx context.Context, o options, plats []v1.Platform, imageName string, log *slog.Logger, stdout io.Writer) error {
	start := time.Now()
	f, err := os.Open(o.dockerfile)
	if err != nil {
		return err
	}
	df, err := image.ParseDockerfile(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", o.dockerfile, err)
	}
	spec, err := df.Final(map[string]string{"VERSION": o.version})
	if err != nil {
		return fmt.Errorf("%s: %w", o.dockerfile, err)
	}
	epoch, source, err := image.SourceDateEpoch(ctx, os.Getenv("SOURCE_DATE_EPOCH"), o.dir)
	if err != nil {
		return err
	}
	log.Info("image", "name", imageName, "base", o.base, "epoch", epoch.Format(time.RFC3339), "epoch_from", source)

	tmp, err := os.MkdirTemp("", "bootstrap-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bins := map[string]string{}
	g, gctx := errgroup.WithContext(ctx)
	for _, p := range plats {
		if b, ok := o.binaries[p.String()]; ok {
			bins[p.String()] = b
			continue
		}
		out := filepath.Join(tmp, "bootstrap-"+strings.ReplaceAll(p.String(), "/", "-"))
		bins[p.String()] = out
		g.Go(func() error {
			t := time.Now()
			err := image.Compile(gctx, image.CompileOptions{Go: o.goCmd, Dir: o.dir, Version: o.version, Platform: p, Out: out})
			if err == nil {
				log.Info("compiled", "platform", p.String(), "package", image.Package, "duration", time.Since(t).Round(time.Millisecond))
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}

	t := time.Now()
	idx, err := image.Build(ctx, image.Options{
		Spec: spec, Base: o.base, Platforms: plats, Binaries: bins, Epoch: epoch, Logger: log,
	})
	if err != nil {
		return err
	}
	digest, err := image.WriteLayout(o.out, idx, imageName)
	if err != nil {
		return err
	}
	log.Info("wrote layout", "path", o.out, "digest", digest.String(), "duration", time.Since(t).Round(time.Millisecond))
	if o.tar != "" {
		if err := image.WriteTar(o.out, o.tar, epoch); err != nil {
			return err
		}
		log.Info("wrote tarball", "path", o.tar)
	}

	// Sizes from what was written, so a pulled base is not fetched again.
	written, err := layout.ImageIndexFromPath(o.out)
	if err != nil {
		return fmt.Errorf("read back %s: %w", o.out, err)
	}
	wi, err := written.ImageIndex(digest)
	if err != nil {
		return fmt.Errorf("read back %s: %w", o.out, err)
	}
	im, err := wi.IndexManifest()
	if err != nil {
		return fmt.Errorf("read back %s: %w", o.out, err)
	}
	fmt.Fprintf(stdout, "%s %s\n", imageName, digest)
	for _, d := range im.Manifests {
		img, err := wi.Image(d.Digest)
		if err != nil {
			return fmt.Errorf("read back %s: %w", o.out, err)
		}
		s, err := image.Sizes(img)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "  %-15s %s  %5.1f MiB compressed, %5.1f MiB uncompressed\n",
			d.Platform.String(), d.Digest, mib(s.Compressed), mib(s.Uncompressed))
	}
	fmt.Fprintf(stdout, "layout %s", o.out)
	if o.tar != "" {
		fmt.Fprintf(stdout, ", tarball %s", o.tar)
	}
	fmt.Fprintf(stdout, " (%s)\n", time.Since(start).Round(100*time.Millisecond))
	return nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
