# shellcheck shell=bash
# node: one Kubernetes node for the kube-apiserver of kube.sh, so the chart
# can be installed for real: containerd + runc + the CNI bridge from Debian, a
# kubelet, kube-controller-manager and kube-scheduler at $KUBE_VERSION (built
# by gotools_build with kube-apiserver, cached in $KUBE_BIN). Everything listens on loopback only; the node is "localhost".
#
# Sourced by scripts/testenv.sh after kube.sh, whose functions it uses
# (kube_alive, kube_sign, kube_dir, $KUBE_BIN, $KUBE_API_PORT).
# Facts behind each choice: /work/shared/notes/node.md.
#
# Leaving the machine as it found it:
# - containerd and the kubelet run inside a private mount namespace, held by
#   a pause process (ns.pid): a tmpfs on /run, $DIR/node/var on /var (the
#   kubelet and containerd write to /var/lib/kubelet, /var/log/containers,
#   /var/lib/cni, /run/containerd and /run/netns whatever they are told),
#   $DIR mounted back at its own path, and
#   files holding the kubelet's wanted values mounted over the /proc/sys
#   entries it would otherwise write machine-wide (vm.overcommit_memory,
#   kernel.panic, ...). Nothing of that is visible outside the namespace, and
#   it all goes when its last process does.
# - The CNI bridge is made here (btenv0 with the gateway address): the bridge
#   plugin runs with isGateway and ipMasq off, so it never turns on
#   net.ipv4.ip_forward or adds iptables rules; no portmap, no kube-proxy,
#   kubelet makeIPTablesUtilChains off. Pods that must reach the test env's
#   servers (all on 127.0.0.1) use hostNetwork: true.
# - containerd has no registry configuration and a proxy on a closed
#   loopback port, so a pull can never leave the machine. Images are
#   imported: `ctr --address $BOOTSTRAP_TEST_NODE_CONTAINERD -n k8s.io images
#   import ARCHIVE` (package internal/testenv/node writes such archives);
#   pods use imagePullPolicy: Never (or IfNotPresent). The sandbox image is
#   built from internal/testenv/node/pause and imported before the kubelet
#   starts; image garbage collection is off, so imports stay.
# - down stops by PID the controller-manager and scheduler (so nothing
#   recreates what goes next), deletes the node's pods through the API (the
#   kubelet stops them and runs CNI DEL) and the Node, then stops by PID the
#   kubelet, containerd, the containers and shims left (when the API server
#   was gone) and the namespace's holder; then removes the kubepods cgroups
#   and the bridge. Pods' objects go, their controllers stay: up again and
#   Deployments get their pods back.
#
# With the controller-manager running, the API server behaves like a real
# cluster's: namespaces finish deleting, the default ServiceAccount and
# kube-root-ca.crt appear in each namespace, Deployments and Jobs get pods
# (scheduled on this node), pods bound to a node that does not exist are
# garbage-collected.
#
# Ports: kubelet NODE_KUBELET_PORT (TLS, certificate from the test env's CA
# for localhost; the API server reaches it by hostname for logs and exec),
# its healthz NODE_KUBELET_HEALTHZ_PORT, the CRI stream server
# NODE_STREAM_PORT, kube-controller-manager NODE_KCM_PORT, kube-scheduler
# NODE_SCHEDULER_PORT. Logs are in $DIR/node/log, pod logs in
# $DIR/node/pod-logs.
#
# The env file gets BOOTSTRAP_TEST_NODE_CONTAINERD (containerd's socket),
# BOOTSTRAP_TEST_NODE_CTR (the ctr binary), BOOTSTRAP_TEST_NODE_POD_LOGS,
# BOOTSTRAP_TEST_NODE_PAUSE_IMAGE and BOOTSTRAP_TEST_NODE_NAME.
#
# Needs root (mounts, cgroups, the bridge; without it up says so and leaves
# the node out) and the Debian packages containerd, runc,
# containernetworking-plugins and iproute2, installed when missing.
# `KUBE_BUILD_ONLY=1 scripts/testenv.sh up node` only builds.

NODE_KUBELET_PORT=31250
NODE_KUBELET_HEALTHZ_PORT=31248
NODE_STREAM_PORT=31251
NODE_KCM_PORT=31257
NODE_SCHEDULER_PORT=31259
NODE_NAME=localhost
NODE_BRIDGE=btenv0
NODE_SUBNET=10.253.0.0/24
NODE_GATEWAY=10.253.0.1
NODE_PAUSE_IMAGE=localhost/bootstrap-testenv/pause:1
NODE_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

SERVERS="$SERVERS node"

node_dir() { echo "$DIR/node"; }

