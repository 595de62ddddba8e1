{{/* The release's full name, at most 63 characters. */}}
{{- define "rolecall.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "rolecall.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "rolecall.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rolecall.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "rolecall.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Exactly what the controller does with each kind, and nothing more. */}}
{{- define "rolecall.rules" -}}
- apiGroups: ["rolecall.dev"]
  resources: ["customeraccounts"]
  # watch; add and remove the finalizer; get: a WHMCS account's invitation record is read
  # fresh from its status once per leadership term
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["rolecall.dev"]
  resources: ["accountmembers", "notificationcontacts", "portals"]
  verbs: ["list", "watch"]
- apiGroups: ["rolecall.dev"]
  resources:
    - customeraccounts/status
    - accountmembers/status
    - notificationcontacts/status
    - portals/status
  # status by server-side apply
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["secrets"]
  # only the Secrets that Portals name, read one by one (no list, no watch)
  verbs: ["get"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
