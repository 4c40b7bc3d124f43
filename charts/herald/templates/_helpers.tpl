{{/*
Names, labels and the pieces the three components share. The component
templates (ingest.yaml, router.yaml, gateway.yaml) call these with
(dict "root" $ "component" "ingest").
*/}}

{{- define "herald.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name, kept short enough that "<fullname>-gateway-grpc" is a valid Service name. */}}
{{- define "herald.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "herald.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* herald.componentName: "<fullname>-<component>". */}}
{{- define "herald.componentName" -}}
{{- printf "%s-%s" (include "herald.fullname" .root) .component -}}
{{- end -}}

{{- define "herald.labels" -}}
helm.sh/chart: {{ include "herald.chart" . }}
app.kubernetes.io/name: {{ include "herald.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: herald
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "herald.selectorLabels" -}}
app.kubernetes.io/name: {{ include "herald.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "herald.componentLabels" -}}
{{ include "herald.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "herald.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "herald.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* herald.image: the image of a component. */}}
{{- define "herald.image" -}}
{{- $v := index .root.Values .component -}}
{{- $tag := default (default .root.Chart.AppVersion .root.Values.image.tag) $v.image.tag -}}
{{- if .root.Values.image.registry -}}
{{- printf "%s/%s:%s" .root.Values.image.registry $v.image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" $v.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The Secret the chart manages: token keys and database URLs not taken from an existing Secret. */}}
{{- define "herald.secretName" -}}
{{- printf "%s-secrets" (include "herald.fullname" .) -}}
{{- end -}}

{{/* herald.secretData: the chart-managed Secret's data (also hashed into pod annotations). */}}
{{- define "herald.secretData" -}}
{{- if not .Values.tokenKeys.existingSecret }}
token-keys: {{ .Values.tokenKeys.value | b64enc | quote }}
{{- end }}
{{- if not .Values.postgres.existingSecret }}
postgres-url: {{ include "herald.postgresURL" . | b64enc | quote }}
{{- end }}
{{- if not .Values.redis.existingSecret }}
redis-url: {{ include "herald.redisURL" . | b64enc | quote }}
{{- end }}
{{- if .Values.trialPostgres.enabled }}
trial-postgres-password: {{ .Values.trialPostgres.password | b64enc | quote }}
{{- end }}
{{- end -}}

{{- define "herald.postgresURL" -}}
{{- if .Values.trialPostgres.enabled -}}
{{- printf "postgres://herald:%s@%s-trial-postgres:5432/herald?sslmode=disable" (.Values.trialPostgres.password | urlquery | replace "+" "%20") (include "herald.fullname" .) -}}
{{- else -}}
{{- .Values.postgres.url -}}
{{- end -}}
{{- end -}}

{{- define "herald.redisURL" -}}
{{- if .Values.trialRedis.enabled -}}
{{- printf "redis://%s-trial-redis:6379/0" (include "herald.fullname" .) -}}
{{- else -}}
{{- .Values.redis.url -}}
{{- end -}}
{{- end -}}

{{/* herald.secretEnv: an env entry read from a Secret. Call with (dict "env" NAME "secret" S "key" K). */}}
{{- define "herald.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
{{- end -}}

{{- define "herald.tokenKeysEnv" -}}
{{- if .Values.tokenKeys.existingSecret -}}
{{ include "herald.secretEnv" (dict "env" "HERALD_TOKEN_KEYS" "secret" .Values.tokenKeys.existingSecret "key" .Values.tokenKeys.existingSecretKey) }}
{{- else -}}
{{ include "herald.secretEnv" (dict "env" "HERALD_TOKEN_KEYS" "secret" (include "herald.secretName" .) "key" "token-keys") }}
{{- end -}}
{{- end -}}

{{/* herald.postgresEnv: HERALD_POSTGRES_URL. Call with (dict "root" $ "secret" NAME) to read the chart's values from another Secret. */}}
{{- define "herald.postgresEnv" -}}
{{- if .root.Values.postgres.existingSecret -}}
{{ include "herald.secretEnv" (dict "env" "HERALD_POSTGRES_URL" "secret" .root.Values.postgres.existingSecret "key" .root.Values.postgres.existingSecretKey) }}
{{- else -}}
{{ include "herald.secretEnv" (dict "env" "HERALD_POSTGRES_URL" "secret" (default (include "herald.secretName" .root) .secret) "key" "postgres-url") }}
{{- end -}}
{{- end -}}

{{- define "herald.redisEnv" -}}
{{- if .Values.redis.existingSecret -}}
{{ include "herald.secretEnv" (dict "env" "HERALD_REDIS_URL" "secret" .Values.redis.existingSecret "key" .Values.redis.existingSecretKey) }}
{{- else -}}
{{ include "herald.secretEnv" (dict "env" "HERALD_REDIS_URL" "secret" (include "herald.secretName" .) "key" "redis-url") }}
{{- end -}}
{{- end -}}

{{/* herald.publicURL: the base URL of push endpoints. */}}
{{- define "herald.publicURL" -}}
{{- if .Values.publicURL -}}
{{- .Values.publicURL | trimSuffix "/" -}}
{{- else if and .Values.ingest.ingress.enabled .Values.ingest.ingress.hosts -}}
{{- $host := (first .Values.ingest.ingress.hosts).host -}}
{{- printf "%s://%s" (ternary "https" "http" (gt (len .Values.ingest.ingress.tls) 0)) $host -}}
{{- else -}}
{{- printf "%s://%s-ingest.%s.svc.%s:%d" (ternary "https" "http" (not (empty .Values.ingest.tls.secretName))) (include "herald.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.ingest.service.port) -}}
{{- end -}}
{{- end -}}

{{/* herald.duration: seconds as a Go duration. */}}
{{- define "herald.seconds" -}}
{{- printf "%ds" (int .) -}}
{{- end -}}

{{/* herald.scalar: a value as an environment variable's text; whole numbers stay whole (Helm reads them as float64). */}}
{{- define "herald.scalar" -}}
{{- if kindIs "float64" . -}}
{{- if eq (float64 (int64 .)) . -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/* herald.terminationGracePeriod: of a component, given or derived from its drain timeout. */}}
{{- define "herald.terminationGracePeriod" -}}
{{- $v := index .root.Values .component -}}
{{- if kindIs "invalid" $v.terminationGracePeriodSeconds -}}
{{- add (int $v.drain.timeoutSeconds) (ternary 15 10 (eq .component "gateway")) -}}
{{- else -}}
{{- int $v.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{/* herald.minReadySeconds: of a component; the gateway's defaults to its drain's length, so that rollouts drain one gateway at a time. */}}
{{- define "herald.minReadySeconds" -}}
{{- $v := index .root.Values .component -}}
{{- if not (kindIs "invalid" $v.minReadySeconds) -}}
{{- int $v.minReadySeconds -}}
{{- else if eq .component "gateway" -}}
{{- add (int $v.drain.delaySeconds) (int $v.drain.windowSeconds) 5 -}}
{{- else -}}
0
{{- end -}}
{{- end -}}

{{/*
herald.ports: the container ports of a component, as name:port pairs.
They are fixed: the Services map their own ports onto these names.
*/}}
{{- define "herald.ports" -}}
{{- if eq . "ingest" -}}
http: 8000
admin: 8001
{{- else if eq . "router" -}}
grpc: 8090
admin: 8091
{{- else if eq . "gateway" -}}
websocket: 8080
grpc: 8082
admin: 8081
{{- end -}}
{{- end -}}

{{/* herald.topologySpread: the component's constraints, each given this component's pods as labelSelector when it has none. */}}
{{- define "herald.topologySpread" -}}
{{- $v := index .root.Values .component -}}
{{- $out := list -}}
{{- range $v.topologySpreadConstraints -}}
{{- $c := deepCopy . -}}
{{- if not (hasKey $c "labelSelector") -}}
{{- $_ := set $c "labelSelector" (dict "matchLabels" (include "herald.selectorLabels" $ | fromYaml)) -}}
{{- if not (hasKey $c "matchLabelKeys") -}}
{{- $_ := set $c "matchLabelKeys" (list "pod-template-hash") -}}
{{- end -}}
{{- end -}}
{{- $out = append $out $c -}}
{{- end -}}
{{- if $out -}}
{{ toYaml $out }}
{{- end -}}
{{- end -}}

{{/* herald.httpProbe: a probe on the admin port, with the timings of values. */}}
{{- define "herald.httpProbe" -}}
httpGet:
  path: {{ .path }}
  port: admin
{{- range $k, $val := .timings }}
{{ $k }}: {{ int $val }}
{{- end }}
{{- end -}}

{{/*
herald.validate: what the schema cannot say. Every template includes it once
through NOTES and the ConfigMap, so a bad combination fails the install with a
sentence that names the values to change.
*/}}
{{- define "herald.validate" -}}
{{- $v := .Values -}}
{{- if and (not $v.tokenKeys.value) (not $v.tokenKeys.existingSecret) -}}
{{- fail "\nherald: set tokenKeys.value (generate a key with `heraldctl token-key`) or tokenKeys.existingSecret: ingest and gateway need the same token keys" -}}
{{- end -}}
{{- if and $v.tokenKeys.value $v.tokenKeys.existingSecret -}}
{{- fail "\nherald: set only one of tokenKeys.value and tokenKeys.existingSecret" -}}
{{- end -}}
{{- if $v.trialPostgres.enabled -}}
{{- if or $v.postgres.url $v.postgres.existingSecret -}}
{{- fail "\nherald: trialPostgres.enabled is set together with postgres.url or postgres.existingSecret: choose one Postgres" -}}
{{- end -}}
{{- else if and (not $v.postgres.url) (not $v.postgres.existingSecret) -}}
{{- fail "\nherald: set postgres.url or postgres.existingSecret (or, for a trial only, trialPostgres.enabled=true)" -}}
{{- else if and $v.postgres.url $v.postgres.existingSecret -}}
{{- fail "\nherald: set only one of postgres.url and postgres.existingSecret" -}}
{{- end -}}
{{- if $v.trialRedis.enabled -}}
{{- if or $v.redis.url $v.redis.existingSecret -}}
{{- fail "\nherald: trialRedis.enabled is set together with redis.url or redis.existingSecret: choose one Redis" -}}
{{- end -}}
{{- if $v.redis.cluster -}}
{{- fail "\nherald: trialRedis is a single server; set redis.cluster=false with it" -}}
{{- end -}}
{{- else if and (not $v.redis.url) (not $v.redis.existingSecret) -}}
{{- fail "\nherald: set redis.url or redis.existingSecret (or, for a trial only, trialRedis.enabled=true)" -}}
{{- else if and $v.redis.url $v.redis.existingSecret -}}
{{- fail "\nherald: set only one of redis.url and redis.existingSecret" -}}
{{- end -}}
{{- $own := list "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/version" "app.kubernetes.io/managed-by" "app.kubernetes.io/part-of" "app.kubernetes.io/component" "helm.sh/chart" -}}
{{- range $k, $_ := $v.commonLabels -}}
{{- if has $k $own -}}
{{- fail (printf "\nherald: commonLabels sets %s, which the chart sets itself" $k) -}}
{{- end -}}
{{- end -}}
{{- range $c := list "ingest" "router" "gateway" -}}
{{- $cv := index $v $c -}}
{{- range $k, $_ := $cv.podLabels -}}
{{- if has $k $own -}}
{{- fail (printf "\nherald: %s.podLabels sets %s, which the chart sets itself" $c $k) -}}
{{- end -}}
{{- end -}}
{{- $drain := $cv.drain -}}
{{- $window := 0 -}}
{{- if hasKey $drain "windowSeconds" -}}{{- $window = int $drain.windowSeconds -}}{{- end -}}
{{- if le (int $drain.timeoutSeconds) (add (int $drain.delaySeconds) $window) -}}
{{- fail (printf "\nherald: %s.drain.timeoutSeconds (%d) must exceed drain.delaySeconds + drain.windowSeconds (%d), or the drain is cut short" $c (int $drain.timeoutSeconds) (add (int $drain.delaySeconds) $window)) -}}
{{- end -}}
{{- $grace := include "herald.terminationGracePeriod" (dict "root" $ "component" $c) | int -}}
{{- if le $grace (int $drain.timeoutSeconds) -}}
{{- fail (printf "\nherald: %s.terminationGracePeriodSeconds (%d) must exceed %s.drain.timeoutSeconds (%d), or Kubernetes kills the pod mid-drain" $c $grace $c (int $drain.timeoutSeconds)) -}}
{{- end -}}
{{- $pdb := $cv.podDisruptionBudget -}}
{{- if and $pdb.enabled (not (kindIs "invalid" $pdb.minAvailable)) (not (kindIs "invalid" $pdb.maxUnavailable)) -}}
{{- fail (printf "\nherald: set only one of %s.podDisruptionBudget.minAvailable and maxUnavailable (set the other to null)" $c) -}}
{{- end -}}
{{- if and $cv.autoscaling.enabled (gt (int $cv.autoscaling.minReplicas) (int $cv.autoscaling.maxReplicas)) -}}
{{- fail (printf "\nherald: %s.autoscaling.minReplicas is above maxReplicas" $c) -}}
{{- end -}}
{{- end -}}
{{- end -}}
