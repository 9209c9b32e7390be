#!/usr/bin/env bash
# bench.sh — every benchmark, each beside its baseline measured in the same
# iterations, at least five iterations each (min/median/max), written to
# BENCHMARKS.md with the machine, the date, the server versions, the scale
# picture (BENCHMARKS.svg) and the binary's size by module. Needs the real
# servers (scripts/testenv.sh up). Go's benchmark output is kept in bench.out
# for benchstat.
#
#   BENCHTIME  iterations per benchmark, as -benchtime (default 5x; at least 5)
#   BENCH_OUT  where to keep go test's output (default bench.out); what was
#              measured beside it (machine, load, versions, probes) is kept in
#              the same name with .env
#   BENCH_REPORT_ONLY=1  measure nothing: write BENCHMARKS.md and the picture
#              again from the kept BENCH_OUT and its .env (after a change to
#              scripts/benchplot)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${BENCH_OUT:-bench.out}
BENCHTIME=${BENCHTIME:-5x}
n=${BENCHTIME%x}
if ! [[ $BENCHTIME =~ ^[0-9]+x$ ]] || [ "$n" -lt 5 ]; then
  echo "bench.sh: BENCHTIME must be Nx with N >= 5 (min/median/max need five runs), got $BENCHTIME" >&2
  exit 2
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK" ./.benchprobe.*' EXIT
ENV=${OUT%.out}.env

report() {
  # The binary as shipped but with symbols, for the size table.
  CGO_ENABLED=0 go build -trimpath -o "$WORK/bootstrap" ./cmd/bootstrap
  go run ./scripts/benchplot -bench "$OUT" -env "$ENV" -bin "$WORK/bootstrap" -md BENCHMARKS.md -svg BENCHMARKS.svg
  echo
  cat BENCHMARKS.md
}
if [ "${BENCH_REPORT_ONLY:-}" = 1 ]; then
  [ -s "$OUT" ] && [ -s "$ENV" ] || { echo "bench.sh: BENCH_REPORT_ONLY needs $OUT and $ENV from a run" >&2; exit 2; }
  report
  exit 0
fi

# The servers the benchmarks use, from the test environment's env file.
envfile=$(scripts/testenv.sh env) || exit 1
eval "$envfile"
export BOOTSTRAP_TEST_REQUIRE=1

{
  echo "date=$(date -u +%Y-%m-%d)"
  echo "machine=$(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, $(uname -sr) $(uname -m)"
  echo "cores=$(nproc)"
  echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "go=$(go version | sed 's/^go version //')"
} >"$ENV"

BENCHES='^(BenchmarkPlatform|BenchmarkPostgres|BenchmarkRabbitMQ|BenchmarkBuckets|BenchmarkApply100|BenchmarkTopology1000|BenchmarkBuckets200|BenchmarkRedisRoundtrip|BenchmarkUnchanged)$'
go test -p 1 -run '^$' -bench "$BENCHES" -benchtime "$BENCHTIME" -count 1 -timeout 60m \
  ./cmd/bootstrap ./internal/initdb/postgres ./internal/initdb/redis ./internal/amqp ./internal/buckets ./internal/secrets/seal | tee "$OUT"
echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$ENV"

versions() {
  local pg=() h p rmq_cfg overview minio_pid
  for v in BOOTSTRAP_TEST_PG_HEALTH BOOTSTRAP_TEST_PG_AUTH; do
    h=${!v%:*} p=${!v##*:}
    pg+=("$(PGPASSWORD=$BOOTSTRAP_TEST_PG_PASSWORD PGSSLMODE=disable psql -XAt -h "$h" -p "$p" -U postgres -d postgres -c 'SHOW server_version' 2>/dev/null || echo unknown) on :$p")
  done
  echo "postgres=PostgreSQL ${pg[0]}, ${pg[1]} (SHOW server_version)"
  h=${BOOTSTRAP_TEST_REDIS_HEALTH%:*} p=${BOOTSTRAP_TEST_REDIS_HEALTH##*:}
  echo "redis=Redis $(REDISCLI_AUTH=$BOOTSTRAP_TEST_REDIS_PASSWORD redis-cli --no-auth-warning -h "$h" -p "$p" INFO server 2>/dev/null |
    tr -d '\r' | sed -n 's/^redis_version://p') (INFO server)"
  rmq_cfg=$WORK/curl-rmq.cfg
  (umask 077 && printf 'user = "%s:%s"\n' "$BOOTSTRAP_TEST_RABBITMQ_USER" "$BOOTSTRAP_TEST_RABBITMQ_PASSWORD" >"$rmq_cfg")
  overview=$(curl -s -K "$rmq_cfg" "http://$BOOTSTRAP_TEST_RABBITMQ_MGMT/api/overview" || true)
  echo "rabbitmq=RabbitMQ $(grep -o '"rabbitmq_version":"[^"]*"' <<<"$overview" | cut -d'"' -f4) on Erlang $(grep -o '"erlang_version":"[^"]*"' <<<"$overview" | cut -d'"' -f4) (GET /api/overview)"
  minio_pid=$(cat "${BOOTSTRAP_TESTENV_DIR:-/var/tmp/bootstrap-testenv}/minio/minio.pid" 2>/dev/null || true)
  echo "minio=MinIO (Server: $(curl -sI "http://$BOOTSTRAP_TEST_MINIO/minio/health/live" | tr -d '\r' | sed -n 's/^Server: //p')), module $(
    go version -m "/proc/$minio_pid/exe" 2>/dev/null | awk '$1 == "mod" {print $2 "@" $3}' || echo unknown) (go version -m of the running server)"
}
versions >>"$ENV"
awk '/^BenchmarkPlatform/ {for (i = 3; i < NF; i++) if ($(i + 1) == "binary-MiB") print "binary_mib=" $i}' "$OUT" >>"$ENV"

# Probes: what the Kubernetes code bootstrap links costs at start, against
# what its use of Kubernetes needs (see BENCHMARKS.md, Binary size).
probe() {
  local name=$1 d
  shift
  d=$(mktemp -d ./.benchprobe.XXXXXX)
  mkdir "$d/p"
  { printf 'package main\n\nimport (\n'; printf '\t_ "%s"\n' "$@"; printf ')\n\nfunc main() {}\n'; } >"$d/p/main.go"
  CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$d/bin" "./$d/p"
  echo "probe_${name}_size=$(stat -c %s "$d/bin")"
  echo "probe_${name}_rss=$(for _ in 1 2 3 4 5; do /usr/bin/time -f %M "$d/bin" 2>&1; done | sort -n | sed -n 3p)"
  echo "probe_${name}_imports=$(printf '%s ' "$@" | sed 's/ $//; s/ /, /g')"
  rm -rf "$d"
}
probe before k8s.io/client-go/kubernetes github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1 \
  github.com/bitnami-labs/sealed-secrets/pkg/client/clientset/versioned k8s.io/client-go/dynamic k8s.io/client-go/tools/clientcmd >>"$ENV"
probe now k8s.io/client-go/rest k8s.io/api/core/v1 github.com/bitnami-labs/sealed-secrets/pkg/crypto \
  k8s.io/client-go/dynamic k8s.io/client-go/tools/clientcmd >>"$ENV"

report
