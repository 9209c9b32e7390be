package amqp

// Exchanges, queues and bindings are declared over AMQP, in batches per
// vhost (see declarer). AMQP fixes their properties at declaration, so
// an existing one that differs is drift for the user to resolve, never an
// update.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// fixedChange is the change for an existing exchange or queue: Noop when
// nothing differs, else drift saying what differs and how to resolve it.
func fixedChange(resource string, diffs []string, drift func(diffs string) string) reconcile.Change {
	c := reconcile.Change{Resource: resource, Action: reconcile.Noop}
	if len(diffs) > 0 {
		c.Action = reconcile.Update
		c.Drift = drift(strings.Join(diffs, "; "))
	}
	return c
}

func appendFixed[T comparable](diffs []string, what string, have, want T) []string {
	if have != want {
		diffs = append(diffs, fmt.Sprintf("%s is %v on the server, %v in the config", what, have, want))
	}
	return diffs
}

// --- exchanges ---

func (t *Target) planExchange(s *state, d *declarer, x config.RMQExchange) reconcile.Change {
	resource := reconcile.Resource(t.name, "exchange", x.VHost, x.Name)
	cur, exists := s.exchanges[[2]string{x.VHost, x.Name}]
	if !exists {
		c := reconcile.Change{Resource: resource, Action: reconcile.Create}
		if !t.hasExchangeType(x.Type) {
			c.Drift = fmt.Sprintf("exchange %s in vhost %s: type %s is not available on this server (it has %s): enable the plugin that provides it (e.g. rabbitmq_delayed_message_exchange, rabbitmq_consistent_hash_exchange) and re-run",
				x.Name, x.VHost, x.Type, strings.Join(t.exchangeTypes(), ", "))
			return c
		}
		c.Detail = exchangeDetail(x)
		c.Apply = d.add(x.VHost, kindExchange, &declItem{x: x})
		return c
	}
	var diffs []string
	diffs = appendFixed(diffs, "type", cur.Type, x.Type)
	diffs = appendFixed(diffs, "durable", cur.Durable, x.IsDurable())
	diffs = appendFixed(diffs, "autoDelete", cur.AutoDelete, x.AutoDelete)
	diffs = appendFixed(diffs, "internal", cur.Internal, x.Internal)
	diffs = append(diffs, diffArgs(cur.Arguments, x.Arguments)...)
	return fixedChange(resource, diffs, func(diffs string) string {
		return fmt.Sprintf("exchange %s in vhost %s: %s; exchange properties cannot change: delete the exchange and re-run (its bindings go with it), or move the argument into a policy (e.g. alternate-exchange)",
			x.Name, x.VHost, diffs)
	})
}

func (t *Target) exchangeTypes() []string {
	var out []string
	for _, et := range t.ov.ExchangeTypes {
		out = append(out, et.Name)
	}
	return out
}

func (t *Target) hasExchangeType(typ string) bool {
	if len(t.ov.ExchangeTypes) == 0 {
		return true // not known: let the server decide
	}
	return slices.Contains(t.exchangeTypes(), typ)
}

func exchangeDetail(x config.RMQExchange) string {
	d := "type " + x.Type
	if x.IsDurable() {
		d += ", durable"
	}
	if x.AutoDelete {
		d += ", auto-delete"
	}
	if x.Internal {
		d += ", internal"
	}
	if len(x.Arguments) > 0 {
		d += ", arguments " + show(normalize(x.Arguments))
	}
	return d
}

// --- queues ---

func (t *Target) planQueue(s *state, d *declarer, q config.RMQQueue) reconcile.Change {
	resource := reconcile.Resource(t.name, "queue", q.VHost, q.Name)
	typ := t.queueType(s, q)
	cur, exists := s.queues[[2]string{q.VHost, q.Name}]
	if !exists {
		c := reconcile.Change{Resource: resource, Action: reconcile.Create}
		if msg := t.queueTypeUnavailable(s, typ); msg != "" {
			c.Drift = fmt.Sprintf("queue %s in vhost %s: %s", q.Name, q.VHost, msg)
			return c
		}
		args := withoutType(q.Arguments)
		if typ != "" {
			// Explicit even when it is the vhost default, so the queue gets
			// the type the config means whatever the server's default.
			args = withType(args, typ)
		}
		c.Detail = queueDetail(q, typ)
		c.Apply = d.add(q.VHost, kindQueue, &declItem{q: q, qargs: args})
		return c
	}
	want := typ
	if want == "" {
		want = "classic"
	}
	var diffs []string
	diffs = appendFixed(diffs, "type", queueTypeOf(cur), want)
	diffs = appendFixed(diffs, "durable", cur.Durable, q.IsDurable())
	diffs = appendFixed(diffs, "autoDelete", cur.AutoDelete, q.AutoDelete)
	diffs = append(diffs, diffArgs(withoutType(cur.Arguments), withoutType(q.Arguments))...)
	return fixedChange(resource, diffs, func(diffs string) string {
		return fmt.Sprintf("queue %s in vhost %s: %s; queue properties cannot change: delete the queue and re-run (its messages are lost; drain it first), or move the argument into a policy (dead-letter-exchange, message-ttl, max-length, delivery-limit ...)",
			q.Name, q.VHost, diffs)
	})
}

