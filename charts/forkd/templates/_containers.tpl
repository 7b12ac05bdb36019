{{/* The forkd container: an entry of containers, or of initContainers with
restartPolicy: Always in the native sidecar form. */}}
{{- define "forkd.forkdContainer" -}}
- name: forkd
  image: {{ include "forkd.image" . | quote }}
  imagePullPolicy: {{ .Values.forkd.image.pullPolicy }}
  {{- if .Values.forkd.nativeSidecar }}
  restartPolicy: Always
  {{- end }}
  command: ["forkd"]
  args:
    {{- include "forkd.args" . | nindent 4 }}
  {{- with .Values.forkd.env }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- include "forkd.portsAndProbes" . | nindent 2 }}
  {{- with .Values.forkd.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: app-socket
      mountPath: {{ dir .Values.socket.path }}
    - name: forkd-tmp
      mountPath: /tmp
    {{- if .Values.adminToken.enabled }}
    - name: admin-token
      mountPath: {{ .Values.adminToken.mountPath }}
      readOnly: true
    {{- end }}
    {{- if .Values.tls.enabled }}
    - name: tls
      mountPath: {{ .Values.tls.mountPath }}
      readOnly: true
    {{- end }}
    {{- with .Values.forkd.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}


{{/* forkd's ports and its three kubelet probes: on the forkd container in
sidecar mode, on the app container in app mode. */}}
{{- define "forkd.portsAndProbes" -}}
ports:
  - name: http
    containerPort: {{ .Values.ports.http | int64 }}
    protocol: TCP
  - name: admin
    containerPort: {{ .Values.ports.admin | int64 }}
    protocol: TCP
  - name: metrics
    containerPort: {{ .Values.ports.metrics | int64 }}
    protocol: TCP
startupProbe:
  {{- include "forkd.probe" (list . "startup") | trim | nindent 2 }}
livenessProbe:
  {{- include "forkd.probe" (list . "liveness") | trim | nindent 2 }}
readinessProbe:
  {{- include "forkd.probe" (list . "readiness") | trim | nindent 2 }}
{{- end }}

{{/* App mode, the init container: copies the bundle from the forkd image
into the emptyDir the app container runs forkd from. cp -R, not -a: the
files become the pod user's, with their modes. */}}
{{- define "forkd.bundleInitContainer" -}}
- name: forkd-bundle
  image: {{ include "forkd.image" . | quote }}
  imagePullPolicy: {{ .Values.forkd.image.pullPolicy }}
  command: ["cp", "-R", "/opt/forkd/bundle/.", {{ printf "%s/" (clean .Values.forkd.bundle.mountPath) | quote }}]
  {{- with .Values.forkd.bundle.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: forkd-bundle
      mountPath: {{ clean .Values.forkd.bundle.mountPath }}
{{- end }}

{{/* App mode, the app container: the user's image running forkd from the
bundle, the app command after --; forkd's ports, probes and mounts. */}}
{{- define "forkd.appModeContainer" -}}
- name: {{ .Values.app.name }}
  image: {{ include "forkd.appImage" . | quote }}
  imagePullPolicy: {{ .Values.app.image.pullPolicy }}
  command: [{{ include "forkd.bundleForkd" . | quote }}]
  args:
    {{- include "forkd.appModeArgs" . | nindent 4 }}
  env:
    # The app's command and args name its socket as $(APP_SOCKET), in
    # both modes: here forkd's placeholder, one socket per app process.
    - name: APP_SOCKET
      value: "{socket}"
    {{- with .Values.forkd.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with .Values.app.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.app.envFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- include "forkd.portsAndProbes" . | nindent 2 }}
  {{- with .Values.app.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml (merge (deepCopy .Values.app.securityContext) .Values.securityContext) | nindent 4 }}
  volumeMounts:
    - name: forkd-bundle
      mountPath: {{ clean .Values.forkd.bundle.mountPath }}
      readOnly: true
    # forkd's private folder of app sockets and the app's temp files.
    - name: app-tmp
      mountPath: /tmp
    {{- if .Values.adminToken.enabled }}
    - name: admin-token
      mountPath: {{ .Values.adminToken.mountPath }}
      readOnly: true
    {{- end }}
    {{- if .Values.tls.enabled }}
    - name: tls
      mountPath: {{ .Values.tls.mountPath }}
      readOnly: true
    {{- end }}
    {{- with .Values.app.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with .Values.forkd.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}
