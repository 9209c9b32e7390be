package amqp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/health-data-ai/bootstrap/internal/config"
)

type declKind int

const (
	kindExchange declKind = iota
	kindQueue
	kindBinding
)

// declItem is one exchange, queue or binding to declare, and what became of
// it.
type declItem struct {
	x     config.RMQExchange
	q     config.RMQQueue
	qargs map[string]any // queue arguments with x-queue-type resolved
	b     config.RMQBinding

	ran      bool  // declared (successfully or not) by some batch run
	reported bool  // the result was returned by the item's own Apply
	err      error // the result
}

func (it *declItem) what(kind declKind, vhost string) string {
	switch kind {
	case kindExchange:
		return fmt.Sprintf("declare exchange %s in vhost %s", it.x.Name, vhost)
	case kindQueue:
		return fmt.Sprintf("declare queue %s in vhost %s", it.q.Name, vhost)
	default:
		return fmt.Sprintf("bind %s %s to exchange %s in vhost %s with routing key %q",
			it.b.DestinationType, it.b.Destination, it.b.Source, vhost, it.b.RoutingKey)
	}
}

// batch groups the pending declarations of one kind in one vhost. The
// engine applies changes one by one; declaring them one round trip at a
// time would make 3,000 objects take seconds. So the first Apply of a batch
// declares every pending item of the batch at once, over several channels,
// and each later Apply returns its own item's result. A retried Apply (or
// one whose item was not reached because ctx ended) declares again, which
// is harmless: declarations are idempotent.
type batch struct {
	vhost string
	kind  declKind
	mu    sync.Mutex
	items []*declItem
}

func (b *batch) apply(ctx context.Context, t *Target, it *declItem) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if it.ran && !it.reported {
		it.reported = true
		return it.err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", it.what(b.kind, b.vhost), err)
	}
	var run []*declItem
	for _, x := range b.items {
		if !x.ran || x == it {
			x.ran, x.err = false, nil
			run = append(run, x)
		}
	}
	t.declare(ctx, b.vhost, b.kind, run)
	it.reported = true
	if !it.ran {
		return fmt.Errorf("%s: %w", it.what(b.kind, b.vhost), context.Cause(ctx))
	}
	return it.err
}

// declarer hands out the Apply funcs of one plan's exchange, queue and
// binding changes, grouped into batches.
type declarer struct {
	t       *Target
	batches map[batchKey]*batch
}

type batchKey struct {
	vhost string
	kind  declKind
}

func newDeclarer(t *Target) *declarer {
	return &declarer{t: t, batches: map[batchKey]*batch{}}
}

func (d *declarer) add(vhost string, kind declKind, it *declItem) func(context.Context) error {
	k := batchKey{vhost, kind}
	b := d.batches[k]
	if b == nil {
		b = &batch{vhost: vhost, kind: kind}
		d.batches[k] = b
	}
	b.items = append(b.items, it)
	return func(ctx context.Context) error { return b.apply(ctx, d.t, it) }
}

// declare declares items over AMQP when the admin user can open the vhost,
// else through the management API. Items it does not reach (ctx ended)
// stay !ran.
func (t *Target) declare(ctx context.Context, vhost string, kind declKind, items []*declItem) {
	conn, err := t.adminConn(ctx, vhost)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		// The management API can do the same; AMQP is only faster.
		t.log.Info("declaring through the management API", "vhost", vhost, "reason", "no AMQP connection: "+err.Error())
		t.declareHTTP(ctx, vhost, kind, items, err)
		return
	}
	t.declareAMQP(ctx, conn, vhost, kind, items)
	// A connection-level error (an unknown exchange type is one in AMQP
	// 0-9-1, as is a network blip) fails every declaration in flight, not
	// just its cause. Declare the failed ones again through the management
	// API, where each request stands alone: only the faulty one fails again.
	if !conn.IsClosed() || ctx.Err() != nil {
		return
	}
	var again []*declItem
	for _, it := range items {
		if it.ran && it.err != nil {
			it.ran, it.err = false, nil
			again = append(again, it)
		}
	}
	if len(again) > 0 {
		t.log.Info("declaring through the management API", "vhost", vhost, "reason", "the AMQP connection was closed", "objects", len(again))
		t.declareHTTP(ctx, vhost, kind, again, errors.New("connection closed by the broker"))
	}
}