node_kubectl() { "$KUBE_BIN/kubectl" --kubeconfig "$(kube_dir)/kubeconfig" --request-timeout 20s "$@"; }

node_need_packages() {
  local p missing=()
  command -v containerd >/dev/null && command -v containerd-shim-runc-v2 >/dev/null && command -v ctr >/dev/null ||
    missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/loopback ] ||
    missing+=(containernetworking-plugins)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v unshare >/dev/null && command -v nsenter >/dev/null || missing+=(util-linux)
  for p in "${missing[@]}"; do tools_apt_install "$p"; done
}

# node_pki: the kubelet's serving certificate (localhost, 127.0.0.1) and
# client certificates for the kubelet, controller-manager and scheduler, all
# signed by the test env's CA; and a kubeconfig for each.
node_pki() {
  local n=$1 who
  kube_sign "$n/pki" kubelet-serving "/CN=system:node:$NODE_NAME" \
    "$(printf 'subjectAltName=DNS:%s,IP:127.0.0.1\nextendedKeyUsage=serverAuth' "$NODE_NAME")"
  kube_sign "$n/pki" kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "extendedKeyUsage=clientAuth"
  kube_sign "$n/pki" kube-controller-manager "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth"
  kube_sign "$n/pki" kube-scheduler "/CN=system:kube-scheduler" "extendedKeyUsage=clientAuth"
  for who in kubelet kube-controller-manager kube-scheduler; do
    (
      umask 077
      cat >"$n/$who.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster: {server: "https://$HOST:$KUBE_API_PORT", certificate-authority: "$(kube_dir)/pki/ca.crt"}
users:
- name: $who
  user: {client-certificate: "$n/pki/$who.crt", client-key: "$n/pki/$who.key"}
contexts:
- name: testenv
  context: {cluster: testenv, user: $who}
current-context: testenv
EOF
    )
  done
}

# node_config: containerd's, the CNI network's and the kubelet's.
node_config() {
  local n=$1
  cat >"$n/containerd.toml" <<EOF
# containerd for the test env's node ($n): its own root, its state on the
# namespace's /run, its socket under the test env, no registry configuration.
version = 2
root = "$n/containerd/root"
state = "/run/containerd"
oom_score = 0
# opt would create /opt/containerd; the others are not used here.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$n/containerd.sock"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$NODE_PAUSE_IMAGE"
  # Root lacks CAP_SYS_RESOURCE here: runc cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "$HOST"
  stream_server_port = "$NODE_STREAM_PORT"
  enable_tls_streaming = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$n/cni/net.d"
    max_conf_num = 1
EOF
  mkdir -p "$n/cni/net.d"
  cat >"$n/cni/net.d/10-bootstrap-testenv.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "bootstrap-testenv",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$NODE_SUBNET", "gateway": "$NODE_GATEWAY"}]],
        "dataDir": "$n/var/lib/cni/networks"
      }
    }
  ]
}
EOF
  cat >"$n/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $HOST
port: $NODE_KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: $HOST
healthzPort: $NODE_KUBELET_HEALTHZ_PORT
tlsCertFile: $n/pki/kubelet-serving.crt
tlsPrivateKeyFile: $n/pki/kubelet-serving.key
rotateCertificates: false
serverTLSBootstrap: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $(kube_dir)/pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$n/containerd.sock
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
makeIPTablesUtilChains: false
protectKernelDefaults: false
podLogsDir: $n/pod-logs
volumePluginDir: $n/volume-plugins
# Imported images must stay: no image garbage collection, and no eviction
# for a disk that is merely fuller than a real node's would be.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
resolvConf: /etc/resolv.conf
clusterDomain: cluster.local
maxPods: 110
serializeImagePulls: false
EOF
}

# node_ns_script: what the namespace's first process runs (see the top).
node_ns_script() {
  local n=$1
  cat >"$n/ns-setup.sh" <<EOF
# Runs in a fresh private mount namespace (unshare -m --propagation private).
set -eu
cd /
mount -t tmpfs -o mode=0755,size=256m bootstrap-testenv-run /run
mkdir /run/.testenv
mount --bind '$DIR' /run/.testenv
mount --bind '$n/var' /var
if [ ! -e '$DIR/$MARKER' ]; then
  mkdir -p '$DIR'
  mount --bind /run/.testenv '$DIR'
fi
umount /run/.testenv
rmdir /run/.testenv
for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \\
  kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
  k=\${kv%%=*}
  f='$n/sysctl/'\$(echo "\$k" | tr / .)
  echo "\${kv#*=}" >"\$f"
  mount --bind "\$f" "/proc/sys/\$k"
done
echo \$\$ >'$n/ns.ready'
exec '$n/bin/pause'
EOF
}

