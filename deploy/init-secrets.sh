#!/usr/bin/env bash
# init-secrets.sh — one random password per file in deploy/secrets/, for
# docker-compose.yml's secrets. Existing files are kept, so the services keep
# the passwords their data volumes were created with.
#
# Files are 0644 inside a 0700 folder: on this machine only you can reach them;
# inside the containers (postgres runs as uid 999, bootstrap as 65532) the
# bind-mounted file must be readable by the service's own user.
set -euo pipefail
dir=$(cd "$(dirname "$0")" && pwd)/secrets
names=(
  pg-health-admin pg-health-healthapi
  pg-auth-admin pg-auth-authapi
  redis-health redis-auth
  minio-root-user minio-root-password
  rabbitmq-password rabbitmq-etl
)
mkdir -p "$dir"
chmod 700 "$dir"
for n in "${names[@]}"; do
  f=$dir/$n
  [ -s "$f" ] && continue
  # 24 characters of [A-Za-z0-9]: safe in every server's password rules.
  (umask 022 && head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24 >"$f.tmp" && mv "$f.tmp" "$f")
  echo "created $f"
done
