{{/* Chart name, truncated to the 63 characters DNS labels allow. */}}
{{- define "contentstream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-chart unless the release name already contains it. */}}
{{- define "contentstream.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "contentstream.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "contentstream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "contentstream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "contentstream.labels" -}}
helm.sh/chart: {{ include "contentstream.chart" . }}
{{ include "contentstream.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: worker
{{- end }}

{{- define "contentstream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "contentstream.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "contentstream.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The worker's HTTP port (metrics, health). */}}
{{- define "contentstream.webPort" -}}
{{- .Values.config.CONTENTSTREAM_WEB_PORT | default 6066 | int }}
{{- end }}

{{/* Shutdown deadline of the worker, whole seconds rounded up. */}}
{{- define "contentstream.shutdownTimeoutSeconds" -}}
{{- .Values.config.CONTENTSTREAM_SHUTDOWN_TIMEOUT_S | default 25 | float64 | ceil | int }}
{{- end }}

{{/* terminationGracePeriodSeconds: strictly after the worker's own deadline. */}}
{{- define "contentstream.terminationGracePeriodSeconds" -}}
{{- add (include "contentstream.shutdownTimeoutSeconds" . | int) (max 1 (.Values.terminationGraceExtraSeconds | int)) }}
{{- end }}

{{- define "contentstream.saslEnabled" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}true{{- end }}
{{- end }}

{{- define "contentstream.tlsEnabled" -}}
{{- if has .Values.kafka.securityProtocol (list "SSL" "SASL_SSL") }}true{{- end }}
{{- end }}

{{/* Where Secret-provided files are mounted in the container. */}}
{{- define "contentstream.kafkaTlsDir" -}}/etc/contentstream/kafka-tls{{- end }}
{{- define "contentstream.redisTlsDir" -}}/etc/contentstream/redis-tls{{- end }}

{{- define "contentstream.gpuEnabled" -}}
{{- if gt (.Values.gpu.count | default 0 | int) 0 }}true{{- end }}
{{- end }}

{{/* The container's resources: .Values.resources plus the GPUs of .Values.gpu. */}}
{{- define "contentstream.resources" -}}
{{- $resources := deepCopy (.Values.resources | default dict) }}
{{- if include "contentstream.gpuEnabled" . }}
{{- range $kind := list "requests" "limits" }}
{{- $list := get $resources $kind | default dict }}
{{- $_ := set $list $.Values.gpu.resourceName ($.Values.gpu.count | int) }}
{{- $_ := set $resources $kind $list }}
{{- end }}
{{- end }}
{{- toYaml $resources }}
{{- end }}

{{/* An emptyDir's spec from {sizeLimit, medium}. */}}
{{- define "contentstream.emptyDir" -}}
{{- $spec := dict }}
{{- with .medium }}{{ $_ := set $spec "medium" . }}{{ end }}
{{- with .sizeLimit }}{{ $_ := set $spec "sizeLimit" (toString .) }}{{ end }}
{{- toYaml $spec }}
{{- end }}

{{/* The distinct ports of kafka.bootstrapServers, as a YAML list of integers. */}}
{{- define "contentstream.kafkaPorts" -}}
{{- $ports := list }}
{{- range splitList "," .Values.kafka.bootstrapServers }}
{{- $ports = append $ports (regexFind "[0-9]+$" (trim .) | int) }}
{{- end }}
{{- toYaml (uniq $ports) }}
{{- end }}

{{/* The port of redis.url (6379 when it names none). */}}
{{- define "contentstream.redisPort" -}}
{{- $host := (urlParse .Values.redis.url).host }}
{{- $port := regexFind ":[0-9]+$" $host | trimPrefix ":" }}
{{- $port | default "6379" }}
{{- end }}

{{/* Fails the render on combinations the schema cannot express. */}}
{{- define "contentstream.validate" -}}
{{- if include "contentstream.saslEnabled" . }}
{{- if not .Values.kafka.sasl.mechanism }}
{{- fail (printf "kafka.sasl.mechanism is required when kafka.securityProtocol is %s" .Values.kafka.securityProtocol) }}
{{- end }}
{{- if not .Values.kafka.sasl.passwordSecret.name }}
{{- fail "kafka.sasl.passwordSecret.name (an existing Secret) is required for SASL_* protocols" }}
{{- end }}
{{- if and (not .Values.kafka.sasl.username) (not .Values.kafka.sasl.usernameSecret.name) }}
{{- fail "kafka.sasl.username or kafka.sasl.usernameSecret.name is required for SASL_* protocols" }}
{{- end }}
{{- end }}
{{- if and (not (include "contentstream.tlsEnabled" .)) (or .Values.kafka.tls.caSecret.name .Values.kafka.tls.clientCertSecret.name) }}
{{- fail (printf "kafka.tls secrets are set but kafka.securityProtocol is %s: use SSL or SASL_SSL" .Values.kafka.securityProtocol) }}
{{- end }}
{{- if regexMatch "^rediss?://[^/@]*:[^/@]*@" .Values.redis.url }}
{{- fail "redis.url contains a password: put it in a Secret and set redis.passwordSecret" }}
{{- end }}
{{- if and .Values.redis.tls.caSecret.name (not (hasPrefix "rediss://" .Values.redis.url)) }}
{{- fail "redis.tls.caSecret is set but redis.url is not a rediss:// URL" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (.Values.autoscaling.minReplicas | int) (.Values.autoscaling.maxReplicas | int)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- if and .Values.autoscaling.enabled .Values.autoscaling.keda.enabled (include "contentstream.saslEnabled" .) (not .Values.kafka.sasl.usernameSecret.name) }}
{{- fail "KEDA's TriggerAuthentication reads credentials from Secrets only: set kafka.sasl.usernameSecret" }}
{{- end }}
{{- if and (not .Values.autoscaling.keda.enabled) .Values.autoscaling.enabled (eq (.Values.autoscaling.minReplicas | int) 0) }}
{{- fail "autoscaling.minReplicas 0 needs KEDA (autoscaling.keda.enabled); a HorizontalPodAutoscaler needs at least 1" }}
{{- end }}
{{- $limits := (.Values.resources | default dict).limits | default dict }}
{{- if and (hasKey $limits "cpu") (eq (.Values.config.CONTENTSTREAM_POOL_PROCESSES | default 0 | int) 0) }}
{{- fail "resources.limits.cpu is set but config.CONTENTSTREAM_POOL_PROCESSES is 0, which starts one analyzer process per CPU of the node, not of the limit: set it to at most the limit" }}
{{- end }}
{{- if and (include "contentstream.gpuEnabled" .) (hasPrefix "cpu" (toString (.Values.config.CONTENTSTREAM_MODEL_DEVICE | default "cuda"))) }}
{{- fail "gpu.count asks for GPUs but config.CONTENTSTREAM_MODEL_DEVICE is cpu: leave it unset (cuda) or name a cuda device" }}
{{- end }}
{{- end }}

{{/* An environment value as a string; whole numbers without an exponent (1048576, not 1.048576e+06). */}}
{{- define "contentstream.envValue" -}}
{{- if and (kindIs "float64" .) (eq . (float64 (int64 .))) }}
{{- int64 . | toString }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}
