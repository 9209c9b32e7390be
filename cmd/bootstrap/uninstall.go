package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/health-data-ai/bootstrap/internal/uninstall"
)

const uninstallUsage = `usage: bootstrap uninstall --namespace NS[,NS...] --selector SELECTOR

Removes what helm uninstall leaves of a release: the Jobs, Pods, ConfigMaps,
ServiceAccounts, Roles and RoleBindings matching SELECTOR (which must pin
app.kubernetes.io/instance) in each namespace. Never a Secret, SealedSecret,
volume or data. The chart runs it as a post-delete hook.

  --namespace LIST     namespaces to clean (comma-separated)
  --selector SELECTOR  label selector, e.g. app.kubernetes.io/instance=hp,app.kubernetes.io/component=bootstrap
  --log-format FORMAT  text | json (default text)
  --log-level LEVEL    debug | info | warn | error (default info)
`

// runUninstall is `bootstrap uninstall`: it needs no config file, only the
// API server (in-cluster config, KUBECONFIG or ~/.kube/config).
func runUninstall(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bootstrap uninstall", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var namespaces, logFormat, logLevel string
	var o uninstall.Options
	fs.StringVar(&namespaces, "namespace", "", "")
	fs.StringVar(&o.Selector, "selector", "", "")
	fs.StringVar(&logFormat, "log-format", "text", "")
	fs.StringVar(&logLevel, "log-level", "info", "")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "error: %s\n\n%s", err, uninstallUsage)
		return exitInvalid
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "error: unexpected argument %q\n\n%s", fs.Arg(0), uninstallUsage)
		return exitInvalid
	}
	for _, ns := range strings.Split(namespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			o.Namespaces = append(o.Namespaces, ns)
		}
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintf(stderr, "error: %s\nnothing was touched\n", err)
		return exitInvalid
	}
	log := newLogger(stderr, logFormat, logLevel)
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		fmt.Fprintf(stderr, "error: kubernetes client (in-cluster config, KUBECONFIG or ~/.kube/config): %s\n", err)
		return exitFailed
	}
	rc.UserAgent = "bootstrap"
	dc, err := dynamic.NewForConfig(rc)
	if err != nil {
		fmt.Fprintf(stderr, "error: kubernetes client: %s\n", err)
		return exitFailed
	}
	removed, err := uninstall.Run(ctx, dc, o, log)
	for _, r := range removed {
		fmt.Fprintf(stdout, "- deleted %s\n", r)
	}
	if err != nil {
		fmt.Fprintf(stderr, "error: %s\n", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "Uninstall complete: %d object(s) deleted.\n", len(removed))
	return exitOK
}
