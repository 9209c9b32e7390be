package amqp

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/health-data-ai/bootstrap/internal/benchtest"
	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

const benchObjects = 1000

// BenchmarkTopology1000 applies 1,000 exchanges, 1,000 queues and 1,000
// bindings into an empty vhost (connect + plan + apply, as `bootstrap
// apply` does, in process) and, in the same iteration, imports the same
// objects into another empty vhost with one POST /api/definitions, the
// broker's own bulk path. It reports x-definitions = ours/definitions and
// x-cold = no-op re-run (connect + plan, nothing to apply)/cold, of
// medians.
func BenchmarkTopology1000(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	var ours, defs, noop benchtest.Series
	for b.Loop() {
		vo, vd := testenv.Unique("bench-ours"), testenv.Unique("bench-defs")
		for _, vh := range []string{vo, vd} {
			f.must(b, "PUT", path("vhosts", vh), map[string]any{})
		}
		cfg := f.config()
		topology(&cfg, vo)
		body := definitionsOf(topology(&config.RabbitMQ{}, vd))

		start := time.Now()
		applyAll(b, f.target(cfg), ctx, 3*benchObjects)
		ours.AddMs(time.Since(start))

		start = time.Now()
		if err := f.admin.do(ctx, "POST", path("definitions"), body, nil); err != nil {
			b.Fatalf("POST /api/definitions: %v", err)
		}
		defs.AddMs(time.Since(start))

		start = time.Now()
		applyAll(b, f.target(cfg), ctx, 0)
		noop.AddMs(time.Since(start))

		// Both ways built the same thing.
		var got definitions
		f.get(b, path("definitions", vd), &got)
		if len(got.Exchanges) != benchObjects || len(got.Queues) != benchObjects || len(got.Bindings) != benchObjects {
			b.Fatalf("definitions import made %d/%d/%d objects", len(got.Exchanges), len(got.Queues), len(got.Bindings))
		}
		for _, vh := range []string{vo, vd} {
			cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			if err := f.admin.do(cctx, "DELETE", path("vhosts", vh), nil, nil); err != nil {
				b.Errorf("cleanup vhost %s: %v", vh, err)
			}
			cancel()
		}
	}
	ours.Report(b, "cold-ms")
	defs.Report(b, "definitions-ms")
	noop.Report(b, "noop-ms")
	benchtest.Ratio(b, "x-definitions", ours, defs)
	benchtest.Ratio(b, "x-cold", noop, ours)
}

// topology fills cfg with benchObjects topic exchanges, classic durable
// queues and one binding between each pair, in vhost vh.
func topology(cfg *config.RabbitMQ, vh string) *config.RabbitMQ {
	for i := range benchObjects {
		x, q := fmt.Sprintf("bench.x%04d", i), fmt.Sprintf("bench.q%04d", i)
		cfg.Exchanges = append(cfg.Exchanges, config.RMQExchange{VHost: vh, Name: x, Type: "topic"})
		cfg.Queues = append(cfg.Queues, config.RMQQueue{VHost: vh, Name: q})
		cfg.Bindings = append(cfg.Bindings, config.RMQBinding{VHost: vh, Source: x, Destination: q, DestinationType: "queue", RoutingKey: fmt.Sprintf("k.%d.#", i)})
	}
	return cfg
}

// definitionsOf renders the exchanges, queues and bindings of cfg as a
// definitions document.
func definitionsOf(cfg *config.RabbitMQ) map[string]any {
	var xs, qs, bs []map[string]any
	for _, x := range cfg.Exchanges {
		xs = append(xs, map[string]any{"vhost": x.VHost, "name": x.Name, "type": x.Type, "durable": x.IsDurable(),
			"auto_delete": x.AutoDelete, "internal": x.Internal, "arguments": map[string]any{}})
	}
	for _, q := range cfg.Queues {
		qs = append(qs, map[string]any{"vhost": q.VHost, "name": q.Name, "durable": q.IsDurable(),
			"auto_delete": q.AutoDelete, "arguments": map[string]any{}})
	}
	for _, b := range cfg.Bindings {
		bs = append(bs, map[string]any{"vhost": b.VHost, "source": b.Source, "destination": b.Destination,
			"destination_type": b.DestinationType, "routing_key": b.RoutingKey, "arguments": map[string]any{}})
	}
	return map[string]any{"exchanges": xs, "queues": qs, "bindings": bs}
}

// applyAll connects, plans and applies every change, as the engine does,
// and checks the number of writes.
func applyAll(b *testing.B, tgt *Target, ctx context.Context, wantWrites int) {
	b.Helper()
	defer tgt.Close()
	if err := tgt.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	changes, err := tgt.Plan(ctx)
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, c := range changes {
		if c.Apply == nil {
			continue
		}
		if err := c.Apply(ctx); err != nil {
			b.Fatalf("%s: %v", c.Resource, err)
		}
		if c.Action != reconcile.Check {
			n++
		}
	}
	if n != wantWrites {
		b.Fatalf("apply made %d changes, want %d", n, wantWrites)
	}
}
