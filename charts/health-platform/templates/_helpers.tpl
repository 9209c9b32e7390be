{{/*
Names. Every bootstrap object is <release>-bootstrap[-suffix], cut to the
63 characters Kubernetes allows in a label value.
*/}}
{{- define "health-platform.bootstrap.name" -}}
{{- printf "%s-bootstrap" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "health-platform.bootstrap.suffixed" -}}
{{- printf "%s-bootstrap-%s" .root.Release.Name .suffix | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "health-platform.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: health-platform
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "health-platform.bootstrap.labels" -}}
{{ include "health-platform.labels" . }}
app.kubernetes.io/component: bootstrap
{{- end -}}

{{- define "health-platform.bootstrap.image" -}}
{{- $i := .Values.bootstrap.image -}}
{{- if $i.digest -}}
{{- printf "%s@%s" $i.repository $i.digest -}}
{{- else -}}
{{- printf "%s:%s" $i.repository ($i.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
health-platform.infra returns (as YAML) the infrastructure values of one
alias, failing when the service is not part of this release: without it
there is no Service to derive the bootstrap target from.
*/}}
{{- define "health-platform.infra" -}}
{{- $infra := .root.Values.infrastructure | default dict -}}
{{- $v := index $infra .alias | default dict -}}
{{- $entry := .entry | default .alias -}}
{{- if not (and $infra.enabled $v.enabled) -}}
{{- fail (printf "bootstrap.%s.%s: infrastructure.%s is not enabled in this release; remove the bootstrap entry (bootstrap.%s.%s: null) or enable the service" .kind $entry .alias .kind $entry) -}}
{{- end -}}
{{- if not $v.fullnameOverride -}}
{{- fail (printf "infrastructure.%s.fullnameOverride is empty: the bootstrap config needs the Service name" .alias) -}}
{{- end -}}
{{- toYaml $v -}}
{{- end -}}

{{/*
health-platform.external returns (as YAML) an entry's `external` server (host,
port, and for RabbitMQ managementPort and user): a data service that is not
part of this release (a managed database, or the test environment's servers).
It fails when the alias is also an enabled service of this release: one entry,
one server.
*/}}
{{- define "health-platform.external" -}}
{{- $infra := .root.Values.infrastructure | default dict -}}
{{- $v := index $infra .alias | default dict -}}
{{- if and $infra.enabled $v.enabled -}}
{{- fail (printf "bootstrap.%s.%s.external: infrastructure.%s is a service of this release; remove external or disable the service" .kind .alias .alias) -}}
{{- end -}}
{{- $e := .spec.external -}}
{{- range $k := .required -}}
{{- if not (index $e $k) -}}
{{- fail (printf "bootstrap.%s.%s.external.%s is required" $.kind $.alias $k) -}}
{{- end -}}
{{- end -}}
{{- toYaml $e -}}
{{- end -}}

{{/*
health-platform.appSecret returns (as YAML) one bootstrap entry's application
Secret, {name, data, owner}, or nothing when it would hold no key:
  kind, alias  the entry (bootstrap.<kind>.<alias>)
  spec         its values; appSecret.name (default <alias>-app) and
               appSecret.data (key -> source secret) come from there
  derived      the keys the chart derives (PostgreSQL: password, the
               secretUserRole's; Redis: redis-password)
  on           a service of this release: derived by default; an external
               entry gets one only when appSecret.name is set
Whether a key holds an admin credential, or the name is a data service's own
Secret, is checked once every entry is known (health-platform.model).
*/}}
{{- define "health-platform.appSecret" -}}
{{- $a := .spec.appSecret | default dict -}}
{{- if or .on $a.name -}}
{{- $data := dict -}}
{{- range $k, $v := .derived }}{{ $_ := set $data $k $v }}{{ end -}}
{{- range $k, $v := ($a.data | default dict) -}}
{{- if hasKey $.derived $k -}}
{{- fail (printf "bootstrap.%s.%s.appSecret.data.%s: the chart derives this key (PostgreSQL: secretUserRole's password; Redis: the password); remove it" $.kind $.alias $k) -}}
{{- end -}}
{{- $_ := set $data $k $v -}}
{{- end -}}
{{- if $data -}}
{{- toYaml (dict "name" ($a.name | default (printf "%s-app" .alias)) "data" $data "owner" (printf "bootstrap.%s.%s" .kind .alias)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
health-platform.model derives, from the bootstrap and infrastructure values,
everything the templates render (as YAML, read back with fromYaml):
  config       bootstrap.yaml as a map
  secrets      the Kubernetes Secret names bootstrap writes
  connection   the ConfigMap data for application charts (no credentials)
  tls          the CAs of the PostgreSQL servers that speak TLS, one per
               server (health-platform.postgres.ca), for the bootstrap pods
Service hosts and ports, Secret names and keys come from the infrastructure
values only, so they are typed once.

Two kinds of Kubernetes Secret, never one object: a data service's own (the
names and keys its chart reads: admin and root passwords, the Erlang cookie),
and an application Secret per entry (health-platform.appSecret), the only
kind the connection ConfigMap names. The render fails when an application
Secret would hold an admin credential (a source secret some entry uses as
adminPassword, rootUser, rootPassword, RabbitMQ password or erlangCookie),
or would be one of the data services' Secrets, or another entry's.
*/}}
{{- define "health-platform.model" -}}
{{- $b := .Values.bootstrap -}}
{{- $ns := .Release.Namespace -}}
{{- $domain := .Values.clusterDomain | default "cluster.local" -}}
{{- $fixed := (.Values.infrastructure | default dict).fixedSecretKeys | default dict -}}
{{- $ks := dict -}}
{{- $apps := list -}}
{{- $conn := dict -}}

{{- /* The admin credentials: source secret -> the value naming it. */ -}}
{{- $admin := dict -}}
{{- range $alias, $spec := $b.postgres -}}
{{- if and $spec $spec.adminPassword }}{{ $_ := set $admin $spec.adminPassword (printf "bootstrap.postgres.%s.adminPassword" $alias) }}{{ end -}}
{{- end -}}
{{- range $alias, $spec := $b.minio -}}
{{- if $spec -}}
{{- range $k := list "rootUser" "rootPassword" -}}
{{- with index $spec $k }}{{ $_ := set $admin . (printf "bootstrap.minio.%s.%s" $alias $k) }}{{ end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $alias, $spec := $b.rabbitmq -}}
{{- if $spec -}}
{{- if $spec.secretExtraKeys -}}
{{- fail (printf "bootstrap.rabbitmq.%s.secretExtraKeys: moved to appSecret.data: application users' passwords go to the application Secret (%s-app), never to the Secret holding the admin password and the Erlang cookie" $alias $alias) -}}
{{- end -}}
{{- range $k := list "password" "erlangCookie" -}}
{{- with index $spec $k }}{{ $_ := set $admin . (printf "bootstrap.rabbitmq.%s.%s" $alias $k) }}{{ end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- $pgs := list -}}
{{- $cas := dict -}}
{{- range $alias, $spec := $b.postgres -}}
{{- if $spec -}}
{{- $p := $alias | upper | replace "-" "_" -}}
{{- /* The application role's password, for the application Secret. */ -}}
{{- $derived := dict -}}
{{- $rotates := false -}}
{{- if $spec.secretUserRole -}}
{{- $found := "" -}}
{{- range $spec.roles -}}
{{- if and (eq .name $spec.secretUserRole) .password -}}
{{- $found = .password.secret -}}
{{- $rotates = hasKey . "rotation" -}}
{{- end -}}
{{- end -}}
{{- if not $found -}}
{{- fail (printf "bootstrap.postgres.%s.secretUserRole: no role %q with a password in bootstrap.postgres.%s.roles" $alias $spec.secretUserRole $alias) -}}
{{- end -}}
{{- $_ := set $derived "password" $found -}}
{{- /* A rotating role logs in as NAME_a or NAME_b in turn: the Secret
carries the login that holds the password now. */ -}}
{{- if $rotates -}}
{{- $_ := set $derived "username" (printf "%s/username" $found) -}}
{{- end -}}
{{- end -}}
{{- /* server: the alias whose PostgreSQL holds this entry's roles and
databases (default: its own). On another entry's server, the admin is that
entry's adminPassword (one server, one superuser; this entry's own is not
used), and that entry delivers the server's Secret. */ -}}
{{- $sslmode := $spec.sslmode | default "prefer" -}}
{{- if $spec.external -}}
{{- $e := include "health-platform.external" (dict "root" $ "alias" $alias "kind" "postgres" "spec" $spec "required" (list "host" "port")) | fromYaml -}}
{{- $t := omit $spec "adminPassword" "secretUserRole" "server" "external" "appSecret" -}}
{{- $_ := set $t "host" $e.host -}}
{{- $_ := set $t "port" (int $e.port) -}}
{{- $_ := set $t "admin" (dict "user" ($e.adminUser | default "postgres") "database" "postgres" "password" (dict "secret" $spec.adminPassword)) -}}
{{- $pgs = append $pgs $t -}}
{{- $_ := set $conn (printf "%s_HOST" $p) $e.host -}}
{{- $_ := set $conn (printf "%s_PORT" $p) (toString $e.port) -}}
{{- $app := include "health-platform.appSecret" (dict "kind" "postgres" "alias" $alias "spec" $spec "derived" $derived "on" false) | fromYaml -}}
{{- if $app }}{{ $apps = append $apps $app }}{{ $_ := set $conn (printf "%s_SECRET" $p) $app.name }}{{ end -}}
{{- else -}}
{{- $server := $spec.server | default $alias -}}
{{- $adminPassword := $spec.adminPassword -}}
{{- if ne $server $alias -}}
{{- $serverSpec := index $b.postgres $server | default dict -}}
{{- if not $serverSpec.adminPassword -}}
{{- fail (printf "bootstrap.postgres.%s.server: %q has no bootstrap.postgres entry with an adminPassword" $alias $server) -}}
{{- end -}}
{{- $adminPassword = $serverSpec.adminPassword -}}
{{- end -}}
{{- $v := include "health-platform.infra" (dict "root" $ "alias" $server "kind" "postgres" "entry" $alias) | fromYaml -}}
{{- $host := printf "%s.%s.svc.%s" $v.fullnameOverride $ns $domain -}}
{{- $port := int $v.primary.service.ports.postgresql -}}
{{- $t := omit $spec "adminPassword" "secretUserRole" "server" "appSecret" -}}
{{- $_ := set $t "host" $host -}}
{{- $_ := set $t "port" $port -}}
{{- $_ := set $t "admin" (dict "user" "postgres" "database" "postgres" "password" (dict "secret" $adminPassword)) -}}
{{- /* The server's TLS (its infrastructure values): sslmode verify-full
against its CA, mounted from its Secret (health-platform.postgres.ca). */ -}}
{{- $ca := include "health-platform.postgres.ca" (dict "alias" $server "v" $v) | fromYaml -}}
{{- $sslmode = include "health-platform.postgres.tls" (dict "t" $t "spec" $spec "entry" $alias "ca" $ca) -}}
{{- if and $ca $ca.key }}{{ $_ := set $cas $server $ca }}{{ end -}}
{{- $pgs = append $pgs $t -}}
{{- if eq $server $alias -}}
{{- $_ := set $ks $v.auth.existingSecret (merge (get $ks $v.auth.existingSecret | default dict) (dict $v.auth.secretKeys.adminPasswordKey $adminPassword)) -}}
{{- end -}}
{{- $_ := set $conn (printf "%s_HOST" $p) $host -}}
{{- $_ := set $conn (printf "%s_PORT" $p) (toString $port) -}}
{{- $app := include "health-platform.appSecret" (dict "kind" "postgres" "alias" $alias "spec" $spec "derived" $derived "on" true) | fromYaml -}}
{{- if $app }}{{ $apps = append $apps $app }}{{ $_ := set $conn (printf "%s_SECRET" $p) $app.name }}{{ end -}}
{{- end -}}
{{- $_ := set $conn (printf "%s_SSLMODE" $p) $sslmode -}}
{{- $dbs := list -}}
{{- range $spec.databases }}{{ $dbs = append $dbs .name }}{{ end -}}
{{- $_ := set $conn (printf "%s_DATABASES" $p) (join "," $dbs) -}}
{{- /* A rotating role's login changes: the Secret's username says it. */ -}}
{{- if and $spec.secretUserRole (not $rotates) }}{{ $_ := set $conn (printf "%s_USER" $p) $spec.secretUserRole }}{{ end -}}
{{- end -}}
{{- end -}}

{{- $redis := list -}}
{{- range $alias, $spec := $b.redis -}}
{{- if $spec -}}
{{- $p := $alias | upper | replace "-" "_" -}}
{{- $t := omit $spec "password" "external" "appSecret" -}}
{{- $_ := set $t "password" (dict "secret" $spec.password) -}}
{{- /* Redis here has one password (no ACL users): the applications' too. */ -}}
{{- $derived := dict "redis-password" $spec.password -}}
{{- if $spec.external -}}
{{- $e := include "health-platform.external" (dict "root" $ "alias" $alias "kind" "redis" "spec" $spec "required" (list "host" "port")) | fromYaml -}}
{{- $_ := set $t "address" (printf "%s:%d" $e.host (int $e.port)) -}}
{{- $_ := set $conn (printf "%s_HOST" $p) $e.host -}}
{{- $_ := set $conn (printf "%s_PORT" $p) (toString $e.port) -}}
{{- $app := include "health-platform.appSecret" (dict "kind" "redis" "alias" $alias "spec" $spec "derived" $derived "on" false) | fromYaml -}}
{{- if $app }}{{ $apps = append $apps $app }}{{ $_ := set $conn (printf "%s_SECRET" $p) $app.name }}{{ end -}}
{{- else -}}
{{- $v := include "health-platform.infra" (dict "root" $ "alias" $alias "kind" "redis") | fromYaml -}}
{{- $host := printf "%s-master.%s.svc.%s" $v.fullnameOverride $ns $domain -}}
{{- $port := int $v.master.service.ports.redis -}}
{{- $_ := set $t "address" (printf "%s:%d" $host $port) -}}
{{- $key := $v.auth.existingSecretPasswordKey | default "redis-password" -}}
{{- $_ := set $ks $v.auth.existingSecret (merge (get $ks $v.auth.existingSecret | default dict) (dict $key $spec.password)) -}}
{{- $_ := set $conn (printf "%s_HOST" $p) $host -}}
{{- $_ := set $conn (printf "%s_PORT" $p) (toString $port) -}}
{{- $app := include "health-platform.appSecret" (dict "kind" "redis" "alias" $alias "spec" $spec "derived" $derived "on" true) | fromYaml -}}
{{- if $app }}{{ $apps = append $apps $app }}{{ $_ := set $conn (printf "%s_SECRET" $p) $app.name }}{{ end -}}
{{- end -}}
{{- $redis = append $redis $t -}}
{{- end -}}
{{- end -}}

{{- $minio := list -}}
{{- range $alias, $spec := $b.minio -}}
{{- if $spec -}}
{{- $p := $alias | upper | replace "-" "_" -}}
{{- $t := omit $spec "rootUser" "rootPassword" "external" "appSecret" -}}
{{- $_ := set $t "accessKey" (dict "secret" $spec.rootUser) -}}
{{- $_ := set $t "secretKey" (dict "secret" $spec.rootPassword) -}}
{{- $endpoint := "" -}}
{{- $on := true -}}
{{- if $spec.external -}}
{{- $e := include "health-platform.external" (dict "root" $ "alias" $alias "kind" "minio" "spec" $spec "required" (list "host" "port")) | fromYaml -}}
{{- $endpoint = printf "%s:%d" $e.host (int $e.port) -}}
{{- $on = false -}}
{{- else -}}
{{- $v := include "health-platform.infra" (dict "root" $ "alias" $alias "kind" "minio") | fromYaml -}}
{{- $endpoint = printf "%s.%s.svc.%s:%d" $v.fullnameOverride $ns $domain (int $v.service.ports.api) -}}
{{- $data := dict $fixed.minio.rootUser $spec.rootUser $fixed.minio.rootPassword $spec.rootPassword -}}
{{- $_ := set $ks $v.auth.existingSecret (merge (get $ks $v.auth.existingSecret | default dict) $data) -}}
{{- end -}}
{{- $_ := set $t "endpoint" $endpoint -}}
{{- $minio = append $minio $t -}}
{{- $_ := set $conn (printf "%s_ENDPOINT" $p) $endpoint -}}
{{- $_ := set $conn (printf "%s_REGION" $p) ($spec.region | default "us-east-1") -}}
{{- $bs := list -}}
{{- range $spec.buckets }}{{ $bs = append $bs .name }}{{ end -}}
{{- $_ := set $conn (printf "%s_BUCKETS" $p) (join "," $bs) -}}
{{- /* Bootstrap creates no MinIO users: only keys the user lists. */ -}}
{{- $app := include "health-platform.appSecret" (dict "kind" "minio" "alias" $alias "spec" $spec "derived" (dict) "on" $on) | fromYaml -}}
{{- if $app }}{{ $apps = append $apps $app }}{{ $_ := set $conn (printf "%s_SECRET" $p) $app.name }}{{ end -}}
{{- end -}}
{{- end -}}

{{- $rabbit := list -}}
{{- range $alias, $spec := $b.rabbitmq -}}
{{- if $spec -}}
{{- $p := $alias | upper | replace "-" "_" -}}
{{- $t := omit $spec "password" "erlangCookie" "external" "appSecret" -}}
{{- $_ := set $t "password" (dict "secret" $spec.password) -}}
{{- $on := true -}}
{{- if $spec.external -}}
{{- $e := include "health-platform.external" (dict "root" $ "alias" $alias "kind" "rabbitmq" "spec" $spec "required" (list "host" "port" "managementPort" "user")) | fromYaml -}}
{{- $_ := set $t "host" $e.host -}}
{{- $_ := set $t "port" (int $e.port) -}}
{{- $_ := set $t "managementPort" (int $e.managementPort) -}}
{{- $_ := set $t "user" $e.user -}}
{{- $on = false -}}
{{- else -}}
{{- $v := include "health-platform.infra" (dict "root" $ "alias" $alias "kind" "rabbitmq") | fromYaml -}}
{{- $_ := set $t "host" (printf "%s.%s.svc.%s" $v.fullnameOverride $ns $domain) -}}
{{- $_ := set $t "port" (int $v.service.ports.amqp) -}}
{{- $_ := set $t "managementPort" (int $v.service.ports.manager) -}}
{{- $_ := set $t "user" $v.auth.username -}}
{{- $pw := $v.auth.existingPasswordSecret -}}
{{- $_ := set $ks $pw (merge (get $ks $pw | default dict) (dict $fixed.rabbitmq.password $spec.password)) -}}
{{- if $spec.erlangCookie -}}
{{- $ec := $v.auth.existingErlangSecret | default $pw -}}
{{- $_ := set $ks $ec (merge (get $ks $ec | default dict) (dict $fixed.rabbitmq.erlangCookie $spec.erlangCookie)) -}}
{{- end -}}
{{- end -}}
{{- $rabbit = append $rabbit $t -}}
{{- $_ := set $conn (printf "%s_HOST" $p) $t.host -}}
{{- $_ := set $conn (printf "%s_PORT" $p) (toString $t.port) -}}
{{- $_ := set $conn (printf "%s_MANAGEMENT_PORT" $p) (toString $t.managementPort) -}}
{{- if $on -}}
{{- $vh := list -}}
{{- range $spec.vhosts }}{{ $vh = append $vh .name }}{{ end -}}
{{- $_ := set $conn (printf "%s_VHOSTS" $p) (join "," $vh) -}}
{{- $ex := list -}}
{{- range $spec.exchanges }}{{ $ex = append $ex (printf "%s/%s" .vhost .name) }}{{ end -}}
{{- $_ := set $conn (printf "%s_EXCHANGES" $p) (join "," $ex) -}}
{{- $qs := list -}}
{{- range $spec.queues }}{{ $qs = append $qs (printf "%s/%s" .vhost .name) }}{{ end -}}
{{- $_ := set $conn (printf "%s_QUEUES" $p) (join "," $qs) -}}
{{- end -}}
{{- $app := include "health-platform.appSecret" (dict "kind" "rabbitmq" "alias" $alias "spec" $spec "derived" (dict) "on" $on) | fromYaml -}}
{{- if $app }}{{ $apps = append $apps $app }}{{ $_ := set $conn (printf "%s_SECRET" $p) $app.name }}{{ end -}}
{{- end -}}
{{- end -}}

{{- /* Application Secrets: never an admin credential, never a data
service's Secret, never two entries' in one. */ -}}
{{- $appNames := dict -}}
{{- range $app := $apps -}}
{{- if hasKey $ks $app.name -}}
{{- fail (printf "%s.appSecret.name: %s is a Secret the data services read (admin credentials); name another" $app.owner $app.name) -}}
{{- end -}}
{{- if hasKey $appNames $app.name -}}
{{- fail (printf "%s.appSecret.name: %s is %s's application Secret already; one Secret per entry" $app.owner $app.name (get $appNames $app.name)) -}}
{{- end -}}
{{- $_ := set $appNames $app.name $app.owner -}}
{{- range $k, $src := $app.data -}}
{{- if hasKey $admin $src -}}
{{- fail (printf "%s.appSecret: key %s would hold %s, an admin credential (%s); applications never get one" $app.owner $k $src (get $admin $src)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $app := $apps }}{{ $_ := set $ks $app.name $app.data }}{{ end -}}

{{- $ksl := list -}}
{{- range $name := keys $ks | sortAlpha -}}
{{- $ksl = append $ksl (dict "name" $name "data" (get $ks $name)) -}}
{{- end -}}
{{- range $b.secrets.extraKubernetesSecrets -}}
{{- $ksl = append $ksl . -}}
{{- end -}}
{{- $names := list -}}
{{- range $ksl }}{{ $names = append $names .name }}{{ end -}}

{{- $out := $b.secrets.output | default dict -}}
{{- $output := merge (dict "namespace" $ns) (omit $out "namespace") -}}
{{- $secrets := dict "source" $b.secrets.source "generate" $b.secrets.generate "output" $output -}}
{{- if $ksl }}{{ $_ := set $secrets "kubernetesSecrets" $ksl }}{{ end -}}
{{- $config := dict "version" 1 "defaults" $b.defaults "secrets" $secrets -}}
{{- if $pgs }}{{ $_ := set $config "postgres" $pgs }}{{ end -}}
{{- if $redis }}{{ $_ := set $config "redis" $redis }}{{ end -}}
{{- if $minio }}{{ $_ := set $config "minio" $minio }}{{ end -}}
{{- if $rabbit }}{{ $_ := set $config "rabbitmq" $rabbit }}{{ end -}}
{{- $tls := list -}}
{{- range $server := keys $cas | sortAlpha }}{{ $tls = append $tls (get $cas $server) }}{{ end -}}
{{- toYaml (dict "config" $config "secrets" $names "connection" $conn "tls" $tls) -}}
{{- end -}}

{{/*
health-platform.bootstrap.pod renders the pod spec every bootstrap workload
shares; .args is the command line after the binary. The hook Jobs and the
test Pod pass only that. The serve Deployment also passes:
  serviceAccount  its own (non-hook) ServiceAccount instead of the hooks'
  restartPolicy   Always instead of Never
  configDir       mount the config ConfigMap as a directory, not one file
                  through subPath: subPath mounts never see a changed
                  ConfigMap, and serve re-reads the file before each run
  resources       instead of bootstrap.resources
  container       YAML added to the container (ports, probes)
  pod             YAML added to the pod spec (terminationGracePeriodSeconds)
The uninstall hook passes bare (no config, no migrations: it reads neither,
and they may be gone) and token (it always talks to the API server). Every
other pod reads the config and gets the PostgreSQL servers' CAs
(health-platform.bootstrap.tlsVolumes).
*/}}
{{- define "health-platform.bootstrap.pod" -}}
{{- $root := .root -}}
{{- $b := $root.Values.bootstrap -}}
{{- $cas := list -}}
{{- if not .bare }}{{ $cas = (include "health-platform.model" $root | fromYaml).tls }}{{ end -}}
serviceAccountName: {{ .serviceAccount | default (include "health-platform.bootstrap.name" $root) }}
# The API token only when bootstrap talks to the API server: Secrets go to
# the cluster, or the sealing certificate comes from the controller.
automountServiceAccountToken: {{ if .token }}true{{ else }}{{ include "health-platform.bootstrap.needsAPI" $root }}{{ end }}
restartPolicy: {{ .restartPolicy | default "Never" }}
enableServiceLinks: false
{{- if $b.hostNetwork }}
hostNetwork: true
dnsPolicy: ClusterFirstWithHostNet
{{- end }}
{{- with .pod }}
{{ . }}
{{- end }}
{{- with $b.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $b.podSecurityContext | nindent 2 }}
{{- with $b.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $b.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $b.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: bootstrap
    image: {{ include "health-platform.bootstrap.image" $root }}
    imagePullPolicy: {{ $b.image.pullPolicy }}
    args:
      {{- toYaml .args | nindent 6 }}
    env:
      {{- if not .bare }}
      - name: BOOTSTRAP_CONFIG
        value: {{ if .configDir }}/etc/bootstrap/config/bootstrap.yaml{{ else }}/etc/bootstrap/bootstrap.yaml{{ end }}
      {{- end }}
      {{- if $b.hostNetwork }}
      # On the node's network a listener binds the pod's (the node's) address,
      # not every interface of the node.
      - name: BOOTSTRAP_POD_IP
        valueFrom:
          fieldRef:
            fieldPath: status.podIP
      {{- end }}
      {{- with $b.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- with .container }}
    {{- . | nindent 4 }}
    {{- end }}
    resources:
      {{- toYaml (.resources | default $b.resources) | nindent 6 }}
    securityContext:
      {{- toYaml $b.containerSecurityContext | nindent 6 }}
    volumeMounts:
      {{- if not .bare }}
      - name: config
        {{- if .configDir }}
        mountPath: /etc/bootstrap/config
        {{- else }}
        mountPath: /etc/bootstrap/bootstrap.yaml
        subPath: bootstrap.yaml
        {{- end }}
        readOnly: true
      {{- if include "health-platform.migrations" $root }}
      - name: migrations
        mountPath: /etc/bootstrap/migrations
        readOnly: true
      {{- end }}
      {{- with $cas }}
      {{- include "health-platform.bootstrap.tlsMounts" (dict "cas" .) | trim | nindent 6 }}
      {{- end }}
      {{- end }}
      - name: tmp
        mountPath: /tmp
      {{- with $b.extraVolumeMounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
volumes:
  {{- if not .bare }}
  - name: config
    configMap:
      name: {{ include "health-platform.bootstrap.suffixed" (dict "root" $root "suffix" "config") }}
  {{- end }}
  {{- $m := include "health-platform.migrations" $root | fromYaml }}
  {{- if and $m (not .bare) }}
  - name: migrations
    configMap:
      name: {{ include "health-platform.bootstrap.suffixed" (dict "root" $root "suffix" "migrations") }}
      items:
        {{- range $key := keys $m | sortAlpha }}
        - key: {{ $key }}
          path: {{ (get $m $key).path }}
        {{- end }}
  {{- end }}
  {{- with $cas }}
  {{- include "health-platform.bootstrap.tlsVolumes" (dict "cas" .) | trim | nindent 2 }}
  {{- end }}
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
  {{- with $b.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/*
health-platform.bootstrap.needsAPI is "true" when bootstrap talks to the API
server (Secrets go to the cluster, or the sealing certificate comes from the
controller), else "false": whether its pods get a token and a Role.
*/}}
{{- define "health-platform.bootstrap.needsAPI" -}}
{{- $out := .Values.bootstrap.secrets.output -}}
{{- or (and (ne $out.type "none") (eq $out.target "cluster")) (and (eq $out.type "sealed") (not $out.sealing.cert)) -}}
{{- end -}}

{{/*
health-platform.bootstrap.rbac renders one bootstrap identity: its
ServiceAccount, the Role and RoleBinding in the release namespace, and the
Role and RoleBinding for the sealing certificate in the controller's
namespace. The rules are the least the secrets phase needs
(internal/secrets/sink.RBAC): write the SealedSecrets (or, for output.type
plain, the Secrets) named in the config, read and annotate the Secrets of
those names, and read the sealing certificate through the controller's
Service. Namespaced Roles only: no wildcard, no cluster scope. Both identities
render from here, so their rules cannot drift apart:
  suffix ""       the hook Jobs' <release>-bootstrap; hooks (.hook) with
                  weights below the secrets Job, because ordinary release
                  objects do not exist yet when pre-install hooks run
  suffix "serve"  the serve Deployment's <release>-bootstrap-serve; ordinary
                  objects, since hooks are deleted and recreated on every
                  upgrade (before-hook-creation), which would revoke a
                  running daemon's token
*/}}
{{- define "health-platform.bootstrap.rbac" -}}
{{- $root := .root -}}
{{- $m := include "health-platform.model" $root | fromYaml -}}
{{- $out := $m.config.secrets.output -}}
{{- $name := include "health-platform.bootstrap.name" $root -}}
{{- $certRole := include "health-platform.bootstrap.suffixed" (dict "root" $root "suffix" "sealing-cert") -}}
{{- if .suffix -}}
{{- $name = include "health-platform.bootstrap.suffixed" (dict "root" $root "suffix" .suffix) -}}
{{- $certRole = include "health-platform.bootstrap.suffixed" (dict "root" $root "suffix" (printf "%s-sealing-cert" .suffix)) -}}
{{- end -}}
{{- $hook := .hook -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "health-platform.bootstrap.labels" $root | nindent 4 }}
    {{- with .labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if $hook }}
  annotations:
    {{- include "health-platform.hook" (dict "hook" $hook "weight" -30) | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- if and (ne $out.type "none") (eq $out.target "cluster") }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "health-platform.bootstrap.labels" $root | nindent 4 }}
    {{- with .labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if $hook }}
  annotations:
    {{- include "health-platform.hook" (dict "hook" $hook "weight" -30) | nindent 4 }}
  {{- end }}
rules:
  {{- if eq $out.type "sealed" }}
  # create cannot be limited by name (the name is not part of the request
  # when it is authorized); SealedSecrets hold only ciphertext.
  - apiGroups: [bitnami.com]
    resources: [sealedsecrets]
    verbs: [create]
  - apiGroups: [bitnami.com]
    resources: [sealedsecrets]
    resourceNames:
      {{- toYaml $m.secrets | nindent 6 }}
    verbs: [get, update]
  # get: does a plain Secret of that name exist, has the controller unsealed
  # it; patch: annotate an existing plain Secret managed (metadata only) so
  # the controller may take it over. Only the Secrets bootstrap delivers.
  - apiGroups: [""]
    resources: [secrets]
    resourceNames:
      {{- toYaml $m.secrets | nindent 6 }}
    verbs: [get, patch]
  {{- else }}
  # output.type plain: ordinary Secrets, written directly.
  - apiGroups: [""]
    resources: [secrets]
    verbs: [create]
  - apiGroups: [""]
    resources: [secrets]
    resourceNames:
      {{- toYaml $m.secrets | nindent 6 }}
    verbs: [get, update]
  {{- end }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "health-platform.bootstrap.labels" $root | nindent 4 }}
    {{- with .labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if $hook }}
  annotations:
    {{- include "health-platform.hook" (dict "hook" $hook "weight" -25) | nindent 4 }}
  {{- end }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $name }}
subjects:
  - kind: ServiceAccount
    name: {{ $name }}
    namespace: {{ $root.Release.Namespace }}
{{- end }}
{{- if and (eq $out.type "sealed") (not $out.sealing.cert) }}
{{- $ctl := $out.sealing.controllerName }}
---
# Fetching the controller's certificate: GET the Service, then its
# /v1/cert.pem through the API server's service proxy. Only that Service, in
# the controller's namespace.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $certRole }}
  namespace: {{ $out.sealing.controllerNamespace }}
  labels:
    {{- include "health-platform.bootstrap.labels" $root | nindent 4 }}
    {{- with .labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if $hook }}
  annotations:
    {{- include "health-platform.hook" (dict "hook" $hook "weight" -30) | nindent 4 }}
  {{- end }}
rules:
  - apiGroups: [""]
    resources: [services]
    resourceNames: [{{ $ctl }}]
    verbs: [get]
  # The proxy's resource name is scheme:name:port, as bootstrap (like
  # kubeseal) requests /services/http:NAME:http/proxy/v1/cert.pem.
  - apiGroups: [""]
    resources: [services/proxy]
    resourceNames: ["http:{{ $ctl }}:http"]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $certRole }}
  namespace: {{ $out.sealing.controllerNamespace }}
  labels:
    {{- include "health-platform.bootstrap.labels" $root | nindent 4 }}
    {{- with .labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if $hook }}
  annotations:
    {{- include "health-platform.hook" (dict "hook" $hook "weight" -25) | nindent 4 }}
  {{- end }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $certRole }}