# node_in_ns CMD...: CMD in the node's mount namespace.
node_in_ns() { nsenter --mount="/proc/$(head -n1 "$(node_dir)/ns.pid")/ns/mnt" -- "$@"; }

node_ctr() { ctr --address "$(node_dir)/containerd.sock" -n k8s.io "$@"; }

# node_build_pause: the pause program and its image archive, from this repo.
node_build_pause() {
  local n=$1
  mkdir -p "$n/bin"
  (
    cd "$NODE_REPO"
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$n/bin/pause" ./internal/testenv/node/pause &&
      go build -trimpath -o "$n/bin/mkimage" ./internal/testenv/node/mkimage
  ) >"$n/log/build.log" 2>&1 || { tail -n 20 "$n/log/build.log" >&2; die "node: building the pause program failed (log: $n/log/build.log)"; }
  "$n/bin/mkimage" -name "$NODE_PAUSE_IMAGE" -user 65535:65535 -o "$n/pause.tar" "/pause=$n/bin/pause" >/dev/null ||
    die "node: could not write the pause image"
}

node_bridge_up() {
  if ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then ip link del "$NODE_BRIDGE"; fi
  if ip -o addr show | grep -q " inet ${NODE_GATEWAY%.*}\."; then
    die "node: $NODE_SUBNET is in use on this machine ($(ip -o addr show | grep " inet ${NODE_GATEWAY%.*}\." | awk '{print $2}' | head -n1))"
  fi
  ip link add "$NODE_BRIDGE" type bridge
  ip addr add "$NODE_GATEWAY/${NODE_SUBNET#*/}" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
}

