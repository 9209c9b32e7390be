# shellcheck shell=bash
# testenv.d/helm.sh — tools (not servers) for the chart and image tests:
#
#   helm   the Helm CLI, built from source at HELM_VERSION and cached in
#          $CACHE/helm-$HELM_VERSION-k8s<version>/ (keyed by the version and
#          the linked-in Kubernetes version); exports BOOTSTRAP_TEST_HELM.
#   qemu   qemu-aarch64 from Debian's qemu-user, to run the arm64 binary;
#          exports BOOTSTRAP_TEST_QEMU_AARCH64.
#   compose  Debian's docker-compose, which checks a compose file without a
#          Docker engine (`config -q`); exports BOOTSTRAP_TEST_DOCKER_COMPOSE.
#
# Sourced by scripts/testenv.sh, whose helpers (log, die, is_root, CACHE) it
# uses. A tool is "alive" when its binary is installed; "down" leaves it
# installed (it runs nothing).

HELM_VERSION=v3.22.0
# The Kubernetes version helm assumes for lint and for .Capabilities in
# `helm template` is linked in; without these flags it is 1.20, older than
# anything a cluster runs today. The charts need >= 1.25; the objects are
# checked against the real kube-apiserver of kube.sh as well.
HELM_K8S_MAJOR=1
HELM_K8S_MINOR=37
HELM_BIN=$CACHE/helm-$HELM_VERSION-k8s$HELM_K8S_MAJOR.$HELM_K8S_MINOR/helm

SERVERS="$SERVERS helm qemu compose"

helm_alive() { [ -x "$HELM_BIN" ]; }

helm_up() {
  if helm_alive; then
    log "helm: $HELM_BIN"
    return 0
  fi
  command -v go >/dev/null || die "helm: go is needed to build $HELM_BIN"
  local tmp pkg=helm.sh/helm/v3
  tmp=$(mktemp -d)
  log "helm: building $HELM_VERSION into $(dirname "$HELM_BIN") (about a minute the first time)"
  mkdir -p "$(dirname "$HELM_BIN")"
  # From an empty folder outside the repo, so the project's go.mod is not involved.
  if ! (cd "$tmp" && GOBIN=$(dirname "$HELM_BIN") GOFLAGS= GO111MODULE=on CGO_ENABLED=0 \
    go install -trimpath -ldflags "-s -w \
      -X $pkg/internal/version.version=$HELM_VERSION \
      -X $pkg/pkg/lint/rules.k8sVersionMajor=$HELM_K8S_MAJOR \
      -X $pkg/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR \
      -X $pkg/pkg/chartutil.k8sVersionMajor=$HELM_K8S_MAJOR \
      -X $pkg/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR" \
    "$pkg/cmd/helm@$HELM_VERSION") >"$tmp/build.log" 2>&1; then
    tail -n 20 "$tmp/build.log" >&2
    die "helm: build failed (log: $tmp/build.log)"
  fi
  rm -rf "$tmp"
  "$HELM_BIN" version --short >/dev/null || die "helm: $HELM_BIN does not run"
}

helm_down() { :; }

helm_env() { echo "export BOOTSTRAP_TEST_HELM='$HELM_BIN'"; }

# tools_apt_install PACKAGE: install one Debian package, refreshing the package
# lists once if the current ones do not know it.
tools_apt_install() {
  is_root || die "$1 is missing (install it as root: apt-get install -y $1)"
  log "installing $1"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "$1" >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null
    apt-get install -y -qq "$1" >/dev/null
  }
}

qemu_bin() { command -v qemu-aarch64 || command -v qemu-aarch64-static || true; }

qemu_alive() { [ -n "$(qemu_bin)" ]; }

qemu_up() {
  if qemu_alive; then
    log "qemu: $(qemu_bin)"
    return 0
  fi
  tools_apt_install qemu-user
  qemu_alive || die "qemu: qemu-user installed but no qemu-aarch64 on PATH"
}

qemu_down() { :; }

qemu_env() { echo "export BOOTSTRAP_TEST_QEMU_AARCH64='$(qemu_bin)'"; }

compose_alive() { command -v docker-compose >/dev/null; }

compose_up() {
  if compose_alive; then
    log "compose: $(command -v docker-compose)"
    return 0
  fi
  tools_apt_install docker-compose
  compose_alive || die "compose: docker-compose installed but not on PATH"
}

compose_down() { :; }

compose_env() { echo "export BOOTSTRAP_TEST_DOCKER_COMPOSE='$(command -v docker-compose)'"; }
