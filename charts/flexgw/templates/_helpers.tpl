{{- define "flexgw.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "flexgw.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "flexgw.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flexgw.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "flexgw.labels" -}}
{{ include "flexgw.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "flexgw.watchNamespace" -}}
{{- .Values.watch.namespace -}}
{{- end -}}

{{/*
The Secret holding the admin API's bearer token. The pod binds the admin API
to 0.0.0.0 (probes, scrapes), and flexgw refuses a non-loopback admin address
without a token, so when admin.tokenSecret is empty the chart makes one.
*/}}
{{- define "flexgw.adminTokenSecret" -}}
{{- .Values.admin.tokenSecret | default (printf "%s-admin-token" (include "flexgw.fullname" .)) -}}
{{- end -}}
