#!/usr/bin/env bash
# testenv.sh — real servers for the tests, on loopback, on ports of their own.
#
#   scripts/testenv.sh [up [SERVER...]]   start what is not running (default: all), write the env file
#   scripts/testenv.sh down [SERVER...]   stop by PID what this script started
#   scripts/testenv.sh env                print the env file (source it, or let internal/testenv read it)
#   scripts/testenv.sh status             say what runs where
#   scripts/testenv.sh clean              down, then delete the data folder
#
# SERVER is one of: tls postgres redis rabbitmq minio, and those scripts/testenv.d
# adds (helm qemu compose kube node). down stops them in reverse order.
#
# Everything lives in ${BOOTSTRAP_TESTENV_DIR:-/var/tmp/bootstrap-testenv} (outside
# the repo): data, logs, PID files, generated passwords and the env file with the
# BOOTSTRAP_TEST_* variables internal/testenv reads. Built binaries (MinIO) are
# cached in ${BOOTSTRAP_CACHE_DIR:-$HOME/.cache/bootstrap-testenv}, keyed by version.
#
# The machine may run its own PostgreSQL (5432), Redis (6379), RabbitMQ (5672)
# and epmd (4369): this script never touches them. It stops only processes
# whose PID it recorded, and RabbitMQ gets an epmd of its own on its own port.
#
# PostgreSQL, Redis, RabbitMQ and MinIO also speak TLS, with a certificate for
# localhost and 127.0.0.1 from a CA made once in $DIR/tls (PostgreSQL on its
# plain-text port, the others on TLS ports of their own), so tests check a real
# handshake, a wrong CA and a wrong server name.
#
# Each server is four functions — <server>_up, <server>_down, <server>_alive,
# <server>_env — listed in SERVERS; a new server (kube-apiserver, etcd) is four
# more functions and one word in SERVERS.
set -euo pipefail

DIR=${BOOTSTRAP_TESTENV_DIR:-/var/tmp/bootstrap-testenv}
CACHE=${BOOTSTRAP_CACHE_DIR:-$HOME/.cache/bootstrap-testenv}
TIMEOUT=${BOOTSTRAP_TESTENV_TIMEOUT:-90}
HOST=127.0.0.1

PG_HEALTH_PORT=25432
PG_AUTH_PORT=25433
REDIS_HEALTH_PORT=26379
REDIS_AUTH_PORT=26380
REDIS_HEALTH_TLS_PORT=26479
REDIS_AUTH_TLS_PORT=26480
RABBITMQ_PORT=35672
RABBITMQ_MGMT_PORT=35673
RABBITMQ_DIST_PORT=35674
RABBITMQ_EPMD_PORT=35675
RABBITMQ_TLS_PORT=35676
RABBITMQ_MGMT_TLS_PORT=35677
RABBITMQ_NODE=bootstrap-test@localhost
RABBITMQ_USER=testadmin
MINIO_PORT=29000
MINIO_CONSOLE_PORT=29001
MINIO_TLS_PORT=29100
MINIO_TLS_CONSOLE_PORT=29101
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
MINIO_BIN=$CACHE/minio-$MINIO_VERSION/minio

SERVERS="tls postgres redis rabbitmq minio"

# More servers and tools live in scripts/testenv.d/*.sh: each defines the
# four functions of its server and appends its name to SERVERS, so adding
# one never edits this file.
MARKER=.bootstrap-testenv

