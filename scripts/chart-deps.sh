#!/usr/bin/env bash
# chart-deps.sh — put the Bitnami chart packages the infrastructure subchart
# pins into its charts/ folder, where Helm takes them from.
#
#   scripts/chart-deps.sh [CHART_DIR]    (default: charts/health-platform/charts/infrastructure)
#
# With BOOTSTRAP_BITNAMI_CHARTS set to a folder of packages (<name>-<version>.tgz,
# as `helm package` or `helm pull` names them), each pinned dependency is copied
# from there and nothing goes over the network: for machines that cannot reach
# the registry (CI here points it at ../shared/bitnami-charts). Without it,
# `helm dependency build` fetches them from the registry in Chart.yaml.
# Either way Helm itself then checks that every dependency is present at its
# pinned version (`helm dependency list` says "ok"), or this fails naming the
# ones that are not.
set -euo pipefail

HELM=${HELM:-helm}
chart=${1:-charts/health-platform/charts/infrastructure}
[ -f "$chart/Chart.yaml" ] || { echo "chart-deps: no Chart.yaml in $chart" >&2; exit 2; }

# name version pairs of the pinned dependencies, as Helm reads them.
deps() { "$HELM" dependency list "$chart" | awk 'NR > 1 && NF >= 3 { print $1, $2 }' | sort -u; }

if [ -n "${BOOTSTRAP_BITNAMI_CHARTS:-}" ]; then
  src=$BOOTSTRAP_BITNAMI_CHARTS
  [ -d "$src" ] || { echo "chart-deps: BOOTSTRAP_BITNAMI_CHARTS=$src is not a folder" >&2; exit 2; }
  mkdir -p "$chart/charts"
  while read -r name version; do
    pkg=$src/$name-$version.tgz
    [ -f "$pkg" ] || { echo "chart-deps: $name $version: no $pkg" >&2; exit 1; }
    cp "$pkg" "$chart/charts/"
  done < <(deps)
else
  "$HELM" dependency build "$chart"
fi

missing=$("$HELM" dependency list "$chart" | awk 'NR > 1 && NF >= 4 && $4 != "ok" { print $1 " " $2 " (" $4 ")" }')
if [ -n "$missing" ]; then
  echo "chart-deps: not in place in $chart/charts:" >&2
  echo "$missing" | sed 's/^/  /' >&2
  exit 1
fi
