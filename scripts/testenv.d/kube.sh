# shellcheck shell=bash
# kube: a real kube-apiserver with etcd on loopback, for the secrets sinks
# and the chart's server-side dry runs; plus the tools the tests run against
# it: kubectl, kubeseal and the Sealed Secrets controller.
#
# Sourced by scripts/testenv.sh (it provides log, die, secret, start_bg,
# stop_pid, pid_alive, wait_for, need_free_port, is_root, $DIR, $CACHE, $HOST).
#
# - etcd from Debian (etcd-server, installed when missing), client port
#   KUBE_ETCD_PORT, peer port KUBE_ETCD_PEER_PORT, data under $DIR/kube/etcd.
# - kube-apiserver, kubectl, kubeseal and the Sealed Secrets controller at
#   the versions gotools.sh pins, built by gotools_build with the rest of the
#   test env's Go tools.
# - TLS from a CA made here with openssl; the admin authenticates with a
#   static token (group system:masters) kept in a 0600 token file, so no
#   password or token ever appears on a command line. Authorization is
#   Node,RBAC, so tests can check least-privilege Roles with ServiceAccount
#   tokens. The API server reaches kubelets (node.sh) by hostname with a
#   client certificate (system:masters) and checks their serving
#   certificates against the same CA, so `kubectl logs` and exec work.
# - An audit log at Metadata level (who did what to which object; never a
#   body, so never a Secret's data) in $DIR/kube/log/audit.log, without the
#   node's own kubelet, scheduler and controller-manager identities.
# - The SealedSecret CRD from the sealed-secrets module and the ServiceMonitor
#   CRD from the prometheus-operator module are installed.
#
# The env file gets BOOTSTRAP_TEST_KUBECONFIG, BOOTSTRAP_TEST_KUBE_APISERVER,
# BOOTSTRAP_TEST_KUBE_CA, BOOTSTRAP_TEST_KUBE_AUDIT_LOG, BOOTSTRAP_TEST_KUBECTL,
# BOOTSTRAP_TEST_KUBESEAL, BOOTSTRAP_TEST_SEALED_SECRETS_CONTROLLER,
# BOOTSTRAP_TEST_SEALED_SECRETS_CRD and BOOTSTRAP_TEST_SERVICEMONITOR_CRD.
#
# `scripts/testenv.sh up kube` builds on first use (several minutes on two
# cores); `KUBE_BUILD_ONLY=1 scripts/testenv.sh up kube` only builds.

# The Prometheus Operator's CRDs ship in its Go module: the ServiceMonitor
# CRD comes from there, so the charts' ServiceMonitors meet the real schema.
PROMETHEUS_OPERATOR_VERSION=v0.85.0
KUBE_API_PORT=36443
KUBE_ETCD_PORT=32379
KUBE_ETCD_PEER_PORT=32380
# Versions and binaries: gotools.sh.
KUBE_BIN=$GOTOOLS_BIN
SEALED_BIN=$GOTOOLS_BIN

SERVERS="$SERVERS kube"

kube_dir() { echo "$DIR/kube"; }

# module_dir MODULE@VERSION: where the Go module cache keeps a module.
module_dir() {
  (cd /tmp && GOFLAGS='' go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
}

# kube_crd: the SealedSecret CRD shipped in the sealed-secrets module.
kube_crd() {
  echo "$(module_dir "github.com/bitnami-labs/sealed-secrets@$SEALED_SECRETS_VERSION")/helm/sealed-secrets/crds/bitnami.com_sealedsecrets.yaml"
}

# kube_servicemonitor_crd: the ServiceMonitor CRD of the Prometheus Operator.
kube_servicemonitor_crd() {
  echo "$(module_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
}

kube_need_etcd() {
  command -v etcd >/dev/null && return 0
  is_root || die "kube: etcd is missing (install it as root: apt-get install -y etcd-server)"
  log "kube: installing etcd-server"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null; } ||
    die "kube: apt-get install etcd-server failed"
}

# kube_pki: CA, serving certificate for 127.0.0.1/localhost, service
# account signing key, admin token; made once and kept.
kube_pki() {
  local d=$1/pki
  [ -s "$d/apiserver.crt" ] && [ -s "$d/sa.key" ] && [ -s "$d/tokens.csv" ] && return 0
  command -v openssl >/dev/null || die "kube: openssl is needed"
  (
    umask 077
    mkdir -p "$d"
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
      -subj "/CN=bootstrap-testenv-ca" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr \
      -subj "/CN=kube-apiserver" >/dev/null 2>&1
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' >ext.cnf
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt \
      -days 3650 -extfile ext.cnf >/dev/null 2>&1
    openssl genrsa -out sa.key 2048 >/dev/null 2>&1
    openssl rsa -in sa.key -pubout -out sa.pub >/dev/null 2>&1
    # token,user,uid,"groups"
    printf '%s,bootstrap-testenv-admin,admin,"system:masters"\n' "$(head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40)" >tokens.csv
    chmod 644 ca.crt
  ) || die "kube: could not make certificates in $d"
}

