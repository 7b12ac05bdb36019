{{/* Names and labels. */}}
{{- define "forkd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "forkd.fullname" -}}
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

{{- define "forkd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "forkd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "forkd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "forkd.labels" -}}
helm.sh/chart: {{ include "forkd.chart" . }}
{{ include "forkd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "forkd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "forkd.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "forkd.adminTokenSecret" -}}
{{- default (printf "%s-admin-token" (include "forkd.fullname" .)) .Values.adminToken.existingSecret }}
{{- end }}

{{- define "forkd.image" -}}
{{- printf "%s:%s" .Values.forkd.image.repository (default .Chart.AppVersion .Values.forkd.image.tag) }}
{{- end }}

{{- define "forkd.appImage" -}}
{{- $repo := default .Values.forkd.image.repository .Values.app.image.repository }}
{{- $tag := default (default .Chart.AppVersion .Values.forkd.image.tag) .Values.app.image.tag }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}

{{/*
Shutdown timings, in whole seconds (Kubernetes takes integers).
forkd.stopSeconds: forkd's own sequence, shutdown delay + graceful timeout;
in app mode then the app processes' TERM, up to another graceful timeout
before KILL.
forkd.appPreStopSeconds: how long the app's preStop holds it (0: no hook;
always 0 in app mode, where forkd itself gets TERM and keeps serving).
forkd.gracePeriod: terminationGracePeriodSeconds. In the two-container form
both containers get TERM together, so the longer of the two plus the margin;
in the native sidecar form the app stops first and forkd gets TERM only
after it, so the sum.
*/}}
{{- define "forkd.stopSeconds" -}}
{{- if eq .Values.mode "app" }}
{{- addf .Values.forkd.shutdownDelay .Values.forkd.gracefulTimeout .Values.forkd.gracefulTimeout | ceil | int64 }}
{{- else }}
{{- addf .Values.forkd.shutdownDelay .Values.forkd.gracefulTimeout | ceil | int64 }}
{{- end }}
{{- end }}

{{- define "forkd.appPreStopSeconds" -}}
{{- if or (eq .Values.app.preStop.type "none") (eq .Values.mode "app") }}0
{{- else if kindIs "float64" .Values.app.preStop.seconds }}
{{- .Values.app.preStop.seconds | ceil | int64 }}
{{- else }}
{{- include "forkd.stopSeconds" . }}
{{- end }}
{{- end }}

{{- define "forkd.gracePeriod" -}}
{{- $stop := include "forkd.stopSeconds" . | int64 }}
{{- $app := include "forkd.appPreStopSeconds" . | int64 }}
{{- $margin := .Values.terminationGracePeriodMarginSeconds | int64 }}
{{- if .Values.forkd.nativeSidecar }}
{{- add $app $stop $margin }}
{{- else }}
{{- add (max $app $stop) $margin }}
{{- end }}
{{- end }}

{{/* forkd's command line: every setting the chart controls, as --name=value
(in app mode the app command follows, after --: forkd.appModeArgs). */}}
{{- define "forkd.args" -}}
{{- $f := .Values.forkd -}}
- --bind=0.0.0.0:{{ .Values.ports.http | int64 }}
{{- if ne .Values.mode "app" }}
- --upstream=unix:{{ .Values.socket.path }}
{{- end }}
- --admin-bind=0.0.0.0:{{ .Values.ports.admin | int64 }}
- --metrics-bind=0.0.0.0:{{ .Values.ports.metrics | int64 }}
- --workers={{ $f.workers }}
{{- if and (eq .Values.mode "app") (not (kindIs "invalid" $f.proxyWorkers)) }}
- --proxy-workers={{ $f.proxyWorkers | int64 }}
{{- end }}
- --max-workers={{ $f.maxWorkers | int64 }}
- --worker-class={{ $f.workerClass }}
- --threads={{ $f.threads | int64 }}
- --worker-connections={{ $f.workerConnections | int64 }}
- --timeout={{ $f.timeout }}
- --graceful-timeout={{ $f.gracefulTimeout }}
- --shutdown-delay={{ $f.shutdownDelay }}
- --keepalive={{ $f.keepalive }}
- --upstream-timeout={{ $f.upstreamTimeout }}
{{- $at := $f.autotune | default dict }}
{{- $atMode := $at.mode | default "off" | toString }}
{{- if and (eq $atMode "full") (ne .Values.mode "app") }}
{{- fail "forkd.autotune.mode full needs mode: app (forkd sizes only the app processes it runs)" }}
{{- end }}
{{- if or (eq .Values.mode "app") (ne $atMode "off") }}
- --max-queue-time={{ $f.maxQueueTime }}
{{- end }}
{{- if ne $atMode "off" }}
- --autotune={{ $atMode }}
{{- if $at.latencyTarget }}
- --latency-target={{ $at.latencyTarget }}
{{- end }}
{{- if $at.bounds }}
- --autotune-bounds={{ $at.bounds }}
{{- end }}
{{- end }}
- --client-header-timeout={{ $f.clientHeaderTimeout }}
- --client-body-timeout={{ $f.clientBodyTimeout }}
- --max-requests={{ $f.maxRequests | int64 }}
- --max-requests-jitter={{ $f.maxRequestsJitter | int64 }}
- --backlog={{ $f.backlog | int64 }}
- --limit-request-line={{ $f.limits.requestLine | int64 }}
- --limit-request-fields={{ $f.limits.requestFields | int64 }}
- --limit-request-field-size={{ $f.limits.requestFieldSize | int64 }}
- --limit-request-body={{ $f.limits.requestBody }}
{{- if $f.appHealthPath }}
- --app-health-path={{ $f.appHealthPath }}
{{- end }}
{{- if $f.forwardedAllowIps }}
- --forwarded-allow-ips={{ $f.forwardedAllowIps }}
{{- end }}
- --header-map={{ $f.headerMap }}
{{- if $f.proxyProtocol }}
- --proxy-protocol
- --proxy-allow-ips={{ $f.proxyAllowIps }}
{{- end }}
{{- if $f.accessLog }}
- --access-logfile=-
{{- end }}
{{- if $f.accessLogFormat }}
- --access-logformat={{ $f.accessLogFormat }}
{{- end }}
- --log-level={{ $f.logLevel }}
{{- if .Values.adminToken.enabled }}
- --admin-token-file={{ .Values.adminToken.mountPath }}/token
{{- end }}
{{- with .Values.tls }}
{{- if .enabled }}
- --certfile={{ .mountPath }}/tls.crt
- --keyfile={{ .mountPath }}/tls.key
{{- if .clientCA.enabled }}
- --ca-certs={{ .mountPath }}/ca.crt
{{- end }}
{{- if .minVersion }}
- --ssl-min-version={{ .minVersion }}
{{- end }}
{{- if .ciphers }}
- --ciphers={{ .ciphers }}
{{- end }}
{{- end }}
{{- end }}
{{- range $f.extraArgs }}
- {{ . }}
{{- end }}
{{- end }}

{{/*
The three kubelet probes, http or grpc, on the ports forkd binds.
In the native sidecar form the app container starts only once forkd's
startup probe passes, so that probe cannot wait for the app (/startupz
does): it asks whether forkd's master is up (/livez, gRPC "liveness").
*/}}
{{- define "forkd.probe" -}}
{{- $root := index . 0 }}
{{- $which := index . 1 }}
{{- $cfg := index $root.Values.probes $which }}
{{- $check := $which }}
{{- if and (eq $which "startup") $root.Values.forkd.nativeSidecar }}
{{- $check = "liveness" }}
{{- end }}
{{- if eq $root.Values.probes.type "grpc" }}
grpc:
  port: {{ $root.Values.ports.admin | int64 }}
  service: {{ get (dict "liveness" "liveness" "readiness" "" "startup" "startup") $check | quote }}
{{- else }}
httpGet:
  path: {{ get (dict "liveness" "/livez" "readiness" "/readyz" "startup" "/startupz") $check }}
  port: metrics
{{- end }}
{{- range $k := list "periodSeconds" "timeoutSeconds" "failureThreshold" "successThreshold" }}
{{- if hasKey $cfg $k }}
{{ $k }}: {{ index $cfg $k | int64 }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Service port: 80, or 443 when it serves TLS, unless service.port says. */}}
{{- define "forkd.servicePort" -}}
{{- if kindIs "invalid" .Values.service.port }}
{{- ternary 443 80 .Values.tls.enabled }}
{{- else }}
{{- .Values.service.port | int64 }}
{{- end }}
{{- end }}

{{/* App mode: forkd's flags, --, then the app's command and args. */}}
{{- define "forkd.appModeArgs" -}}
{{ include "forkd.args" . }}
- "--"
{{- range concat .Values.app.command (default list .Values.app.args) }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/* The bundle's forkd binary in the app container (app mode). */}}
{{- define "forkd.bundleForkd" -}}
{{- printf "%s/bin/forkd" (clean .Values.forkd.bundle.mountPath) }}
{{- end }}
