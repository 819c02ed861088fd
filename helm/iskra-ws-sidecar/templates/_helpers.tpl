{{/*
Helpers of the iskra-ws-sidecar chart.
*/}}

{{/* Chart name, overridable. */}}
{{- define "iskra.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<chart>, or the release name alone when it already contains the chart name. */}}
{{- define "iskra.fullname" -}}
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

{{/* The namespace of every object: .Values.namespace, else the release namespace. */}}
{{- define "iskra.namespace" -}}
{{- default .Release.Namespace .Values.namespace -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "iskra.labels" -}}
app.kubernetes.io/name: {{ include "iskra.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "iskra.metaLabels" . }}
{{- end -}}

{{/* The labels besides name and instance (pod templates add them to their selector labels). */}}
{{- define "iskra.metaLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: iskra-ecosystem
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one dashboard's pods; call with (dict "root" $ "key" "pulse"). */}}
{{- define "iskra.dashboardSelector" -}}
app.kubernetes.io/name: {{ include "iskra.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
iskra.io/dashboard: {{ .key }}
{{- end -}}

{{/* Object name of one dashboard's Deployment, ConfigMap and PDB. */}}
{{- define "iskra.dashboardName" -}}
{{- printf "%s-%s" (include "iskra.fullname" .root) .key -}}
{{- end -}}

{{/* Service name of one dashboard. */}}
{{- define "iskra.serviceName" -}}
{{- default (include "iskra.dashboardName" .) .dash.serviceName -}}
{{- end -}}

{{/* repository:tag or repository@digest; call with (dict "image" .image "default" <image> "appVersion" <v>). */}}
{{- define "iskra.image" -}}
{{- $repo := default .default.repository .image.repository -}}
{{- $tag := default (default .appVersion .default.tag) .image.tag -}}
{{- $digest := .image.digest -}}
{{- if $digest -}}
{{- printf "%s@%s" $repo $digest -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{/* The sidecar's image. */}}
{{- define "iskra.sidecarImage" -}}
{{- include "iskra.image" (dict "image" .Values.image "default" .Values.image "appVersion" .Chart.AppVersion) -}}
{{- end -}}

{{/* ServiceAccount of the dashboard pods. */}}
{{- define "iskra.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "iskra.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Collector object names and labels. */}}
{{- define "iskra.collectorName" -}}
{{- printf "%s-collector" (include "iskra.fullname" .) -}}
{{- end -}}

{{- define "iskra.collectorSelector" -}}
app.kubernetes.io/name: {{ include "iskra.name" . }}-collector
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: collector
{{- end -}}

{{/* OTLP endpoint of the sidecars: otel.endpoint, else the chart's collector, else "". */}}
{{- define "iskra.otlpEndpoint" -}}
{{- if .Values.otel.endpoint -}}
{{- .Values.otel.endpoint -}}
{{- else if .Values.collector.enabled -}}
{{- $port := ternary 4317 4318 (eq .Values.otel.protocol "grpc") -}}
{{- printf "http://%s.%s.svc:%v" (include "iskra.collectorName" .) (include "iskra.namespace" .) $port -}}
{{- end -}}
{{- end -}}

{{/*
The hardened container security context of the sidecar (not a value: the sidecar needs nothing more).
*/}}
{{- define "iskra.sidecarSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
The sidecar's config file for one dashboard; call with (dict "root" $ "key" "pulse" "dash" $dash).
The values' sidecar.config plus what follows from the dashboard and the ports.
*/}}
{{- define "iskra.sidecarConfig" -}}
{{- $root := .root -}}
{{- $dash := .dash -}}
{{- $upstream := printf "ws://127.0.0.1:%v" $dash.port -}}
{{- $conn := dict "url" $upstream "name" $dash.displayName "priority" $dash.priority "backup_urls" ($dash.backupUrls | default list) -}}
{{- $ws := deepCopy $root.Values.sidecar.config.websocket -}}
{{- $_ := set $ws "connections" (dict .key $conn) -}}
{{- $telemetry := deepCopy $root.Values.sidecar.config.telemetry -}}
{{- $probe := deepCopy $root.Values.sidecar.config.probe -}}
{{- with $root.Values.sidecar.probeHeaders -}}
{{- if .existingSecret -}}
{{- $files := dict -}}
{{- range $header, $key := .headers -}}
{{- $_ := set $files $header (printf "%s/%s" (trimSuffix "/" $root.Values.sidecar.probeHeaders.mountPath) $key) -}}
{{- end -}}
{{- $_ := set $probe "header_files" $files -}}
{{- end -}}
{{- end -}}
{{- $_ := set $telemetry "spool_dir" $root.Values.sidecar.spool.mountPath -}}
{{- $cfg := dict
    "dashboard" .key
    "listen" (printf "0.0.0.0:%v" $root.Values.sidecar.ports.proxy)
    "admin" (printf "0.0.0.0:%v" $root.Values.sidecar.ports.admin)
    "upstream" $upstream
    "backup_upstreams" ($dash.backupUrls | default list)
    "limits" $root.Values.sidecar.config.limits
    "shutdown" $root.Values.sidecar.config.shutdown
    "resume" $root.Values.sidecar.config.resume
    "forwarded" $root.Values.sidecar.config.forwarded
    "telemetry" $telemetry
    "probe" $probe
    "health" $root.Values.sidecar.config.health
    "iskra" $root.Values.sidecar.config.iskra
    "websocket" $ws -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/*
OTEL_RESOURCE_ATTRIBUTES of a sidecar: the pod's uid and IP (from $(POD_UID) / $(POD_IP), expanded by the
kubelet), the container and Deployment, then otel.resourceAttributes (sorted; never service.name).
*/}}
{{- define "iskra.resourceAttributes" -}}
{{- $attrs := list "k8s.pod.uid=$(POD_UID)" "k8s.pod.ip=$(POD_IP)" "k8s.container.name=sidecar" (printf "k8s.deployment.name=%s" .name) -}}
{{- range $k, $v := .root.Values.otel.resourceAttributes -}}
{{- $attrs = append $attrs (printf "%s=%v" $k $v) -}}
{{- end -}}
{{- join "," $attrs -}}
{{- end -}}
