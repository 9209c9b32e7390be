// Command bootstrap brings the Health Data AI Platform's data layer to its
// desired state: credentials, Kubernetes Secrets, PostgreSQL, Redis, MinIO
// and RabbitMQ. See DESIGN.md for the contract; run does all the work.
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
