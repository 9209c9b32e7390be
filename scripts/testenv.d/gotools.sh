# shellcheck shell=bash
# testenv.d/gotools.sh — every Go program of the test env that is not ours
# (kube-apiserver, kubectl, kubelet, kube-controller-manager, kube-scheduler,
# helm, kubeseal and the Sealed Secrets controller), built by one `go build`
# from one throwaway module and cached in $GOTOOLS_BIN, keyed by the three
# versions below. Not a server: kube.sh, node.sh and helm.sh call gotools_build.
#
# Why one module: helm and the sealed-secrets commands link most of what the
# Kubernetes commands link (k8s.io/api, client-go, apimachinery, apiserver,
# kubectl, cli-runtime). Built apart, at the versions each pins, every one of
# those packages compiled three times over; here minimal version selection
# picks one version of each module, so each package compiles once, and one
# `go build` keeps both cores busy linking one command while compiling the
# next. That is most of a fresh machine's `testenv.sh up`.
#
# The staging modules (k8s.io/api, client-go, ...) are pinned to the v0.x.y
# twin of $KUBE_VERSION, which is also what helm at $HELM_VERSION requires and
# what this repository's go.mod uses. sealed-secrets pins v0.30 of them; at
# v0.37 it builds unchanged and the tests check what matters of it (the
# controller unseals what bootstrap seals, kubeseal fetches the certificate).
#
# Sourced by scripts/testenv.sh before helm.sh, kube.sh and node.sh (it
# provides log, die, $CACHE).

KUBE_VERSION=v1.37.2
HELM_VERSION=v3.22.0
SEALED_SECRETS_VERSION=v0.27.1
GOTOOLS_BIN=$CACHE/gotools-kubernetes-$KUBE_VERSION-helm-$HELM_VERSION-sealed-secrets-$SEALED_SECRETS_VERSION

# GOTOOLS: the binaries, each "name=package" (go build names a binary after
# the last element of its package path).
GOTOOLS="
kubectl=k8s.io/kubernetes/cmd/kubectl
kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver
kubelet=k8s.io/kubernetes/cmd/kubelet
kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager
kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler
helm=helm.sh/helm/v3/cmd/helm
kubeseal=github.com/bitnami-labs/sealed-secrets/cmd/kubeseal
controller=github.com/bitnami-labs/sealed-secrets/cmd/controller
"

gotools_built() {
  local t
  for t in $GOTOOLS; do [ -x "$GOTOOLS_BIN/${t%%=*}" ] || return 1; done
}

# gotools_ldflags: version stamps. Without them kubectl and the servers say
# v0.0.0, and helm assumes Kubernetes 1.20 for lint and for .Capabilities in
# `helm template` (the charts need >= 1.25). -X on a variable a program does
# not have is ignored, so one set serves every binary.
gotools_ldflags() {
  local minor=${KUBE_VERSION#v1.} c ld="-s -w" helm=helm.sh/helm/v3
  minor=${minor%%.*}
  for c in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $c.gitVersion=$KUBE_VERSION -X $c.gitMajor=1 -X $c.gitMinor=$minor"
  done
  ld="$ld -X $helm/internal/version.version=$HELM_VERSION"
  for c in $helm/pkg/lint/rules $helm/pkg/chartutil; do
    ld="$ld -X $c.k8sVersionMajor=1 -X $c.k8sVersionMinor=$minor"
  done
  echo "$ld -X main.VERSION=$SEALED_SECRETS_VERSION"
}

# gotools_module DIR: the throwaway module in DIR, made again only when the
# versions or the list changed (its go.sum then comes from `go mod tidy`).
gotools_module() {
  local src=$1 staging=v0.${KUBE_VERSION#v1.} modfile t t0
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for t in $GOTOOLS; do printf '\t_ "%s"\n' "${t#*=}"; done
    printf ')\n'
  } >"$src/tools.go.new"
  if cmp -s "$src/tools.go.new" "$src/tools.go" && [ -s "$src/go.sum" ]; then
    rm -f "$src/tools.go.new"
    return 0
  fi
  go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" >"$src/download.json"
  modfile=$(sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p' "$src/download.json")
  {
    printf 'module bootstrap-testenv/gotools\n\ngo 1.26.0\n\nrequire (\n'
    printf '\tk8s.io/kubernetes %s\n\thelm.sh/helm/v3 %s\n\tgithub.com/bitnami-labs/sealed-secrets %s\n)\n\nreplace (\n' \
      "$KUBE_VERSION" "$HELM_VERSION" "$SEALED_SECRETS_VERSION"
    # Every staging module but the samples, at the matching v0 version.
    sed -n '/^replace/,/^)/p' "$modfile" | grep '=> ./staging' | grep -v sample- |
      awk -v v="$staging" '{print "\t" $1 " => " $1 " " v}'
    printf ')\n'
  } >"$src/go.mod"
  mv -f "$src/tools.go.new" "$src/tools.go"
  t0=$SECONDS
  (cd "$src" && go mod tidy) >"$src/tidy.log" 2>&1 || { rm -f "$src/tools.go"; tail -n 20 "$src/tidy.log" >&2; return 1; }
  log "gotools: module ready in $((SECONDS - t0))s"
}

# gotools_build: build every tool when any is missing (CGO_ENABLED=0,
# -trimpath, stripped, version stamped), logging how long it took.
gotools_build() {
  gotools_built && return 0
  command -v go >/dev/null || die "gotools: go is needed to build the test env's tools"
  local src=$CACHE/src/gotools out t pkgs=() t0
  mkdir -p "$src" "$GOTOOLS_BIN"
  for t in $GOTOOLS; do pkgs+=("${t#*=}"); done
  log "gotools: building kubernetes $KUBE_VERSION, helm $HELM_VERSION and sealed-secrets $SEALED_SECRETS_VERSION into $GOTOOLS_BIN (about 18 minutes on two cores the first time: some 2,000 CPU-seconds)"
  out=$(mktemp -d "$GOTOOLS_BIN.XXXXXX")
  (
    export GOFLAGS=-mod=mod GO111MODULE=on CGO_ENABLED=0
    gotools_module "$src" || exit 1
    t0=$SECONDS
    cd "$src" && go build -trimpath -ldflags "$(gotools_ldflags)" -o "$out/" "${pkgs[@]}" >build.log 2>&1 ||
      { tail -n 20 build.log >&2; exit 1; }
    log "gotools: built in $((SECONDS - t0))s"
  ) || { rm -rf "$out"; die "gotools: build failed (logs in $src)"; }
  for t in $GOTOOLS; do mv -f "$out/${t%%=*}" "$GOTOOLS_BIN/"; done
  rm -rf "$out"
}
