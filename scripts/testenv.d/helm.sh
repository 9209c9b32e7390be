# shellcheck shell=bash
# testenv.d/helm.sh — tools (not servers) for the chart and image tests:
#
#   helm   the Helm CLI at $HELM_VERSION, built by gotools_build (gotools.sh)
#          with the Kubernetes version it assumes for lint and .Capabilities
#          linked in; exports BOOTSTRAP_TEST_HELM.
#   qemu   qemu-aarch64 from Debian's qemu-user, to run the arm64 binary;
#          exports BOOTSTRAP_TEST_QEMU_AARCH64.
#   compose  Debian's docker-compose, which checks a compose file without a
#          Docker engine (`config -q`); exports BOOTSTRAP_TEST_DOCKER_COMPOSE.
#
# Sourced by scripts/testenv.sh, whose helpers (log, die, is_root, CACHE) it
# uses. A tool is "alive" when its binary is installed; "down" leaves it
# installed (it runs nothing).

HELM_BIN=$GOTOOLS_BIN/helm

SERVERS="$SERVERS helm qemu compose"

helm_alive() { [ -x "$HELM_BIN" ]; }

helm_up() {
  gotools_build
  "$HELM_BIN" version --short >/dev/null || die "helm: $HELM_BIN does not run"
  log "helm: $HELM_BIN"
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
