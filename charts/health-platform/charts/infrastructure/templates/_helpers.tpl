{{/*
infrastructure.services lists the aliases of the six Bitnami dependencies, in
Chart.yaml order.
*/}}
{{- define "infrastructure.services" -}}
postgresql-health postgresql-auth redis-health redis-auth minio rabbitmq
{{- end -}}

{{/*
infrastructure.check fails the render when an override breaks what the
umbrella's bootstrap and the application charts rely on: the Service name, an
existing Secret for credentials, a storage class, and bitnamilegacy images.
*/}}
{{- define "infrastructure.check" -}}
{{- range $alias := splitList " " (include "infrastructure.services" .) }}
{{- $v := index $.Values $alias }}
{{- if $v.enabled }}
{{- if ne $v.fullnameOverride (printf "infrastructure-%s" $alias) }}
{{- fail (printf "%s.fullnameOverride must be infrastructure-%s (application charts and the bootstrap config use that Service name), got %q" $alias $alias $v.fullnameOverride) }}
{{- end }}
{{- $secret := $v.auth.existingSecret | default $v.auth.existingPasswordSecret }}
{{- if not $secret }}
{{- fail (printf "%s.auth: credentials must come from an existing Secret written by bootstrap; set its name" $alias) }}
{{- end }}
{{- if not (hasPrefix "bitnamilegacy/" $v.image.repository) }}
{{- fail (printf "%s.image.repository: Bitnami's versioned images live under docker.io/bitnamilegacy now; got %q" $alias $v.image.repository) }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}
