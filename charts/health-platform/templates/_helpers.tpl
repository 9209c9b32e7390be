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
{{- if not (and $infra.enabled $v.enabled) -}}
{{- fail (printf "bootstrap.%s.%s: infrastructure.%s is not enabled in this release; remove the bootstrap entry (bootstrap.%s.%s: null) or enable the service" .kind .alias .alias .kind .alias) -}}
{{- end -}}
{{- if not $v.fullnameOverride -}}
{{- fail (printf "infrastructure.%s.fullnameOverride is empty: the bootstrap config needs the Service name" .alias) -}}
{{- end -}}
{{- toYaml $v -}}
{{- end -}}

{{/*
health-platform.model derives, from the bootstrap and infrastructure values,
everything the templates render (as YAML, read back with fromYaml):
  config       bootstrap.yaml as a map
  secrets      the Kubernetes Secret names bootstrap writes
  connection   the ConfigMap data for application charts (no credentials)
Service hosts and ports, Secret names and keys come from the infrastructure
values only, so they are typed once.
*/}}
{{- define "health-platform.model" -}}
{{- $b := .Values.bootstrap -}}
{{- $ns := .Release.Namespace -}}
{{- $domain := .Values.clusterDomain | default "cluster.local" -}}
{{- $fixed := (.Values.infrastructure | default dict).fixedSecretKeys | default dict -}}
{{- $ks := dict -}}
{{- $conn := dict -}}

{{- $pgs := list -}}
{{- range $alias, $spec := $b.postgres -}}
{{- if $spec -}}
{{- $v := include "health-platform.infra" (dict "root" $ "alias" $alias "kind" "postgres") | fromYaml -}}
{{- $host := printf "%s.%s.svc.%s" $v.fullnameOverride $ns $domain -}}
{{- $port := int $v.primary.service.ports.postgresql -}}
{{- $t := omit $spec "adminPassword" "secretUserRole" -}}
{{- $_ := set $t "host" $host -}}
{{- $_ := set $t "port" $port -}}
{{- $_ := set $t "admin" (dict "user" "postgres" "database" "postgres" "password" (dict "secret" $spec.adminPassword)) -}}
{{- $pgs = append $pgs $t -}}
{{- $data := dict $v.auth.secretKeys.adminPasswordKey $spec.adminPassword -}}
{{- if $spec.secretUserRole -}}
{{- $found := "" -}}
{{- range $spec.roles -}}
{{- if and (eq .name $spec.secretUserRole) .password -}}
{{- $found = .password.secret -}}
{{- end -}}
{{- end -}}
{{- if not $found -}}
{{- fail (printf "bootstrap.postgres.%s.secretUserRole: no role %q with a password in bootstrap.postgres.%s.roles" $alias $spec.secretUserRole $alias) -}}
{{- end -}}
{{- $_ := set $data $v.auth.secretKeys.userPasswordKey $found -}}
{{- end -}}
{{- $_ := set $ks $v.auth.existingSecret (merge (get $ks $v.auth.existingSecret | default dict) $data) -}}
{{- $p := $alias | upper | replace "-" "_" -}}
{{- $_ := set $conn (printf "%s_HOST" $p) $host -}}
{{- $_ := set $conn (printf "%s_PORT" $p) (toString $port) -}}
{{- $_ := set $conn (printf "%s_SSLMODE" $p) ($spec.sslmode | default "prefer") -}}
{{- $dbs := list -}}
{{- range $spec.databases }}{{ $dbs = append $dbs .name }}{{ end -}}
{{- $_ := set $conn (printf "%s_DATABASES" $p) (join "," $dbs) -}}
{{- $_ := set $conn (printf "%s_SECRET" $p) $v.auth.existingSecret -}}
{{- end -}}
{{- end -}}