node_kubelet_healthy() { [ "$(curl -s --max-time 2 "http://$HOST:$NODE_KUBELET_HEALTHZ_PORT/healthz")" = ok ]; }

node_https_healthy() { [ "$(curl -sk --max-time 2 "https://$HOST:$1/healthz")" = ok ]; }

node_ready() {
  [ "$(node_kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

node_alive() {
  local n
  n=$(node_dir)
  pid_alive "$n/ns.pid" pause && pid_alive "$n/containerd.pid" containerd && pid_alive "$n/kubelet.pid" kubelet &&
    pid_alive "$n/kcm.pid" kube-controller-manager && pid_alive "$n/scheduler.pid" kube-scheduler
}

node_up() {
  local n t0=$SECONDS p
  n=$(node_dir)
  if node_alive; then
    log "node: running ($NODE_NAME, kubelet $HOST:$NODE_KUBELET_PORT, containerd $n/containerd.sock)"
    return 0
  fi
  if [ "${KUBE_BUILD_ONLY:-0}" = 1 ]; then
    gotools_build
    log "node: built (KUBE_BUILD_ONLY=1: not starting)"
    return 0
  fi
  if ! is_root; then
    # Like a missing server: tests that need the node skip, or fail under
    # BOOTSTRAP_TEST_REQUIRE=1.
    log "node: not started: it needs root (a mount namespace, cgroups, a bridge)"
    return 0
  fi
  node_need_packages
  gotools_build
  kube_alive || die "node: kube is not running (scripts/testenv.sh up kube)"
  case $DIR/ in /run/*) die "node: BOOTSTRAP_TESTENV_DIR under /run is not supported (the node mounts a tmpfs there)" ;; esac
  # What an earlier start left behind goes first.
  node_down quiet
  for p in "$NODE_KUBELET_PORT" "$NODE_KUBELET_HEALTHZ_PORT" "$NODE_STREAM_PORT" "$NODE_KCM_PORT" "$NODE_SCHEDULER_PORT"; do
    need_free_port node "$p"
  done
  if ls -d /sys/fs/cgroup/*/kubepods >/dev/null 2>&1; then
    if [ -n "$(find /sys/fs/cgroup/*/kubepods -name cgroup.procs -exec cat {} + 2>/dev/null)" ]; then
      die "node: /sys/fs/cgroup/*/kubepods has processes: another kubelet runs on this machine"
    fi
    find /sys/fs/cgroup/*/kubepods -depth -type d -exec rmdir {} + 2>/dev/null || true
  fi
  # The kubelet's and CNI's state is made afresh; containerd's root (the
  # imported images) is kept.
  rm -rf "${n:?}/var" "$n/pod-logs" "$n/ns.ready"
  mkdir -p "$n/var/lib" "$n/var/log" "$n/var/tmp" "$n/sysctl" "$n/log" "$n/pod-logs" "$n/volume-plugins" \
    "$n/flexvolume" "$n/containerd/root" "$n/kcm" "$n/scheduler"
  ln -s /run "$n/var/run"
  ln -s /run/lock "$n/var/lock"
  chmod 1777 "$n/var/tmp"
  node_pki "$n"
  node_config "$n"
  node_ns_script "$n"
  node_build_pause "$n"
  node_bridge_up
  # A stale Node object would look Ready before this kubelet is.
  node_kubectl delete node "$NODE_NAME" --ignore-not-found --wait=false >/dev/null 2>&1 || true

  log "node: starting containerd (socket $n/containerd.sock) in a private mount namespace"
  start_bg "$n/ns.pid" "$n/log/ns.log" unshare -m --propagation private sh "$n/ns-setup.sh"
  wait_for "node namespace" "$n/log/ns.log" test -s "$n/ns.ready" || die "node: the mount namespace was not set up (log: $n/log/ns.log)"
  (
    # A pull could only go to this closed loopback port (or fail on localhost).
    export HTTP_PROXY=http://$HOST:9 HTTPS_PROXY=http://$HOST:9 http_proxy=http://$HOST:9 https_proxy=http://$HOST:9
    unset NO_PROXY no_proxy
    start_bg "$n/containerd.pid" "$n/log/containerd.log" \
      nsenter --mount="/proc/$(head -n1 "$n/ns.pid")/ns/mnt" -- containerd --config "$n/containerd.toml"
  )
  wait_for containerd "$n/log/containerd.log" node_ctr version || die "node: containerd not answering on $n/containerd.sock"
  node_ctr images import "$n/pause.tar" >"$n/log/import.log" 2>&1 ||
    { cat "$n/log/import.log" >&2; die "node: could not import $NODE_PAUSE_IMAGE"; }

  log "node: starting kubelet $KUBE_VERSION ($NODE_NAME, $HOST:$NODE_KUBELET_PORT), kube-controller-manager ($HOST:$NODE_KCM_PORT), kube-scheduler ($HOST:$NODE_SCHEDULER_PORT)"
  start_bg "$n/kubelet.pid" "$n/log/kubelet.log" nsenter --mount="/proc/$(head -n1 "$n/ns.pid")/ns/mnt" -- \
    "$KUBE_BIN/kubelet" --config "$n/kubelet.yaml" --kubeconfig "$n/kubelet.kubeconfig" \
    --hostname-override "$NODE_NAME" --cert-dir "$n/pki/kubelet-certs" --v 1
  start_bg "$n/kcm.pid" "$n/log/kube-controller-manager.log" "$KUBE_BIN/kube-controller-manager" \
    --kubeconfig "$n/kube-controller-manager.kubeconfig" --bind-address "$HOST" --secure-port "$NODE_KCM_PORT" \
    --cert-dir "$n/kcm" --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file "$(kube_dir)/pki/sa.key" --root-ca-file "$(kube_dir)/pki/ca.crt" \
    --flex-volume-plugin-dir "$n/flexvolume" --service-cluster-ip-range 10.96.0.0/16 --profiling=false
  start_bg "$n/scheduler.pid" "$n/log/kube-scheduler.log" "$KUBE_BIN/kube-scheduler" \
    --kubeconfig "$n/kube-scheduler.kubeconfig" --bind-address "$HOST" --secure-port "$NODE_SCHEDULER_PORT" \
    --cert-dir "$n/scheduler" --leader-elect=false --profiling=false
  wait_for kube-controller-manager "$n/log/kube-controller-manager.log" node_https_healthy "$NODE_KCM_PORT" ||
    die "node: kube-controller-manager not healthy (log: $n/log/kube-controller-manager.log)"
  wait_for kube-scheduler "$n/log/kube-scheduler.log" node_https_healthy "$NODE_SCHEDULER_PORT" ||
    die "node: kube-scheduler not healthy (log: $n/log/kube-scheduler.log)"
  wait_for kubelet "$n/log/kubelet.log" node_kubelet_healthy || die "node: kubelet not healthy (log: $n/log/kubelet.log)"
  wait_for "node $NODE_NAME" "$n/log/kubelet.log" node_ready || die "node: $NODE_NAME not Ready (log: $n/log/kubelet.log)"
  log "node: $NODE_NAME Ready in $((SECONDS - t0))s"
}

# node_ns_pids: processes in the node's mount namespace (containerd, shims,
# the kubelet, the holder).
node_ns_pids() {
  local n=$1 ns
  [ -s "$n/ns.pid" ] || return 0
  ns=$(readlink "/proc/$(head -n1 "$n/ns.pid")/ns/mnt" 2>/dev/null) || return 0
  # "... /proc/PID/ns/mnt -> mnt:[INODE]"
  # shellcheck disable=SC2012 # the names are /proc/PID/ns/mnt
  ls -l /proc/[0-9]*/ns/mnt 2>/dev/null | awk -v ns="$ns" '$NF == ns { split($(NF - 2), p, "/"); print p[3] }'
}

# node_descendants PID...: every process descending from one of PID... (the
# containers of the shims), from the parent links in /proc/*/stat.
node_descendants() {
  [ $# -gt 0 ] || return 0
  # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v roots="$*" '
    BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) mark[r[i]] = 1 }
    { rest = $0; sub(/^.*\) /, "", rest); split(rest, f, " "); parent[$1] = f[2] }
    END {
      do {
        more = 0
        for (p in parent) if (!(p in mark) && (parent[p] in mark)) { mark[p] = 1; out[p] = 1; more = 1 }
      } while (more)
      for (p in out) print p
    }'
}

# node_down [quiet]: see the top of this file for the order.
node_down() {
  local n quiet=${1:-} i holder ours=0 pids=() ns=()
  n=$(node_dir)
  [ -d "$n" ] || return 0
  [ -s "$n/ns.pid" ] && ours=1
  if [ -z "$quiet" ] && [ $ours = 1 ]; then log "node: stopping"; fi
  # No controller recreates what is deleted next.
  stop_pid "$n/kcm.pid" kube-controller-manager 30
  stop_pid "$n/scheduler.pid" kube-scheduler 30
  if pid_alive "$n/kubelet.pid" kubelet && kube_api_ready; then
    node_kubectl delete pods --all-namespaces --field-selector "spec.nodeName=$NODE_NAME" \
      --grace-period 5 --wait=true --timeout 90s >"$n/log/down.log" 2>&1 ||
      log "node: pods not all deleted through the API (log: $n/log/down.log); killing what is left"
  fi
  if [ $ours = 1 ] && kube_api_ready; then
    node_kubectl delete node "$NODE_NAME" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  fi
  stop_pid "$n/kubelet.pid" kubelet 30
  holder=$(head -n1 "$n/ns.pid" 2>/dev/null || true)
  # Containers the API did not stop: the processes below containerd and its
  # shims (all in the namespace), by PID.
  mapfile -t ns < <(node_ns_pids "$n" | grep -vx "${holder:-none}")
  mapfile -t pids < <(node_descendants "${ns[@]}" | sort -n)
  if [ ${#pids[@]} -gt 0 ]; then
    log "node: killing container processes left: ${pids[*]}"
    kill -KILL "${pids[@]}" 2>/dev/null || true
  fi
  stop_pid "$n/containerd.pid" containerd 30
  # Shims stay up when containerd stops.
  for i in 1 2 3; do
    mapfile -t pids < <(node_ns_pids "$n" | grep -vx "${holder:-none}")
    [ ${#pids[@]} -eq 0 ] && break
    log "node: stopping processes left in the namespace: ${pids[*]}"
    if [ $i -lt 3 ]; then kill -TERM "${pids[@]}" 2>/dev/null || true; else kill -KILL "${pids[@]}" 2>/dev/null || true; fi
    sleep 1
  done
  stop_pid "$n/ns.pid" pause 10
  rm -f "$n/ns.ready" "$n/containerd.sock" "$n/containerd.sock.ttrpc"
  if [ $ours = 1 ]; then
    # The pod cgroups, deepest first; a cgroup empties a moment after its
    # last process is gone.
    for i in $(seq 1 50); do
      ls -d /sys/fs/cgroup/*/kubepods >/dev/null 2>&1 || break
      find /sys/fs/cgroup/*/kubepods -depth -type d -exec rmdir {} + 2>/dev/null || true
      sleep 0.2
    done
    if ls -d /sys/fs/cgroup/*/kubepods >/dev/null 2>&1; then
      log "node: could not remove" /sys/fs/cgroup/*/kubepods
    fi
  fi
  if ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then ip link del "$NODE_BRIDGE"; fi
}

node_env() {
  local n
  n=$(node_dir)
  echo "export BOOTSTRAP_TEST_NODE_NAME='$NODE_NAME'"
  echo "export BOOTSTRAP_TEST_NODE_CONTAINERD='$n/containerd.sock'"
  echo "export BOOTSTRAP_TEST_NODE_CTR='$(command -v ctr)'"
  echo "export BOOTSTRAP_TEST_NODE_POD_LOGS='$n/pod-logs'"
  echo "export BOOTSTRAP_TEST_NODE_PAUSE_IMAGE='$NODE_PAUSE_IMAGE'"
}
