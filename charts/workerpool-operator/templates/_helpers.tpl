{{/* Names, labels and the watch mode, shared by every template. */}}

{{- define "workerpool-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name: the release name when it already contains the chart name, so
`helm install workerpool-operator ...` names everything plainly "workerpool-operator".
*/}}
{{- define "workerpool-operator.fullname" -}}
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

{{- define "workerpool-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "workerpool-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "workerpool-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels on every object; manifests/install carries the same minus Helm's two. */}}
{{- define "workerpool-operator.labels" -}}
{{ include "workerpool-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: itl-controlplane
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "workerpool-operator.chart" . }}
{{- end }}

{{- define "workerpool-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "workerpool-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "workerpool-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "workerpool-operator.workerImage" -}}
{{- printf "%s:%s" .Values.workerImage.repository (default .Chart.AppVersion .Values.workerImage.tag) }}
{{- end }}

{{/*
How the operator watches, which decides the shape of its RBAC:
  cluster    - no watchNamespaces: ClusterRole + ClusterRoleBinding;
  namespaces - plain names: a Role + RoleBinding per namespace, nothing cluster-wide;
  pattern    - a glob among them: ClusterRole (a pattern matches namespaces created later)
               plus the namespace-pattern rules Kopf needs to resolve it.
*/}}
{{- define "workerpool-operator.watchMode" -}}
{{- if not .Values.watchNamespaces }}
{{- "cluster" }}
{{- else if regexMatch "[*?\\[]" (join "," .Values.watchNamespaces) }}
{{- "pattern" }}
{{- else }}
{{- "namespaces" }}
{{- end }}
{{- end }}

{{/* Fail early on combinations that would install a broken operator. */}}
{{- define "workerpool-operator.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.peering.enabled) }}
{{- fail "replicaCount > 1 needs peering.enabled=true: standalone replicas would all be active" }}
{{- end }}
{{- end }}

{{/* NetworkPolicy egress rules: TCP ports with optional peers; DNS on 53 UDP and TCP. */}}
{{- define "workerpool-operator.egressRule" -}}
- ports:
    {{- range .ports }}
    - protocol: TCP
      port: {{ . }}
    {{- end }}
  {{- with .to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- define "workerpool-operator.dnsRule" -}}
- ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
  {{- with .to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