{{- $redis := list -}}
{{- range $alias, $spec := $b.redis -}}
{{- if $spec -}}
{{- $v := include "health-platform.infra" (dict "root" $ "alias" $alias "kind" "redis") | fromYaml -}}
{{- $host := printf "%s-master.%s.svc.%s" $v.fullnameOverride $ns $domain -}}
{{- $port := int $v.master.service.ports.redis -}}
{{- $t := omit $spec "password" -}}
{{- $_ := set $t "address" (printf "%s:%d" $host $port) -}}
{{- $_ := set $t "password" (dict "secret" $spec.password) -}}
{{- $redis = append $redis $t -}}
{{- $key := $v.auth.existingSecretPasswordKey | default "redis-password" -}}
{{- $_ := set $ks $v.auth.existingSecret (merge (get $ks $v.auth.existingSecret | default dict) (dict $key $spec.password)) -}}
{{- $p := $alias | upper | replace "-" "_" -}}
{{- $_ := set $conn (printf "%s_HOST" $p) $host -}}
{{- $_ := set $conn (printf "%s_PORT" $p) (toString $port) -}}
{{- $_ := set $conn (printf "%s_SECRET" $p) $v.auth.existingSecret -}}
{{- end -}}
{{- end -}}

{{- $minio := list -}}
{{- range $alias, $spec := $b.minio -}}
{{- if $spec -}}
{{- $v := include "health-platform.infra" (dict "root" $ "alias" $alias "kind" "minio") | fromYaml -}}
{{- $host := printf "%s.%s.svc.%s" $v.fullnameOverride $ns $domain -}}
{{- $port := int $v.service.ports.api -}}
{{- $t := omit $spec "rootUser" "rootPassword" -}}
{{- $_ := set $t "endpoint" (printf "%s:%d" $host $port) -}}
{{- $_ := set $t "accessKey" (dict "secret" $spec.rootUser) -}}
{{- $_ := set $t "secretKey" (dict "secret" $spec.rootPassword) -}}
{{- $minio = append $minio $t -}}
{{- $data := dict $fixed.minio.rootUser $spec.rootUser $fixed.minio.rootPassword $spec.rootPassword -}}
{{- $_ := set $ks $v.auth.existingSecret (merge (get $ks $v.auth.existingSecret | default dict) $data) -}}
{{- $p := $alias | upper | replace "-" "_" -}}
{{- $_ := set $conn (printf "%s_ENDPOINT" $p) (printf "%s:%d" $host $port) -}}
{{- $_ := set $conn (printf "%s_REGION" $p) ($spec.region | default "us-east-1") -}}
{{- $bs := list -}}
{{- range $spec.buckets }}{{ $bs = append $bs .name }}{{ end -}}
{{- $_ := set $conn (printf "%s_BUCKETS" $p) (join "," $bs) -}}
{{- $_ := set $conn (printf "%s_SECRET" $p) $v.auth.existingSecret -}}
{{- end -}}
{{- end -}}

