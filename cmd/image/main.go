// Command image builds the bootstrap container image without a Docker
// engine: a multi-arch (linux/amd64, linux/arm64) OCI image layout, and
// optionally its tarball for `ctr images import`, from the Dockerfile's
// final stage. `make image` runs it; internal/image does the work.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
