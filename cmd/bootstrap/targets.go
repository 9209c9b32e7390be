package main

import (
	"log/slog"
	"maps"
	"slices"

	"github.com/health-data-ai/bootstrap/internal/amqp"
	"github.com/health-data-ai/bootstrap/internal/buckets"
	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/initdb/postgres"
	"github.com/health-data-ai/bootstrap/internal/initdb/redis"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// buildTargets makes one target per selected instance, in config order.
// Adding a backend means one loop here and nothing else in the CLI.
func buildTargets(cfg *config.Config, include func(string) bool, creds credential.Resolved, log *slog.Logger) []reconcile.Target {
	// Said on every run (serve included), not once at start-up: a
	// setting that lets anyone in between read the credentials should
	// never scroll out of sight.
	unverified := cfg.UnverifiedTLS(include)
	for _, target := range slices.Sorted(maps.Keys(unverified)) {
		log.Warn("the server's certificate is not checked: anyone in between can read the credentials; give tls.caFile (PostgreSQL: sslmode verify-full)",
			"target", target, "setting", unverified[target])
	}
	var ts []reconcile.Target
	add := func(t reconcile.Target) {
		if include(t.Name()) {
			ts = append(ts, t)
		}
	}
	// Each backend scopes the logger to its target (target=KIND/NAME).
	for _, c := range cfg.Postgres {
		add(postgres.New(c, creds, log))
	}
	for _, c := range cfg.Redis {
		add(redis.New(c, creds, log))
	}
	for _, c := range cfg.MinIO {
		add(buckets.New(c, creds, log))
	}
	for _, c := range cfg.RabbitMQ {
		add(amqp.New(c, creds, log))
	}
	return ts
}