{{- $rabbit := list -}}
{{- range $alias, $spec := $b.rabbitmq -}}
{{- if $spec -}}
{{- $v := include "health-platform.infra" (dict "root" $ "alias" $alias "kind" "rabbitmq") | fromYaml -}}
{{- $host := printf "%s.%s.svc.%s" $v.fullnameOverride $ns $domain -}}
{{- $port := int $v.service.ports.amqp -}}
{{- $mport := int $v.service.ports.manager -}}
{{- $t := omit $spec "password" "erlangCookie" "secretExtraKeys" -}}
{{- $_ := set $t "host" $host -}}
{{- $_ := set $t "port" $port -}}
{{- $_ := set $t "managementPort" $mport -}}
{{- $_ := set $t "user" $v.auth.username -}}
{{- $_ := set $t "password" (dict "secret" $spec.password) -}}
{{- $rabbit = append $rabbit $t -}}
{{- $pw := $v.auth.existingPasswordSecret -}}
{{- $_ := set $ks $pw (merge (get $ks $pw | default dict) (dict $fixed.rabbitmq.password $spec.password) ($spec.secretExtraKeys | default dict)) -}}
{{- if $spec.erlangCookie -}}
{{- $ec := $v.auth.existingErlangSecret | default $pw -}}
{{- $_ := set $ks $ec (merge (get $ks $ec | default dict) (dict $fixed.rabbitmq.erlangCookie $spec.erlangCookie)) -}}
{{- end -}}
{{- $p := $alias | upper | replace "-" "_" -}}
{{- $_ := set $conn (printf "%s_HOST" $p) $host -}}
{{- $_ := set $conn (printf "%s_PORT" $p) (toString $port) -}}
{{- $_ := set $conn (printf "%s_MANAGEMENT_PORT" $p) (toString $mport) -}}
{{- $vh := list -}}
{{- range $spec.vhosts }}{{ $vh = append $vh .name }}{{ end -}}
{{- $_ := set $conn (printf "%s_VHOSTS" $p) (join "," $vh) -}}
{{- $ex := list -}}
{{- range $spec.exchanges }}{{ $ex = append $ex (printf "%s/%s" .vhost .name) }}{{ end -}}
{{- $_ := set $conn (printf "%s_EXCHANGES" $p) (join "," $ex) -}}
{{- $qs := list -}}
{{- range $spec.queues }}{{ $qs = append $qs (printf "%s/%s" .vhost .name) }}{{ end -}}
{{- $_ := set $conn (printf "%s_QUEUES" $p) (join "," $qs) -}}
{{- $_ := set $conn (printf "%s_SECRET" $p) $pw -}}
{{- end -}}
{{- end -}}

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
{{- toYaml (dict "config" $config "secrets" $names "connection" $conn) -}}
{{- end -}}

{{/*
health-platform.bootstrap.pod renders the pod spec every bootstrap workload
shares; .args is the command line after the binary.
*/}}
{{- define "health-platform.bootstrap.pod" -}}
{{- $root := .root -}}
{{- $b := $root.Values.bootstrap -}}
{{- $out := $b.secrets.output -}}
serviceAccountName: {{ include "health-platform.bootstrap.name" $root }}
# The API token only when bootstrap talks to the API server: Secrets go to
# the cluster, or the sealing certificate comes from the controller.
automountServiceAccountToken: {{ or (and (ne $out.type "none") (eq $out.target "cluster")) (and (eq $out.type "sealed") (not $out.sealing.cert)) }}
restartPolicy: Never
enableServiceLinks: false
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
      - name: BOOTSTRAP_CONFIG
        value: /etc/bootstrap/bootstrap.yaml
      {{- with $b.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    resources:
      {{- toYaml $b.resources | nindent 6 }}
    securityContext:
      {{- toYaml $b.containerSecurityContext | nindent 6 }}
    volumeMounts:
      - name: config
        mountPath: /etc/bootstrap/bootstrap.yaml
        subPath: bootstrap.yaml
        readOnly: true
      {{- if include "health-platform.migrations" $root }}
      - name: migrations
        mountPath: /etc/bootstrap/migrations
        readOnly: true
      {{- end }}
      - name: tmp
        mountPath: /tmp
      {{- with $b.extraVolumeMounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
volumes:
  - name: config
    configMap:
      name: {{ include "health-platform.bootstrap.suffixed" (dict "root" $root "suffix" "config") }}
  {{- $m := include "health-platform.migrations" $root | fromYaml }}
  {{- if $m }}
  - name: migrations
    configMap:
      name: {{ include "health-platform.bootstrap.suffixed" (dict "root" $root "suffix" "migrations") }}
      items:
        {{- range $key := keys $m | sortAlpha }}
        - key: {{ $key }}
          path: {{ (get $m $key).path }}
        {{- end }}
  {{- end }}
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
  {{- with $b.extraVolumes }}
  {{- toYaml . | nindent 2 }}
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
helm.sh/hook-delete-policy: before-hook-creation
{{- end -}}
