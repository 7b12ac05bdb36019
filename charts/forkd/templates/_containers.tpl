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
    {{- include "forkd.probe" (list . "startup") | trim | nindent 4 }}
  livenessProbe:
    {{- include "forkd.probe" (list . "liveness") | trim | nindent 4 }}
  readinessProbe:
    {{- include "forkd.probe" (list . "readiness") | trim | nindent 4 }}
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
