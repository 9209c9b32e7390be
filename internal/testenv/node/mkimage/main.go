// Command mkimage writes a one-layer image of static files as an OCI image
// layout in a tar archive for `ctr images import` (see package node). The
// test environment's node.sh makes its sandbox ("pause") image with it:
//
//	mkimage -name localhost/bootstrap-testenv/pause:1 -user 65535:65535 -o pause.tar /pause=./pause
//
// Each argument is IMAGE_PATH=FILE; the entrypoint is the first IMAGE_PATH
// unless -entrypoint says otherwise.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/health-data-ai/bootstrap/internal/testenv/node"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "the image's full name, like localhost/bootstrap-testenv/pause:1")
	user := fs.String("user", "65532:65532", "the image's numeric user")
	entry := fs.String("entrypoint", "", "the command the image runs (default: the first file)")
	out := fs.String("o", "", "the archive to write")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	img := node.Image{Name: *name, User: *user}
	var bad bool
	for _, a := range fs.Args() {
		p, src, ok := strings.Cut(a, "=")
		if !ok || src == "" {
			fmt.Fprintf(stderr, "mkimage: argument %q: want IMAGE_PATH=FILE\n", a)
			bad = true
			continue
		}
		img.Files = append(img.Files, node.File{Path: p, Source: src})
	}
	if *out == "" {
		fmt.Fprintln(stderr, "mkimage: -o is required")
		bad = true
	}
	if bad {
		return 2
	}
	img.Entrypoint = []string{*entry}
	if *entry == "" && len(img.Files) > 0 {
		img.Entrypoint = []string{img.Files[0].Path}
	}
	if err := img.WriteArchiveFile(*out); err != nil {
		fmt.Fprintf(stderr, "mkimage: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", *out)
	return 0
}