# kube_sign DIR NAME SUBJECT EXTENSIONS: DIR/NAME.key and DIR/NAME.crt, signed by
# the test env's CA; made once and kept while the CA still verifies them.
# EXTENSIONS are openssl x509 extension lines ("extendedKeyUsage=clientAuth").
kube_sign() {
  local dir=$1 name=$2 subj=$3 ext=$4 ca
  ca=$(kube_dir)/pki
  if [ -s "$dir/$name.key" ] && [ -s "$dir/$name.crt" ] &&
    openssl verify -CAfile "$ca/ca.crt" "$dir/$name.crt" >/dev/null 2>&1; then
    return 0
  fi
  (
    umask 077
    mkdir -p "$dir"
    cd "$dir"
    openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subj" >/dev/null 2>&1
    printf '%s\n' "$ext" >"$name.ext"
    openssl x509 -req -in "$name.csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
      -out "$name.crt" -days 3650 -extfile "$name.ext" >/dev/null 2>&1
    rm -f "$name.csr" "$name.ext"
  ) || die "kube: could not sign $dir/$name.crt"
}

kube_token() { cut -d, -f1 "$(kube_dir)/pki/tokens.csv"; }

# kube_audit_policy FILE: Metadata for every request — who did what to which
# object, never a request or response body (so never a Secret's data). The
# node's own chatter (the kubelet's, scheduler's and controller-manager's
# identities) is left out; controllers acting as kube-system ServiceAccounts
# are kept.
kube_audit_policy() {
  cat >"$1" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  userGroups: ["system:nodes"]
- level: None
  users: ["system:kube-scheduler", "system:kube-controller-manager"]
- level: Metadata
EOF
}

kube_write_kubeconfig() {
  local d=$1
  (
    umask 077
    cat >"$d/kubeconfig.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster:
    server: https://$HOST:$KUBE_API_PORT
    certificate-authority: $d/pki/ca.crt
users:
- name: admin
  user:
    token: $(kube_token)
contexts:
- name: testenv
  context: {cluster: testenv, user: admin, namespace: default}
current-context: testenv
EOF
    mv -f "$d/kubeconfig.tmp" "$d/kubeconfig"
  )
}

kube_etcd_ready() { curl -s --max-time 2 "http://$HOST:$KUBE_ETCD_PORT/health" | grep -q '"health":"true"'; }

kube_api_ready() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 --cacert "$(kube_dir)/pki/ca.crt" \
    "https://$HOST:$KUBE_API_PORT/readyz")" = 200 ]
}

kube_alive() {
  local d
  d=$(kube_dir)
  pid_alive "$d/etcd.pid" etcd && pid_alive "$d/apiserver.pid" kube-apiserver
}

