// Command pause is the sandbox ("pause") process of the test environment's
// node (scripts/testenv.d/node.sh): containerd runs it as the first process
// of every pod, and node.sh runs it to hold the node's mount namespace open.
//
// It sleeps until SIGTERM or SIGINT and then exits 0. It reaps no children
// and touches nothing: no files, no network, no other signals.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
