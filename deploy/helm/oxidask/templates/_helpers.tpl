{{/* The chart's name (nameOverride wins). */}}
{{- define "oxidask.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: "<release>-oxidask", or the release name when it already says
oxidask (fullnameOverride wins). Kept to 50 characters so "-scheduler" still fits in 63. */}}
{{- define "oxidask.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "oxidask.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object; "component" is added per object. */}}
{{- define "oxidask.labels" -}}
app.kubernetes.io/name: {{ include "oxidask.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
helm.sh/chart: {{ include "oxidask.chart" . }}
{{- end -}}

{{- define "oxidask.selectorLabels" -}}
app.kubernetes.io/name: {{ include "oxidask.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}

{{- define "oxidask.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "oxidask.schedulerService" -}}
{{- printf "%s-%s" (include "oxidask.fullname" .) .Values.scheduler.name -}}
{{- end -}}

{{/* What workers connect to: tls:// when TLS is on. */}}
{{- define "oxidask.schedulerAddress" -}}
{{- if .Values.worker.customSchedulerAddress -}}
{{- .Values.worker.customSchedulerAddress -}}
{{- else -}}
{{- printf "%s://%s:%v" (ternary "tls" "tcp" .Values.tls.enabled) (include "oxidask.schedulerService" .) .Values.scheduler.servicePort -}}
{{- end -}}
{{- end -}}

{{- define "oxidask.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "oxidask.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}

{{- define "oxidask.authSecretName" -}}
{{- default (printf "%s-auth" (include "oxidask.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{/* The --tls-* flags, one list item per line (include only when tls.enabled). */}}
{{- define "oxidask.tlsArgs" -}}
- --tls-ca-file
- {{ printf "%s/ca.crt" .Values.tls.mountPath | quote }}
- --tls-cert
- {{ printf "%s/tls.crt" .Values.tls.mountPath | quote }}
- --tls-key
- {{ printf "%s/tls.key" .Values.tls.mountPath | quote }}
{{- if .Values.tls.requireEncryption }}
- --require-encryption
{{- end }}
{{- end -}}

{{/* The auth token variable, from its Secret (include only when auth.enabled). */}}
{{- define "oxidask.authEnv" -}}
- name: OXIDASK_DISTRIBUTED__COMM__AUTH__TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "oxidask.authSecretName" . }}
      key: {{ .Values.auth.secretKey }}
{{- end -}}
