{{/* Version of the extension: linkerdVersion, or else the chart's appVersion. */}}
{{- define "mc.version" -}}{{ default .Chart.AppVersion .Values.linkerdVersion }}{{- end -}}

{{/* Labels every object of the extension carries; linkerd multicluster uninstall finds
cluster-scoped objects by linkerd.io/extension=multicluster. */}}
{{- define "mc.labels" -}}
linkerd.io/extension: multicluster
app.kubernetes.io/part-of: l5d
app.kubernetes.io/version: {{ include "mc.version" . | quote }}
{{- end -}}

{{/* The created-by annotation. */}}
{{- define "mc.createdBy" -}}
linkerd.io/created-by: linkerd/helm {{ include "mc.version" . }}
{{- end -}}

{{/* Security context of an extension container: pass (list uid gid). */}}
{{- define "mc.securityContext" -}}
securityContext:
  allowPrivilegeEscalation: false
  capabilities: {drop: [ALL]}
  readOnlyRootFilesystem: true
  runAsNonRoot: true
  runAsUser: {{ index . 0 }}
  runAsGroup: {{ index . 1 }}
  seccompProfile: {type: RuntimeDefault}
{{- end -}}