// queueType resolves the type a queue should have: its own, else the
// default of its vhost as the config declares it, else as the server has
// it. "" means the server default (classic).
func (t *Target) queueType(s *state, q config.RMQQueue) string {
	if q.Type != "" {
		return q.Type
	}
	if qt, ok := q.Arguments["x-queue-type"].(string); ok {
		return qt
	}
	for _, v := range t.cfg.VHosts {
		if v.Name == q.VHost && v.DefaultQueueType != "" {
			return v.DefaultQueueType
		}
	}
	if v, ok := s.vhosts[q.VHost]; ok {
		return vhostDQT(v)
	}
	return ""
}

// withoutType leaves x-queue-type out of the arguments that are compared
// and shown: it is the queue's type, compared and shown on its own.
func withoutType(args map[string]any) map[string]any {
	if _, ok := args["x-queue-type"]; !ok {
		return args
	}
	out := make(map[string]any, len(args))
	for k, v := range args {
		if k != "x-queue-type" {
			out[k] = v
		}
	}
	return out
}

func withType(args map[string]any, typ string) map[string]any {
	out := make(map[string]any, len(args)+1)
	for k, v := range args {
		out[k] = v
	}
	out["x-queue-type"] = typ
	return out
}

// queueTypeUnavailable explains why the server cannot hold a queue of type
// typ, or returns "".
func (t *Target) queueTypeUnavailable(s *state, typ string) string {
	flag := map[string]string{"quorum": "quorum_queue", "stream": "stream_queue"}[typ]
	if flag == "" || s.flags == nil {
		return ""
	}
	state, known := s.flags[flag]
	switch {
	case !known:
		return fmt.Sprintf("type %s is not supported by RabbitMQ %s (no %s feature flag): upgrade RabbitMQ (quorum queues need 3.8, streams 3.9) or use type classic", typ, s.version, flag)
	case state != "enabled":
		return fmt.Sprintf("type %s needs the %s feature flag, which is %s: run `rabbitmqctl enable_feature_flag %s` and re-run", typ, flag, state, flag)
	}
	return ""
}

func queueDetail(q config.RMQQueue, typ string) string {
	if typ == "" {
		typ = "classic (server default)"
	}
	d := "type " + typ
	if q.IsDurable() {
		d += ", durable"
	}
	if q.AutoDelete {
		d += ", auto-delete"
	}
	if a := withoutType(q.Arguments); len(a) > 0 {
		d += ", arguments " + show(normalize(a))
	}
	return d
}

// --- bindings ---

// bindingResource names a binding .../binding/VHOST/SOURCE/TYPE/DEST/KEY;
// bindings that differ only in their arguments (headers exchanges) get
// "@args-" and a short hash of the arguments appended, so each has a name
// of its own in the report.
func bindingResource(target, vhost, src, dtype, dst, key string, args map[string]any) string {
	r := reconcile.Resource(target, "binding", vhost, src, dtype, dst, key)
	if len(args) == 0 {
		return r
	}
	sum := sha256.Sum256([]byte(argsKey(args)))
	return r + "@args-" + hex.EncodeToString(sum[:4])
}

// planBinding never updates: a binding is all key, so one that differs is
// another binding, created next to the old one, which is left alone.
func (t *Target) planBinding(s *state, d *declarer, b config.RMQBinding) reconcile.Change {
	dtype := b.DestinationType // defaulted by config.ApplyDefaults
	c := reconcile.Change{Resource: bindingResource(t.name, b.VHost, b.Source, dtype, b.Destination, b.RoutingKey, b.Arguments)}
	if s.bindings[bindingKey(b.VHost, b.Source, dtype, b.Destination, b.RoutingKey, b.Arguments)] {
		c.Action = reconcile.Noop
		return c
	}
	c.Action = reconcile.Create
	c.Detail = fmt.Sprintf("%s -> %s %s, routing key %q", b.Source, dtype, b.Destination, b.RoutingKey)
	if len(b.Arguments) > 0 {
		c.Detail += ", arguments " + show(normalize(b.Arguments))
	}
	c.Apply = d.add(b.VHost, kindBinding, &declItem{b: b})
	return c
}
