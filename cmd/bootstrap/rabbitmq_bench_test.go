package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/health-data-ai/bootstrap/internal/benchtest"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// BenchmarkRabbitMQ runs the binary on N RabbitMQ objects in a vhost of
// their own, N = 100, 1,000 and 10,000: N/4 topic exchanges, N/4 durable
// queues and N/2 bindings (each queue bound twice to its exchange). It
// reports the cold apply, the no-op re-run (x-cold = no-op/cold), the cold
// apply per object and the binary's peak RSS. The broker's own bulk path
// is the baseline of internal/amqp's BenchmarkTopology1000.
func BenchmarkRabbitMQ(b *testing.B) {
	rmq := testenv.RabbitMQ(b)
	bin := benchtest.Build(b, ".")
	env := append(os.Environ(), "BENCH_RMQ="+rmq.Password)
	for _, n := range []int{100, 1000, 10000} {
		b.Run("objects="+strconv.Itoa(n), func(b *testing.B) {
			var ours benchtest.Applies
			for b.Loop() {
				vh := testenv.Unique("bq")
				ours.Measure(b, bin, env, rabbitConfig(rmq, vh, n))
				rabbitDelete(rmq, "/vhosts/"+vh)
			}
			ours.Report(b, n)
		})
	}
}

func rabbitConfig(rmq testenv.RabbitServer, vh string, n int) string {
	var c strings.Builder
	fmt.Fprintf(&c, `version: 1
secrets: {source: {type: env, env: {prefix: BENCH_}}}
rabbitmq:
  - name: events
    host: %s
    port: %d
    managementPort: %d
    user: %s
    password: {secret: rmq}
    vhosts: [{name: %s}]
    exchanges:
`, rmq.Host, rmq.Port, rmq.ManagementPort, rmq.User, vh)
	for i := range n / 4 {
		fmt.Fprintf(&c, "      - {vhost: %s, name: x%05d, type: topic}\n", vh, i)
	}
	c.WriteString("    queues:\n")
	for i := range n / 4 {
		fmt.Fprintf(&c, "      - {vhost: %s, name: q%05d}\n", vh, i)
	}
	c.WriteString("    bindings:\n")
	for i := range n / 4 {
		for k := range 2 {
			fmt.Fprintf(&c, "      - {vhost: %s, source: x%05d, destination: q%05d, routingKey: k.%d.%d}\n", vh, i, i, i, k)
		}
	}
	return c.String()
}
