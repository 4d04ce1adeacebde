{{/* Namespace of the extension (the release namespace, linkerd-jaeger). */}}
{{- define "jaeger.ns" -}}{{ .Release.Namespace }}{{- end -}}

{{/* Version of the extension: linkerdVersion, or else the chart's appVersion. */}}
{{- define "jaeger.version" -}}{{ default .Chart.AppVersion .Values.linkerdVersion }}{{- end -}}

{{/* Image reference, as the control-plane chart's l5d.image: pass (list $ .Values.<component>.image). */}}
{{- define "l5d.image" -}}
{{- $ := index . 0 -}}{{- $img := index . 1 -}}
{{ default $.Values.defaultRegistry $img.registry }}/{{ $img.name }}:{{ default (include "jaeger.version" $) $img.tag }}
{{- end -}}

{{/* Labels every object of the extension carries; linkerd jaeger uninstall finds
cluster-scoped objects by linkerd.io/extension=jaeger. */}}
{{- define "jaeger.labels" -}}
linkerd.io/extension: jaeger
app.kubernetes.io/part-of: l5d
app.kubernetes.io/version: {{ include "jaeger.version" . | quote }}
{{- end -}}

{{/* Labels of a component's objects: pass (list $ "component"). */}}
{{- define "jaeger.componentLabels" -}}
{{- $ := index . 0 -}}
{{ include "jaeger.labels" $ }}
component: {{ index . 1 }}
{{- end -}}

{{/* Annotations and labels of a component's pods: pass (list $ "component" extraAnnotations). */}}
{{- define "jaeger.podMeta" -}}
{{- $ := index . 0 -}}
annotations:
  linkerd.io/created-by: linkerd/helm {{ include "jaeger.version" $ }}
  config.linkerd.io/proxy-await: enabled
  {{- with index . 2 }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with $.Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
labels:
  linkerd.io/extension: jaeger
  component: {{ index . 1 }}
  {{- with $.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* Security context of an extension container: pass (list uid gid). */}}
{{- define "jaeger.securityContext" -}}
securityContext:
  allowPrivilegeEscalation: false
  capabilities: {drop: [ALL]}
  readOnlyRootFilesystem: true
  runAsNonRoot: true
  runAsUser: {{ index . 0 }}
  runAsGroup: {{ index . 1 }}
  seccompProfile: {type: RuntimeDefault}
{{- end -}}
