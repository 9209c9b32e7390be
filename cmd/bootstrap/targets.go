package main

import (
	"log/slog"

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