kube_up() {
  local d crd
  d=$(kube_dir)
  if kube_alive; then
    log "kube: running on https://$HOST:$KUBE_API_PORT (etcd $KUBE_ETCD_PORT)"
    return 0
  fi
  kube_need_etcd
  gotools_build
  [ "${KUBE_BUILD_ONLY:-0}" = 1 ] && { log "kube: built (KUBE_BUILD_ONLY=1: not starting)"; return 0; }
  stop_pid "$d/apiserver.pid" kube-apiserver 10
  stop_pid "$d/etcd.pid" etcd 10
  need_free_port "kube etcd" "$KUBE_ETCD_PORT"
  need_free_port "kube etcd peer" "$KUBE_ETCD_PEER_PORT"
  need_free_port kube-apiserver "$KUBE_API_PORT"
  mkdir -p "$d/etcd" "$d/log"
  chmod 700 "$d/etcd"
  kube_pki "$d"
  # The client certificate the API server shows kubelets (logs, exec).
  kube_sign "$d/pki" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "extendedKeyUsage=clientAuth"
  kube_write_kubeconfig "$d"
  kube_audit_policy "$d/audit-policy.yaml"
  log "kube: starting etcd on $HOST:$KUBE_ETCD_PORT"
  start_bg "$d/etcd.pid" "$d/log/etcd.log" etcd --name testenv --data-dir "$d/etcd" \
    --listen-client-urls "http://$HOST:$KUBE_ETCD_PORT" --advertise-client-urls "http://$HOST:$KUBE_ETCD_PORT" \
    --listen-peer-urls "http://$HOST:$KUBE_ETCD_PEER_PORT" --initial-advertise-peer-urls "http://$HOST:$KUBE_ETCD_PEER_PORT" \
    --initial-cluster "testenv=http://$HOST:$KUBE_ETCD_PEER_PORT" --listen-metrics-urls "http://$HOST:$((KUBE_ETCD_PEER_PORT + 1))" \
    --quota-backend-bytes 1073741824
  wait_for "kube etcd" "$d/log/etcd.log" kube_etcd_ready || die "kube: etcd not healthy on $HOST:$KUBE_ETCD_PORT"
  log "kube: starting kube-apiserver $KUBE_VERSION on https://$HOST:$KUBE_API_PORT"
  start_bg "$d/apiserver.pid" "$d/log/apiserver.log" "$KUBE_BIN/kube-apiserver" \
    --etcd-servers "http://$HOST:$KUBE_ETCD_PORT" --etcd-prefix /bootstrap-testenv \
    --bind-address "$HOST" --advertise-address "$HOST" --secure-port "$KUBE_API_PORT" \
    --tls-cert-file "$d/pki/apiserver.crt" --tls-private-key-file "$d/pki/apiserver.key" \
    --client-ca-file "$d/pki/ca.crt" --token-auth-file "$d/pki/tokens.csv" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --kubelet-client-certificate "$d/pki/apiserver-kubelet-client.crt" --kubelet-client-key "$d/pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$d/pki/ca.crt" --kubelet-preferred-address-types Hostname \
    --audit-policy-file "$d/audit-policy.yaml" --audit-log-path "$d/log/audit.log" --audit-log-format json \
    --audit-log-maxsize 200 --audit-log-maxbackup 1 \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$d/pki/sa.pub" --service-account-signing-key-file "$d/pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 --endpoint-reconciler-type none \
    --enable-priority-and-fairness=false --profiling=false --cert-dir "$d/pki"
  wait_for kube-apiserver "$d/log/apiserver.log" kube_api_ready ||
    die "kube: kube-apiserver not ready on $HOST:$KUBE_API_PORT (log: $d/log/apiserver.log)"
  : >"$d/log/crd.log"
  for crd in "$(kube_crd)" "$(kube_servicemonitor_crd)"; do
    [ -f "$crd" ] || die "kube: CRD not found at $crd"
    "$KUBE_BIN/kubectl" --kubeconfig "$d/kubeconfig" apply --server-side --force-conflicts -f "$crd" >>"$d/log/crd.log" 2>&1 ||
      { cat "$d/log/crd.log" >&2; die "kube: could not install the CRD $crd"; }
  done
  "$KUBE_BIN/kubectl" --kubeconfig "$d/kubeconfig" wait --for condition=established --timeout 60s \
    crd/sealedsecrets.bitnami.com crd/servicemonitors.monitoring.coreos.com >>"$d/log/crd.log" 2>&1 ||
    die "kube: CRDs not established (log: $d/log/crd.log)"
}

kube_down() {
  local d
  d=$(kube_dir)
  if kube_alive; then log "kube: stopping"; fi
  stop_pid "$d/apiserver.pid" kube-apiserver 30
  stop_pid "$d/etcd.pid" etcd 30
}

kube_env() {
  local d
  d=$(kube_dir)
  echo "export BOOTSTRAP_TEST_KUBECONFIG='$d/kubeconfig'"
  echo "export BOOTSTRAP_TEST_KUBE_APISERVER='https://$HOST:$KUBE_API_PORT'"
  echo "export BOOTSTRAP_TEST_KUBE_CA='$d/pki/ca.crt'"
  echo "export BOOTSTRAP_TEST_KUBE_AUDIT_LOG='$d/log/audit.log'"
  echo "export BOOTSTRAP_TEST_KUBECTL='$KUBE_BIN/kubectl'"
  echo "export BOOTSTRAP_TEST_KUBESEAL='$SEALED_BIN/kubeseal'"
  echo "export BOOTSTRAP_TEST_SEALED_SECRETS_CONTROLLER='$SEALED_BIN/controller'"
  echo "export BOOTSTRAP_TEST_SEALED_SECRETS_CRD='$(kube_crd)'"
  echo "export BOOTSTRAP_TEST_SERVICEMONITOR_CRD='$(kube_servicemonitor_crd)'"
}