log() { printf 'testenv: %s\n' "$*" >&2; }
die() { printf 'testenv: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------
# helpers

is_root() { [ "$(id -u)" = 0 ]; }

# pid_alive PIDFILE NAME: the PID in PIDFILE runs and its command line
# mentions NAME (so a PID reused by an unrelated process is not "ours").
pid_alive() {
  local pidfile=$1 name=$2 pid
  [ -s "$pidfile" ] || return 1
  pid=$(head -n1 "$pidfile" | tr -dc 0-9)
  [ -n "$pid" ] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$name"
}

# gone PID: the process has exited. A zombie counts: PID 1 here reaps only
# every second or two.
gone() { ! kill -0 "$1" 2>/dev/null || [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" = Z ]; }

# stop_pid PIDFILE NAME [SECONDS]: TERM, wait, then KILL; removes the PID file.
stop_pid() {
  local pidfile=$1 name=$2 wait=${3:-30} pid i
  if pid_alive "$pidfile" "$name"; then
    pid=$(head -n1 "$pidfile" | tr -dc 0-9)
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < wait * 10; i++)); do
      gone "$pid" && break
      sleep 0.1
    done
    if ! gone "$pid"; then
      log "$name (pid $pid) ignored TERM for ${wait}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

# port_busy PORT: something listens on HOST:PORT.
port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# need_free_port NAME PORT: fail clearly when a stranger holds our port.
need_free_port() {
  if port_busy "$2"; then
    die "$1: port $HOST:$2 is already taken by a process this script did not start (see: ss -ltnp 'sport = :$2')"
  fi
}

# wait_for NAME LOGFILE CMD...: run CMD until it succeeds or TIMEOUT passes.
wait_for() {
  local name=$1 logfile=$2 deadline=$((SECONDS + TIMEOUT))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "$name not ready after ${TIMEOUT}s; last lines of $logfile:"
      tail -n 20 "$logfile" 2>/dev/null | sed 's/^/    /' >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

# secret NAME: a generated password kept in $DIR/secrets, stable across up/down.
secret() {
  local f=$DIR/secrets/$1
  if [ ! -s "$f" ]; then
    (umask 077 && mkdir -p "$DIR/secrets" &&
      head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24 >"$f.tmp" &&
      mv "$f.tmp" "$f")
  fi
  cat "$f"
}

# start_bg PIDFILE LOGFILE CMD...: run CMD in a session of its own (so neither
# a terminal hangup nor a kill of the caller's process group reaches it), with
# every descriptor away from the caller, and record its PID. Without job
# control the subshell is not a group leader, so setsid does not fork and $!
# is CMD's PID.
start_bg() {
  local pidfile=$1 logfile=$2
  shift 2
  setsid "$@" </dev/null >>"$logfile" 2>&1 9>&- &
  echo $! >"$pidfile"
}

# curl_auth USER PASSWORD URL: HTTP status of GET URL, with the credentials fed
# on stdin so they never show in a process list.
curl_auth() {
  printf 'user = "%s:%s"\n' "$1" "$2" |
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 -K - "$3"
}

# ---------------------------------------------------------------------------
# TLS: one CA for every server, made once with openssl into $DIR/tls.
#
#   ca.pem, ca-key.pem            CA "bootstrap-testenv CA"
#   server.pem, server-key.pem    DNS:localhost and IP:127.0.0.1, serverAuth
#   client.pem, client-key.pem    clientAuth, for servers that check client certs
#   other-ca.pem, other-ca-key.pem  an unrelated CA, for "wrong CA" tests
#
# Each server reads a copy of its own (PostgreSQL reads its key only when it
# owns it and nobody else can read it). A "tls" entry in SERVERS makes them and
# exports the paths; every server that needs them makes them too, so
# `up redis` alone works.

TLS_FILES="ca.pem ca-key.pem server.pem server-key.pem client.pem client-key.pem other-ca.pem other-ca-key.pem"

tls_dir() { echo "$DIR/tls"; }

# tls_ok: every file is there and the leaves verify against the CA (not
# expired). One openssl run: it runs before every server's start.
tls_ok() {
  local d f
  d=$(tls_dir)
  for f in $TLS_FILES; do [ -s "$d/$f" ] || return 1; done
  openssl verify -CAfile "$d/ca.pem" "$d/server.pem" "$d/client.pem" >/dev/null 2>&1
}

# tls_pair NAME: NAME.pem in the current folder matches NAME-key.pem and
# expires in more than a day.
tls_pair() {
  [ -s "$1.pem" ] && [ -s "$1-key.pem" ] &&
    openssl x509 -noout -checkend 86400 -in "$1.pem" >/dev/null 2>&1 &&
    [ "$(openssl x509 -noout -pubkey -in "$1.pem" 2>/dev/null)" = "$(openssl pkey -pubout -in "$1-key.pem" 2>/dev/null)" ]
}

# tls_ca NAME CN: a self-signed CA, NAME.pem and NAME-key.pem, in the current folder.
tls_ca() {
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1-key.pem" -out "$1.pem" -days 3650 \
    -subj "/CN=$2" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign >/dev/null 2>&1
}

# tls_leaf NAME CN EXTENSIONS: NAME.pem and NAME-key.pem signed by ca.pem, in
# the current folder. EXTENSIONS are openssl x509 extension lines.
tls_leaf() {
  local rc=0
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n%s\n' "$3" >"$1.ext" &&
    openssl req -newkey rsa:2048 -nodes -keyout "$1-key.pem" -out "$1.csr" -subj "/CN=$2" >/dev/null 2>&1 &&
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -set_serial "0x$(openssl rand -hex 16)" \
      -out "$1.pem" -days 3650 -extfile "$1.ext" >/dev/null 2>&1 || rc=1
  rm -f "$1.csr" "$1.ext"
  return $rc
}

# tls_certs: make what is missing in $DIR/tls, keeping a CA that is there (and
# re-signing the leaves under it), so certificates copied elsewhere stay valid.
tls_certs() {
  local d f tmp
  d=$(tls_dir)
  tls_ok && return 0
  command -v openssl >/dev/null || die "tls: openssl is needed"
  log "tls: making certificates in $d"
  tmp=$d.tmp
  rm -rf "$tmp"
  (
    umask 077
    mkdir -p "$d" "$tmp"
    cd "$tmp" || exit 1
    for f in ca other-ca; do
      cp "$d/$f.pem" "$d/$f-key.pem" . 2>/dev/null || true
      tls_pair "$f" || rm -f "$f.pem" "$f-key.pem"
    done
    # errexit does not reach here (this subshell is left of ||): each step says.
    { [ -s ca.pem ] || tls_ca ca "bootstrap-testenv CA"; } &&
      { [ -s other-ca.pem ] || tls_ca other-ca "bootstrap-testenv other CA"; } &&
      tls_leaf server localhost "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth" &&
      tls_leaf client bootstrap-testenv-client "extendedKeyUsage=clientAuth" || exit 1
    chmod 644 ca.pem other-ca.pem server.pem client.pem
    chmod 600 ./*-key.pem
    # The old leaves go first and the CA moves last, beside its key: a run cut
    # short leaves tls_ok false, and the next one keeps whichever CA is in
    # place with its key and signs the leaves again.
    rm -f "$d/server.pem" "$d/client.pem"
    mv -f other-ca-key.pem other-ca.pem server-key.pem server.pem client-key.pem client.pem "$d/"
    mv -f ca-key.pem ca.pem "$d/"
  ) || die "tls: could not make the certificates (openssl failed)"
  rm -rf "$tmp"
  chmod 755 "$d"
  tls_ok || die "tls: the certificates in $d do not verify"
}

# tls_install FOLDER CERT KEY CA: copies (0600) of the server certificate,
# its key and the CA, under the names the server wants.
tls_install() {
  local dest=$1 d
  d=$(tls_dir)
  (umask 077 && mkdir -p "$dest" "$(dirname "$dest/$4")")
  install -m 600 "$d/server.pem" "$dest/$2"
  install -m 600 "$d/server-key.pem" "$dest/$3"
  install -m 600 "$d/ca.pem" "$dest/$4"
}

# tls_serves PORT [STARTTLS]: a TLS handshake with HOST:PORT succeeds and the
# certificate verifies against our CA for HOST; a server started before it had
# TLS, or with an older CA, fails it and is restarted. STARTTLS is an
# openssl s_client -starttls protocol (postgres).
tls_serves() {
  local args=(-connect "$HOST:$1" -CAfile "$(tls_dir)/ca.pem" -verify_return_error -verify_ip "$HOST")
  if [ -n "${2:-}" ]; then args+=(-starttls "$2"); fi
  timeout 10 openssl s_client "${args[@]}" </dev/null >/dev/null 2>&1
}

tls_up() { tls_certs; }
tls_down() { :; }
tls_alive() { tls_ok; }
tls_env() {
  local d
  d=$(tls_dir)
  echo "export BOOTSTRAP_TEST_TLS_CA='$d/ca.pem'"
  echo "export BOOTSTRAP_TEST_TLS_OTHER_CA='$d/other-ca.pem'"
  echo "export BOOTSTRAP_TEST_TLS_CLIENT_CERT='$d/client.pem'"
  echo "export BOOTSTRAP_TEST_TLS_CLIENT_KEY='$d/client-key.pem'"
}

# ---------------------------------------------------------------------------
# packages

need_packages() {
  local missing=()
  [ -n "$(pg_bin)" ] || missing+=(postgresql)
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || missing+=(redis-server)
  [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
  command -v curl >/dev/null || missing+=(curl)
  command -v openssl >/dev/null || missing+=(openssl)
  # GNU time: the benchmarks' peak RSS of a child (see internal/benchtest).
  [ -x /usr/bin/time ] || missing+=(time)
  [ ${#missing[@]} -eq 0 ] && return 0
  is_root || die "missing packages: ${missing[*]} (install them as root: apt-get install -y ${missing[*]})"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${missing[@]}" >/dev/null
}

# pg_bin: the newest installed PostgreSQL's bin folder (PG_BIN overrides).
pg_bin() {
  if [ -n "${PG_BIN:-}" ]; then
    echo "$PG_BIN"
    return
  fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1) || true
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
  return 0
}

# ---------------------------------------------------------------------------
# PostgreSQL: instances "health" and "auth", scram-sha-256, superuser postgres.

pg_user() { if is_root; then echo postgres; else id -un; fi; }
as_pg() { if is_root; then runuser -u postgres -- "$@"; else "$@"; fi; }

pg_port() { case $1 in health) echo $PG_HEALTH_PORT ;; auth) echo $PG_AUTH_PORT ;; esac; }

pg_instance_alive() {
  local d=$DIR/pg-$1
  [ -f "$d/data/postmaster.pid" ] || return 1
  as_pg "$(pg_bin)/pg_ctl" -D "$d/data" status >/dev/null 2>&1
}

# pg_psql INSTANCE: psql as postgres on the instance's socket, SQL on stdin
# (so nothing is on a command line). PGPASSWORD reaches psql alone.
pg_psql() {
  PGPASSWORD=$(secret pg-password) "$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 \
    -h "$DIR/pg-$1/sock" -p "$(pg_port "$1")" -U postgres -d postgres >/dev/null
}

# pg_cleartext_hba INSTANCE: the pg_hba.conf line that asks role
# bootstrap_cleartext for a cleartext password, above initdb's host lines, so
# tests can check clients refuse to send one. Status 0 when it added the line.
pg_cleartext_hba() {
  local f=$DIR/pg-$1/data/pg_hba.conf tmp
  grep -q '^hostssl[[:space:]].*bootstrap_cleartext' "$f" && return 1
  tmp=$(mktemp)
  awk '!done && /^host/ { print "hostssl all bootstrap_cleartext 127.0.0.1/32 password"; done = 1 } { print }' "$f" >"$tmp"
  # Rewritten in place: the file keeps its owner and mode.
  cat "$tmp" >"$f"
  rm -f "$tmp"
}

# pg_cleartext_role INSTANCE: role bootstrap_cleartext, whose password is the
# superuser's. Its SCRAM verifier is copied inside the server, so no password
# reaches the SQL text, which log_statement=all writes to server.log.
pg_cleartext_role() {
  pg_psql "$1" <<'EOF'
DO $$
DECLARE v text := (SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres');
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bootstrap_cleartext') THEN
    EXECUTE format('CREATE ROLE bootstrap_cleartext LOGIN PASSWORD %L', v);
  END IF;
END $$;
EOF
}

pg_instance_up() {
  local inst=$1 port d bin pw
  port=$(pg_port "$inst")
  d=$DIR/pg-$inst
  bin=$(pg_bin)
  tls_certs
  if pg_instance_alive "$inst"; then
    if tls_serves "$port" postgres; then
      if pg_cleartext_hba "$inst"; then
        as_pg "$bin/pg_ctl" -D "$d/data" reload >/dev/null
      fi
      pg_cleartext_role "$inst" || die "postgres $inst: could not create role bootstrap_cleartext"
      log "postgres $inst: running on $HOST:$port (TLS on the same port)"
      return 0
    fi
    log "postgres $inst: running without TLS (or with an older CA); restarting"
    pg_instance_down "$inst"
  fi
  need_free_port "postgres $inst" "$port"
  pw=$(secret pg-password)
  mkdir -p "$d/sock"
  chmod 755 "$d"
  if [ ! -f "$d/data/PG_VERSION" ]; then
    log "postgres $inst: initdb"
    rm -rf "$d/data"
    (umask 077 && printf '%s\n' "$pw" >"$d/pwfile")
    is_root && chown -R postgres: "$d"
    if ! as_pg "$bin/initdb" -D "$d/data" -U postgres --auth=scram-sha-256 \
      --pwfile="$d/pwfile" -E UTF8 --locale=C.UTF-8 >"$d/initdb.log" 2>&1; then
      rm -f "$d/pwfile"
      tail -n 20 "$d/initdb.log" >&2
      die "postgres $inst: initdb failed (log: $d/initdb.log)"
    fi
    rm -f "$d/pwfile"
  fi
  pg_cleartext_hba "$inst" || true
  # PostgreSQL reads a key only when it owns it and nobody else can read it.
  tls_install "$d/tls" server.pem server-key.pem ca.pem
  is_root && chown -R postgres: "$d"
  log "postgres $inst: starting on $HOST:$port (TLS on the same port)"
  # log_statement=all puts every statement in server.log, so tests can scan it
  # for passwords that leaked into SQL text. ssl=on leaves plain text allowed:
  # initdb's "host" lines accept both.
  if ! as_pg "$bin/pg_ctl" -D "$d/data" -l "$d/server.log" -w -t "$TIMEOUT" \
    -o "-p $port -c listen_addresses=$HOST -k $d/sock -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c log_statement=all -c log_line_prefix='%m [%p] %q%u@%d ' -c ssl=on -c ssl_cert_file=$d/tls/server.pem -c ssl_key_file=$d/tls/server-key.pem -c ssl_ca_file=$d/tls/ca.pem" \
    start >"$d/pg_ctl.log" 2>&1 9>&-; then
    tail -n 20 "$d/server.log" >&2 2>/dev/null || true
    die "postgres $inst: did not start within ${TIMEOUT}s (log: $d/server.log)"
  fi
  wait_for "postgres $inst" "$d/server.log" "$bin/pg_isready" -q -h "$HOST" -p "$port" ||
    die "postgres $inst: not accepting connections on $HOST:$port"
  tls_serves "$port" postgres || die "postgres $inst: no TLS on $HOST:$port (log: $d/server.log)"
  pg_cleartext_role "$inst" || die "postgres $inst: could not create role bootstrap_cleartext"
}

pg_instance_down() {
  local d=$DIR/pg-$1
  if pg_instance_alive "$1"; then
    log "postgres $1: stopping"
    as_pg "$(pg_bin)/pg_ctl" -D "$d/data" -m fast -w -t 60 stop >/dev/null
  fi
}

postgres_up() { pg_instance_up health && pg_instance_up auth; }
postgres_down() { pg_instance_down health; pg_instance_down auth; }
postgres_alive() { pg_instance_alive health && pg_instance_alive auth; }
postgres_env() {
  echo "export BOOTSTRAP_TEST_PG_HEALTH='$HOST:$PG_HEALTH_PORT'"
  echo "export BOOTSTRAP_TEST_PG_AUTH='$HOST:$PG_AUTH_PORT'"
  echo "export BOOTSTRAP_TEST_PG_PASSWORD='$(secret pg-password)'"
  echo "export BOOTSTRAP_TEST_PG_HEALTH_LOG='$DIR/pg-health/server.log'"
  echo "export BOOTSTRAP_TEST_PG_AUTH_LOG='$DIR/pg-auth/server.log'"
}

# ---------------------------------------------------------------------------
# Redis: instances "health" and "auth", both with requirepass, each with a
# TLS port beside the plain one (client certificates optional).

redis_port() { case $1 in health) echo $REDIS_HEALTH_PORT ;; auth) echo $REDIS_AUTH_PORT ;; esac; }
redis_tls_port() { case $1 in health) echo $REDIS_HEALTH_TLS_PORT ;; auth) echo $REDIS_AUTH_TLS_PORT ;; esac; }

redis_ping() { REDISCLI_AUTH=$(secret redis-password) redis-cli -h "$HOST" -p "$1" ping 2>/dev/null | grep -q PONG; }

redis_instance_alive() { pid_alive "$DIR/redis-$1/redis.pid" redis-server; }

redis_instance_up() {
  local inst=$1 port tport d
  port=$(redis_port "$inst")
  tport=$(redis_tls_port "$inst")
  d=$DIR/redis-$inst
  tls_certs
  if redis_instance_alive "$inst"; then
    if tls_serves "$tport"; then
      log "redis $inst: running on $HOST:$port (TLS $tport)"
      return 0
    fi
    log "redis $inst: running without TLS on $tport (or with an older CA); restarting"
    redis_instance_down "$inst"
  fi
  rm -f "$d/redis.pid"
  need_free_port "redis $inst" "$port"
  need_free_port "redis $inst TLS" "$tport"
  mkdir -p "$d"
  tls_install "$d/tls" server.pem server-key.pem ca.pem
  # The password goes in a 0600 config file, not on the command line.
  (umask 077 && cat >"$d/redis.conf" <<EOF
port $port
tls-port $tport
tls-cert-file $d/tls/server.pem
tls-key-file $d/tls/server-key.pem
tls-ca-cert-file $d/tls/ca.pem
tls-auth-clients optional
bind $HOST
protected-mode yes
requirepass $(secret redis-password)
dir $d
save ""
appendonly no
daemonize yes
pidfile $d/redis.pid
logfile $d/redis.log
EOF
  )
  log "redis $inst: starting on $HOST:$port (TLS $tport)"
  redis-server "$d/redis.conf" </dev/null >>"$d/redis.log" 2>&1 9>&- ||
    die "redis $inst: redis-server failed (log: $d/redis.log)"
  wait_for "redis $inst" "$d/redis.log" redis_ping "$port" ||
    die "redis $inst: no PONG on $HOST:$port"
  tls_serves "$tport" || die "redis $inst: no TLS on $HOST:$tport (log: $d/redis.log)"
}

redis_instance_down() {
  if redis_instance_alive "$1"; then log "redis $1: stopping"; fi
  stop_pid "$DIR/redis-$1/redis.pid" redis-server
}

redis_up() { redis_instance_up health && redis_instance_up auth; }
redis_down() { redis_instance_down health; redis_instance_down auth; }
redis_alive() { redis_instance_alive health && redis_instance_alive auth; }
redis_env() {
  echo "export BOOTSTRAP_TEST_REDIS_HEALTH='$HOST:$REDIS_HEALTH_PORT'"
  echo "export BOOTSTRAP_TEST_REDIS_AUTH='$HOST:$REDIS_AUTH_PORT'"
  echo "export BOOTSTRAP_TEST_REDIS_HEALTH_TLS='$HOST:$REDIS_HEALTH_TLS_PORT'"
  echo "export BOOTSTRAP_TEST_REDIS_AUTH_TLS='$HOST:$REDIS_AUTH_TLS_PORT'"
  echo "export BOOTSTRAP_TEST_REDIS_PASSWORD='$(secret redis-password)'"
}

# ---------------------------------------------------------------------------
# RabbitMQ with the management plugin, node bootstrap-test@localhost, and an
# epmd of its own on RABBITMQ_EPMD_PORT (the system's epmd on 4369 serves the
# system's broker; we never touch it). AMQPS and HTTPS management listen
# beside the plain listeners; clients need no certificate.

rabbit_dir() { echo "$DIR/rabbitmq"; }

# rabbit_env: the environment both the server and its epmd run with. Every
# file RabbitMQ would look for in /etc is pointed into the data folder.
rabbit_export() {
  local d
  d=$(rabbit_dir)
  export HOME=$d/home
  export RABBITMQ_NODENAME=$RABBITMQ_NODE
  export RABBITMQ_NODE_IP_ADDRESS=$HOST
  export RABBITMQ_NODE_PORT=$RABBITMQ_PORT
  export RABBITMQ_DIST_PORT=$RABBITMQ_DIST_PORT
  export RABBITMQ_MNESIA_BASE=$d/mnesia
  export RABBITMQ_LOG_BASE=$d/log
  export RABBITMQ_CONFIG_FILE=$d/rabbitmq.conf
  export RABBITMQ_ADVANCED_CONFIG_FILE=$d/advanced.config
  export RABBITMQ_CONF_ENV_FILE=$d/rabbitmq-env.conf
  export RABBITMQ_ENABLED_PLUGINS_FILE=$d/enabled_plugins
  export RABBITMQ_PID_FILE=$d/beam.pid
  # Erlang distribution listens on every interface unless told otherwise.
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export ERL_EPMD_PORT=$RABBITMQ_EPMD_PORT
  export ERL_EPMD_ADDRESS=$HOST
}

rabbitmq_ready() {
  [ "$(curl_auth "$RABBITMQ_USER" "$(secret rabbitmq-password)" \
    "http://$HOST:$RABBITMQ_MGMT_PORT/api/overview")" = 200 ]
}

# rabbitmq_tls: both TLS listeners serve our CA's certificate.
rabbitmq_tls() { tls_serves "$RABBITMQ_TLS_PORT" && tls_serves "$RABBITMQ_MGMT_TLS_PORT"; }

rabbitmq_alive() { pid_alive "$(rabbit_dir)/beam.pid" beam; }

rabbitmq_up() {
  local d pw
  d=$(rabbit_dir)
  tls_certs
  if rabbitmq_alive; then
    if rabbitmq_tls; then
      log "rabbitmq: running on $HOST:$RABBITMQ_PORT (management $RABBITMQ_MGMT_PORT, TLS $RABBITMQ_TLS_PORT and $RABBITMQ_MGMT_TLS_PORT)"
      return 0
    fi
    log "rabbitmq: running without TLS (or with an older CA); restarting"
    rabbitmq_down
  fi
  # A half-dead earlier start (wrapper or epmd left behind) is cleared first.
  stop_pid "$d/wrapper.pid" rabbitmq-server 10
  stop_pid "$d/epmd.pid" epmd 5
  rm -f "$d/beam.pid"
  need_free_port rabbitmq "$RABBITMQ_PORT"
  need_free_port "rabbitmq management" "$RABBITMQ_MGMT_PORT"
  need_free_port "rabbitmq TLS" "$RABBITMQ_TLS_PORT"
  need_free_port "rabbitmq management TLS" "$RABBITMQ_MGMT_TLS_PORT"
  need_free_port "rabbitmq distribution" "$RABBITMQ_DIST_PORT"
  need_free_port "rabbitmq epmd" "$RABBITMQ_EPMD_PORT"
  pw=$(secret rabbitmq-password)
  mkdir -p "$d/home" "$d/mnesia" "$d/log"
  : >"$d/rabbitmq-env.conf"
  echo '[rabbitmq_management].' >"$d/enabled_plugins"
  tls_install "$d/tls" server.pem server-key.pem ca.pem
  # default_user is created on the first boot only; the password file is
  # kept, so later boots find the same user and password.
  (umask 077 && cat >"$d/rabbitmq.conf" <<EOF
listeners.tcp.default = $HOST:$RABBITMQ_PORT
management.tcp.ip = $HOST
management.tcp.port = $RABBITMQ_MGMT_PORT
listeners.ssl.default = $HOST:$RABBITMQ_TLS_PORT
ssl_options.cacertfile = $d/tls/ca.pem
ssl_options.certfile = $d/tls/server.pem
ssl_options.keyfile = $d/tls/server-key.pem
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
management.ssl.ip = $HOST
management.ssl.port = $RABBITMQ_MGMT_TLS_PORT
management.ssl.cacertfile = $d/tls/ca.pem
management.ssl.certfile = $d/tls/server.pem
management.ssl.keyfile = $d/tls/server-key.pem
default_user = $RABBITMQ_USER
default_pass = $pw
default_user_tags.administrator = true
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
disk_free_limit.absolute = 50MB
log.console = false
log.file.level = info
EOF
  )
  log "rabbitmq: starting on $HOST:$RABBITMQ_PORT (management $RABBITMQ_MGMT_PORT, TLS $RABBITMQ_TLS_PORT and $RABBITMQ_MGMT_TLS_PORT, epmd $RABBITMQ_EPMD_PORT)"
  (
    rabbit_export
    # Our own epmd, started by us so its PID is known and down can stop it;
    # the broker finds it through ERL_EPMD_PORT and does not start another.
    start_bg "$d/epmd.pid" "$d/log/epmd.log" epmd -port "$RABBITMQ_EPMD_PORT" -address "$HOST"
    wait_for "rabbitmq epmd" "$d/log/epmd.log" port_busy "$RABBITMQ_EPMD_PORT" ||
      die "rabbitmq: epmd did not listen on $HOST:$RABBITMQ_EPMD_PORT"
    # The /usr/lib wrapper runs as the caller (the /usr/sbin one switches user).
    start_bg "$d/wrapper.pid" "$d/log/console.log" /usr/lib/rabbitmq/bin/rabbitmq-server
  ) || exit 1
  wait_for rabbitmq "$d/log/console.log" rabbitmq_ready ||
    die "rabbitmq: management API not ready on $HOST:$RABBITMQ_MGMT_PORT (logs: $d/log)"
  # The AMQP listeners open after the management plugin's.
  wait_for "rabbitmq TLS" "$d/log/console.log" rabbitmq_tls ||
    die "rabbitmq: no TLS on $HOST:$RABBITMQ_TLS_PORT or $HOST:$RABBITMQ_MGMT_TLS_PORT (logs: $d/log)"
}

rabbitmq_down() {
  local d
  d=$(rabbit_dir)
  if rabbitmq_alive; then log "rabbitmq: stopping"; fi
  stop_pid "$d/beam.pid" beam 60
  stop_pid "$d/wrapper.pid" rabbitmq-server 10
  stop_pid "$d/epmd.pid" epmd 5
}

rabbitmq_env() {
  echo "export BOOTSTRAP_TEST_RABBITMQ='$HOST:$RABBITMQ_PORT'"
  echo "export BOOTSTRAP_TEST_RABBITMQ_MGMT='$HOST:$RABBITMQ_MGMT_PORT'"
  echo "export BOOTSTRAP_TEST_RABBITMQ_TLS='$HOST:$RABBITMQ_TLS_PORT'"
  echo "export BOOTSTRAP_TEST_RABBITMQ_MGMT_TLS='$HOST:$RABBITMQ_MGMT_TLS_PORT'"
  echo "export BOOTSTRAP_TEST_RABBITMQ_USER='$RABBITMQ_USER'"
  echo "export BOOTSTRAP_TEST_RABBITMQ_PASSWORD='$(secret rabbitmq-password)'"
}

# ---------------------------------------------------------------------------
# MinIO, built from source at a pinned version and cached outside the repo.

minio_build() {
  [ -x "$MINIO_BIN" ] && return 0
  command -v go >/dev/null || die "minio: go is needed to build $MINIO_BIN"
  local tmp t0=$SECONDS
  tmp=$(mktemp -d)
  log "minio: building $MINIO_VERSION into $(dirname "$MINIO_BIN") (about 8 minutes on two cores the first time)"
  mkdir -p "$(dirname "$MINIO_BIN")"
  # From an empty folder outside the repo, so the project's go.mod is not
  # involved; static and stripped, as MinIO's own release build is (no
  # debug information to write: the link is the slowest step).
  if ! (cd "$tmp" && GOBIN=$(dirname "$MINIO_BIN") GOFLAGS= GO111MODULE=on CGO_ENABLED=0 \
    go install -trimpath -ldflags "-s -w" "github.com/minio/minio@$MINIO_VERSION") >"$tmp/build.log" 2>&1; then
    tail -n 20 "$tmp/build.log" >&2
    die "minio: build failed (log: $tmp/build.log)"
  fi
  rm -rf "$tmp"
  log "minio: built in $((SECONDS - t0))s"
}

# MinIO serves HTTPS on its whole port once its certs folder holds
# public.crt and private.key, so TLS is a second instance: "minio" (plain
# HTTP, empty certs folder) and "minio-tls" (HTTPS, CAs/ trusts our CA), with
# the same credentials.

minio_port() { case $1 in minio) echo $MINIO_PORT ;; minio-tls) echo $MINIO_TLS_PORT ;; esac; }
minio_console_port() { case $1 in minio) echo $MINIO_CONSOLE_PORT ;; minio-tls) echo $MINIO_TLS_CONSOLE_PORT ;; esac; }

minio_ready() {
  local url=http://$HOST:$MINIO_PORT tls=()
  if [ "$1" = minio-tls ]; then url=https://$HOST:$MINIO_TLS_PORT tls=(--cacert "$(tls_dir)/ca.pem"); fi
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${tls[@]}" "$url/minio/health/ready")" = 200 ]
}

minio_instance_alive() { pid_alive "$DIR/$1/minio.pid" minio; }

# minio_instance_start INSTANCE: start it unless it runs (and, for minio-tls,
# serves our CA's certificate); the caller waits for it.
minio_instance_start() {
  local inst=$1 d=$DIR/$1 port cport
  port=$(minio_port "$inst")
  cport=$(minio_console_port "$inst")
  if minio_instance_alive "$inst"; then
    if [ "$inst" = minio ] || tls_serves "$port"; then
      log "$inst: running on $HOST:$port"
      return 0
    fi
    log "$inst: running with an older CA; restarting"
    minio_instance_down "$inst"
  fi
  rm -f "$d/minio.pid"
  need_free_port "$inst" "$port"
  need_free_port "$inst console" "$cport"
  minio_build
  mkdir -p "$d/data" "$d/certs"
  if [ "$inst" = minio-tls ]; then
    tls_install "$d/certs" public.crt private.key CAs/ca.pem
  fi
  log "$inst: starting on $HOST:$port (console $cport)"
  (
    # Credentials through the environment, never the command line.
    MINIO_ROOT_USER=$(secret minio-user)
    MINIO_ROOT_PASSWORD=$(secret minio-password)
    export MINIO_ROOT_USER MINIO_ROOT_PASSWORD MINIO_UPDATE=off MINIO_BROWSER=on
    start_bg "$d/minio.pid" "$d/minio.log" "$MINIO_BIN" server "$d/data" \
      --address "$HOST:$port" --console-address "$HOST:$cport" \
      --certs-dir "$d/certs" --quiet
  )
}

minio_instance_down() {
  if minio_instance_alive "$1"; then log "$1: stopping"; fi
  stop_pid "$DIR/$1/minio.pid" minio 30
}

minio_alive() { minio_instance_alive minio && minio_instance_alive minio-tls; }

# Both start before either is waited for: MinIO takes a second or two.
minio_up() {
  local inst
  tls_certs
  minio_instance_start minio
  minio_instance_start minio-tls
  for inst in minio minio-tls; do
    wait_for "$inst" "$DIR/$inst/minio.log" minio_ready "$inst" ||
      die "$inst: /minio/health/ready not 200 on $HOST:$(minio_port "$inst") (log: $DIR/$inst/minio.log)"
  done
}

minio_down() { minio_instance_down minio-tls; minio_instance_down minio; }

minio_env() {
  echo "export BOOTSTRAP_TEST_MINIO='$HOST:$MINIO_PORT'"
  echo "export BOOTSTRAP_TEST_MINIO_TLS='$HOST:$MINIO_TLS_PORT'"
  echo "export BOOTSTRAP_TEST_MINIO_USER='$(secret minio-user)'"
  echo "export BOOTSTRAP_TEST_MINIO_PASSWORD='$(secret minio-password)'"
}

# ---------------------------------------------------------------------------
# env file: lines for every server that is running now, written atomically so
# a reader polling for it never sees half a file.

# ---------------------------------------------------------------------------
# plugins (scripts/testenv.d/*.sh), sourced after the helpers they use

for plugin in "$(dirname "${BASH_SOURCE[0]}")"/testenv.d/*.sh; do
  [ -e "$plugin" ] || continue
  # shellcheck disable=SC1090
  . "$plugin"
done

write_env() {
  local s tmp=$DIR/env.tmp
  (
    umask 077
    {
      echo "# written by scripts/testenv.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ); source it or let internal/testenv read it"
      echo "export BOOTSTRAP_TESTENV_DIR='$DIR'"
      for s in $SERVERS; do
        if "${s}_alive"; then "${s}_env"; fi
      done
    } >"$tmp"
  )
  chmod 600 "$tmp"
  mv -f "$tmp" "$DIR/env"
}

pick_servers() {
  local s
  if [ $# -eq 0 ]; then
    echo "$SERVERS"
    return
  fi
  for s in "$@"; do
    case " $SERVERS " in *" $s "*) ;; *) die "unknown server $s (known: $SERVERS)" ;; esac
  done
  echo "$*"
}

lock() {
  mkdir -p "$DIR"
  chmod 755 "$DIR"
  touch "$DIR/$MARKER"
  exec 9>"$DIR/.lock"
  flock -w 900 9 || die "another testenv.sh holds $DIR/.lock"
}

cmd_up() {
  local s failed=() servers rc
  servers=$(pick_servers "$@")
  lock
  local t0=$SECONDS took=()
  need_packages
  took+=("packages $((SECONDS - t0))s")
  for s in $servers; do
    # Each server in a subshell, so one failing does not stop the others;
    # errexit is switched off around it rather than using "if", because bash
    # ignores errexit inside an if condition, subshells and functions included.
    t0=$SECONDS
    set +e
    (
      set -e
      "${s}_up"
    )
    rc=$?
    set -e
    [ $rc -eq 0 ] || failed+=("$s")
    took+=("$s $((SECONDS - t0))s")
  done
  # What each step took (builds of a fresh machine included), for CI logs.
  log "took: ${took[*]}"
  write_env
  # Printed for people and CI logs: credentials masked. `env` prints them
  # whole, and the tests read the file itself.
  sed -E "s/^(export [A-Z_]*(PASSWORD|_USER)=).*/\1'***'   # scripts\/testenv.sh env/" "$DIR/env"
  if [ ${#failed[@]} -gt 0 ]; then
    die "not started: ${failed[*]} (the env file lists only the servers that run)"
  fi
  log "up (env file: $DIR/env)"
}

cmd_down() {
  local s servers reversed=()
  servers=$(pick_servers "$@")
  [ -d "$DIR" ] || return 0
  lock
  # In reverse order: a server stops before those it runs on (the node
  # deletes its pods through kube's API server).
  for s in $servers; do reversed=("$s" "${reversed[@]}"); done
  for s in "${reversed[@]}"; do "${s}_down" || log "$s: stop failed"; done
  # Keep the env file only while something it names still runs.
  rm -f "$DIR/env"
  for s in $SERVERS; do
    if "${s}_alive"; then
      write_env
      break
    fi
  done
  log "down"
}

cmd_env() {
  [ -f "$DIR/env" ] || die "no env file in $DIR (run: scripts/testenv.sh up)"
  cat "$DIR/env"
}

cmd_status() {
  local s st=0
  for s in $SERVERS; do
    if "${s}_alive" 2>/dev/null; then
      # Addresses only: passwords stay in the env file.
      printf '%-10s up   %s\n' "$s" "$("${s}_env" | grep -v -e PASSWORD -e _LOG= -e _USER= | sed "s/^export BOOTSTRAP_TEST_//; s/'//g" | tr '\n' ' ')"
    else
      printf '%-10s down\n' "$s"
      st=1
    fi
  done
  [ -f "$DIR/env" ] && echo "env file: $DIR/env" || echo "env file: none"
  return $st
}

cmd_clean() {
  [ -d "$DIR" ] || return 0
  [ -f "$DIR/$MARKER" ] || die "$DIR has no $MARKER file; not deleting a folder this script did not create"
  cmd_down
  rm -rf "$DIR"
  log "deleted $DIR"
}

main() {
  local cmd=${1:-up}
  [ $# -gt 0 ] && shift
  case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    env) cmd_env ;;
    status) cmd_status ;;
    clean) cmd_clean ;;
    -h | --help | help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command $cmd (up, down, env, status, clean)" ;;
  esac
}

main "$@"
