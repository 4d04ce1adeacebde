{{/* Namespace of the extension (the release namespace, linkerd-viz). */}}
{{- define "viz.ns" -}}{{ .Release.Namespace }}{{- end -}}

{{/* Version of the extension: linkerdVersion, or else the chart's appVersion. */}}
{{- define "viz.version" -}}{{ default .Chart.AppVersion .Values.linkerdVersion }}{{- end -}}

{{/* Image reference, as the control-plane chart's l5d.image: pass (list $ .Values.<component>.image). */}}
{{- define "l5d.image" -}}
{{- $ := index . 0 -}}{{- $img := index . 1 -}}
{{ default $.Values.defaultRegistry $img.registry }}/{{ $img.name }}:{{ default (include "viz.version" $) $img.tag }}
{{- end -}}

{{/* Labels every object of the extension carries; linkerd viz uninstall finds cluster-scoped
objects by linkerd.io/extension=viz. */}}
{{- define "viz.labels" -}}
linkerd.io/extension: viz
app.kubernetes.io/part-of: l5d
app.kubernetes.io/version: {{ include "viz.version" . | quote }}
{{- end -}}

{{/* Labels of a component's objects and pods: pass (list $ "component"). */}}
{{- define "viz.componentLabels" -}}
{{- $ := index . 0 -}}
{{ include "viz.labels" $ }}
component: {{ index . 1 }}
{{- end -}}

{{/* Annotations and labels of a component's pods: pass (list $ "component" extraAnnotations). */}}
{{- define "viz.podMeta" -}}
{{- $ := index . 0 -}}
annotations:
  linkerd.io/created-by: linkerd/helm {{ include "viz.version" $ }}
  config.linkerd.io/proxy-await: enabled
  {{- with index . 2 }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with $.Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
labels:
  linkerd.io/extension: viz
  component: {{ index . 1 }}
  {{- with $.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* Security context of an extension container: pass (list $ uid). */}}
{{- define "viz.securityContext" -}}
{{- $ := index . 0 -}}
securityContext:
  allowPrivilegeEscalation: false
  capabilities: {drop: [ALL]}
  readOnlyRootFilesystem: true
  runAsNonRoot: true
  runAsUser: {{ index . 1 }}
  runAsGroup: {{ index . 2 }}
  seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* URL of the Prometheus the metrics-api queries. */}}
{{- define "viz.prometheusUrl" -}}
{{- if .Values.prometheusUrl -}}
{{ .Values.prometheusUrl }}
{{- else if .Values.prometheus.enabled -}}
http://prometheus.{{ include "viz.ns" . }}.svc.{{ .Values.clusterDomain }}:9090
{{- else -}}
{{ fail "prometheus.enabled=false needs prometheusUrl: the metrics-api must have a Prometheus to query" }}
{{- end -}}
{{- end -}}