// parallel runs fn over items with up to declareWorkers workers; each
// worker has its own state (an AMQP channel). Items not started when ctx
// ends are left alone.
func parallel[S any](ctx context.Context, items []*declItem, open func() S, fn func(*S, *declItem), done func(*S)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(declareWorkers, len(items)) {
		wg.Go(func() {
			s := open()
			defer done(&s)
			for {
				i := int(next.Add(1)) - 1
				if i >= len(items) || ctx.Err() != nil {
					return
				}
				fn(&s, items[i])
			}
		})
	}
	wg.Wait()
}

func (t *Target) declareAMQP(ctx context.Context, conn *amqp091.Connection, vhost string, kind declKind, items []*declItem) {
	// Closing the connection is the only way to interrupt a pending AMQP
	// method; adminConn dials a new one next time.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	parallel(ctx, items,
		func() *amqp091.Channel { return nil },
		func(ch **amqp091.Channel, it *declItem) {
			if *ch == nil {
				c, err := conn.Channel()
				if err != nil {
					it.ran, it.err = true, fmt.Errorf("%s: open AMQP channel: %w", it.what(kind, vhost), orCtx(ctx, err))
					return
				}
				*ch = c
			}
			err := declareOne(*ch, kind, it)
			it.ran = true
			if err != nil {
				it.err = fmt.Errorf("%s: %w", it.what(kind, vhost), orCtx(ctx, err))
				// A failed method (406 PRECONDITION_FAILED, 404 NOT_FOUND)
				// closes the channel, not the connection: use a fresh one.
				_ = (*ch).Close()
				*ch = nil
			}
		},
		func(ch **amqp091.Channel) {
			if *ch != nil {
				_ = (*ch).Close()
			}
		})
}

// orCtx prefers the context's error: a method interrupted by a cancelled
// run says so rather than "connection closed".
func orCtx(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func declareOne(ch *amqp091.Channel, kind declKind, it *declItem) error {
	switch kind {
	case kindExchange:
		x := it.x
		return ch.ExchangeDeclare(x.Name, x.Type, x.IsDurable(), x.AutoDelete, x.Internal, false, toTable(x.Arguments))
	case kindQueue:
		q := it.q
		_, err := ch.QueueDeclare(q.Name, q.IsDurable(), q.AutoDelete, false, false, toTable(it.qargs))
		return err
	default:
		b := it.b
		if b.DestinationType == "exchange" {
			return ch.ExchangeBind(b.Destination, b.RoutingKey, b.Source, false, toTable(b.Arguments))
		}
		return ch.QueueBind(b.Destination, b.RoutingKey, b.Source, false, toTable(b.Arguments))
	}
}

// declareHTTP declares items through the management API; amqpErr is why
// AMQP could not be used, added to authorisation failures (both usually
// have the same cause: the admin user has no permissions in the vhost).
func (t *Target) declareHTTP(ctx context.Context, vhost string, kind declKind, items []*declItem, amqpErr error) {
	parallel(ctx, items,
		func() struct{} { return struct{}{} },
		func(_ *struct{}, it *declItem) {
			var err error
			switch kind {
			case kindExchange:
				x := it.x
				err = t.api.do(ctx, "PUT", path("exchanges", vhost, x.Name), map[string]any{
					"type": x.Type, "durable": x.IsDurable(), "auto_delete": x.AutoDelete,
					"internal": x.Internal, "arguments": toJSONArgs(x.Arguments),
				}, nil)
			case kindQueue:
				q := it.q
				err = t.api.do(ctx, "PUT", path("queues", vhost, q.Name), map[string]any{
					"durable": q.IsDurable(), "auto_delete": q.AutoDelete, "arguments": toJSONArgs(it.qargs),
				}, nil)
			default:
				b := it.b
				d := "q"
				if b.DestinationType == "exchange" {
					d = "e"
				}
				err = t.api.do(ctx, "POST", path("bindings", vhost, "e", b.Source, d, b.Destination), map[string]any{
					"routing_key": b.RoutingKey, "arguments": toJSONArgs(b.Arguments),
				}, nil)
			}
			it.ran = true
			switch {
			case err == nil:
			case isStatus(err, 401) || isStatus(err, 403):
				it.err = fmt.Errorf("%s: %w (and over AMQP: %v): give user %q permissions in the vhost", it.what(kind, vhost), err, amqpErr, t.cfg.User)
			default:
				it.err = fmt.Errorf("%s: %w", it.what(kind, vhost), err)
			}
		},
		func(*struct{}) {})
}