subjects:
  - kind: ServiceAccount
    name: {{ $name }}
    namespace: {{ $root.Release.Namespace }}
{{- end }}
{{- end -}}

{{/*
health-platform.migrations returns (as YAML) ConfigMap key -> {path, sql} for
the chart's migrations/<database>/*.sql and bootstrap.extraMigrations; empty
when there are none.
*/}}
{{- define "health-platform.migrations" -}}
{{- $out := dict -}}
{{- range $path, $_ := .Files.Glob "migrations/*/*.sql" -}}
{{- $parts := splitList "/" $path -}}
{{- $db := index $parts 1 -}}
{{- $file := index $parts 2 -}}
{{- $_ := set $out (printf "%s.%s" $db $file) (dict "path" (printf "%s/%s" $db $file) "sql" ($.Files.Get $path)) -}}
{{- end -}}
{{- range $db, $files := .Values.bootstrap.extraMigrations -}}
{{- range $file, $sql := $files -}}
{{- $_ := set $out (printf "%s.%s" $db $file) (dict "path" (printf "%s/%s" $db $file) "sql" $sql) -}}
{{- end -}}
{{- end -}}
{{- if $out }}{{ toYaml $out }}{{ end -}}
{{- end -}}

{{/*
health-platform.timeout is bootstrap's --timeout: 30 s inside the Job's
deadline, so a slow run ends with a report instead of a kill.
*/}}
{{- define "health-platform.timeout" -}}
{{- printf "%ds" (sub (int .) 30) -}}
{{- end -}}

