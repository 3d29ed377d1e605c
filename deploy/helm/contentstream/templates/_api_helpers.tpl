{{/* The HTTP API (contentstream api): its own name, so that no selector of the workers
     (Service, PodDisruptionBudget, anti-affinity, NetworkPolicy) picks up its pods. */}}
{{- define "contentstream.api.fullname" -}}
{{- printf "%s-api" (include "contentstream.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "contentstream.api.selectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-api" (include "contentstream.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "contentstream.api.labels" -}}
helm.sh/chart: {{ include "contentstream.chart" . }}
{{ include "contentstream.api.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: api
app.kubernetes.io/part-of: {{ include "contentstream.name" . }}
{{- end }}

{{- define "contentstream.api.keysDir" -}}/etc/contentstream/api-keys{{- end }}

{{- define "contentstream.api.validate" -}}
{{- if .Values.api.enabled }}
{{- if not .Values.api.keysSecret.name }}
{{- fail "api.keysSecret.name (an existing Secret holding the API keys file, hashes only) is required with api.enabled" }}
{{- end }}
{{- if and .Values.api.autoscaling.enabled (gt (.Values.api.autoscaling.minReplicas | int) (.Values.api.autoscaling.maxReplicas | int)) }}
{{- fail "api.autoscaling.minReplicas must not exceed api.autoscaling.maxReplicas" }}
{{- end }}
{{- range $name, $_ := .Values.api.config }}
{{- if has $name (list "CONTENTSTREAM_API_PORT" "CONTENTSTREAM_API_HOST" "CONTENTSTREAM_API_KEYS_FILE") }}
{{- fail (printf "api.config.%s is set by the chart (api.port, api.keysSecret)" $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