{{/*
Hook annotations: kind of hook, weight, and the delete policy. Everything a
pre-install hook Job needs is a hook itself with a lower weight: ordinary
release objects do not exist yet when pre-install hooks run.
*/}}
{{- define "health-platform.hook" -}}
helm.sh/hook: {{ .hook }}
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: {{ .policy | default "before-hook-creation" }}
{{- end -}}

{{/*
health-platform.bootstrap.serve.monitor returns (as YAML) whether the serve
Deployment gets a ServiceMonitor and where: {render, namespace}. With
serviceMonitor.enabled auto it follows the data services: one exactly when
any of them has a ServiceMonitor, so the Prometheus Operator (and its CRD) is
known to be there. The namespace is serviceMonitor.namespace, else the one
the data services' ServiceMonitors use (they must agree), else the release
namespace.
*/}}
{{- define "health-platform.bootstrap.serve.monitor" -}}
{{- $sm := .Values.bootstrap.serve.serviceMonitor | default dict -}}
{{- $infra := .Values.infrastructure | default dict -}}
{{- $nss := list -}}
{{- if $infra.enabled -}}
{{- range $alias := keys $infra | sortAlpha -}}
{{- $v := get $infra $alias -}}
{{- if and (kindIs "map" $v) (get $v "enabled") (dig "metrics" "serviceMonitor" "enabled" false $v) -}}
{{- $nss = append $nss (dig "metrics" "serviceMonitor" "namespace" "" $v | default $.Release.Namespace) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $nss = uniq $nss -}}
{{- $mode := toString (hasKey $sm "enabled" | ternary $sm.enabled "auto") -}}
{{- $render := or (eq $mode "true") (and (eq $mode "auto") (gt (len $nss) 0)) -}}
{{- $ns := $sm.namespace -}}
{{- if and $render (not $ns) -}}
{{- if gt (len $nss) 1 -}}
{{- fail (printf "bootstrap.serve.serviceMonitor.namespace: the data services' ServiceMonitors are in %s; say which one the bootstrap daemon's goes to" (join ", " $nss)) -}}
{{- end -}}
{{- $ns = first $nss | default .Release.Namespace -}}
{{- end -}}
{{- toYaml (dict "render" $render "namespace" $ns) -}}
{{- end -}}

{{/*
health-platform.bootstrap.serve.selector: the labels that pick the serve
Deployment's pod (the Deployment's selector, the Service's, the
ServiceMonitor's); phase serve tells it from the hook Jobs' pods.
*/}}
{{- define "health-platform.bootstrap.serve.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: bootstrap
app.kubernetes.io/phase: serve
{{- end -}}

{{/*
health-platform.bootstrap.serve.container: the serve container's port and
probes. The listener is up before the first run starts, so the startup
probe passes within seconds; /healthz answers while the process runs, so
only a hung process is restarted. /readyz is 503 until a run has succeeded
(the first one waits up to defaults.waitTimeout for the data services) and
after a failed one: that marks the pod unready, which restarts nothing.
*/}}
{{- define "health-platform.bootstrap.serve.container" -}}
ports:
  - name: metrics
    containerPort: {{ .Values.bootstrap.serve.port | default 8080 }}
    protocol: TCP
startupProbe:
  httpGet:
    path: /healthz
    port: metrics
  periodSeconds: 2
  timeoutSeconds: 2
  failureThreshold: 30
livenessProbe:
  httpGet:
    path: /healthz
    port: metrics
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: metrics
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
{{- end -}}
