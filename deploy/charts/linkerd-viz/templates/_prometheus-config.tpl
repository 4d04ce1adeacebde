{{/* The configuration file of the chart's Prometheus (ConfigMap prometheus-config). */}}
{{- define "viz.prometheusConfig" -}}
{{- $ns := include "viz.ns" . -}}
# The labels the metrics-api's queries rely on (Linkerd viz's):
#
# job "linkerd-proxy": every container named linkerd-proxy, at its port named
# linkerd-admin (4191, /metrics), in pods whose linkerd.io/control-plane-ns label is
# {{ .Values.linkerdNamespace }}. Besides the proxy's own labels (direction, authority,
# dst_*, tls, ...) each series gets:
#   namespace, pod           the pod's namespace and name
#   deployment, replicaset, statefulset, daemonset, cronjob, replicationcontroller
#                            from the pod's linkerd.io/proxy-<kind> label (the owner the
#                            injector recorded); absent when the pod has none
#   k8s_job                  from linkerd.io/proxy-job (Prometheus keeps "job" for the
#                            scrape job's name)
#   control_plane_ns, workload_ns, control_plane_component, ...
#                            every other linkerd.io/<name> pod label, as <name>
#   <label>                  every other pod label (app, pod_template_hash, ...)
# Label names are Prometheus's spelling of the Kubernetes ones ("-", "." and "/" become
# "_"). When names collide, namespace and pod win, then the linkerd.io labels.
#
# job "linkerd-controller": the control plane's and this extension's components, at
# every container port named admin-http, in the {{ .Values.linkerdNamespace }} and
# {{ $ns }} namespaces; labels namespace, pod, and component (the container's name).
#
# job "prometheus": this server itself.
global:
  {{- toYaml .Values.prometheus.globalConfig | nindent 2 }}
scrape_configs:
- job_name: prometheus
  static_configs:
  - targets: ['localhost:9090']

- job_name: linkerd-controller
  kubernetes_sd_configs:
  - role: pod
    namespaces:
      names: [{{ .Values.linkerdNamespace | quote }}, {{ $ns | quote }}]
  relabel_configs:
  - source_labels: [__meta_kubernetes_pod_container_port_name]
    regex: admin-http
    action: keep
  - source_labels: [__meta_kubernetes_namespace]
    target_label: namespace
  - source_labels: [__meta_kubernetes_pod_name]
    target_label: pod
  - source_labels: [__meta_kubernetes_pod_container_name]
    target_label: component

- job_name: linkerd-proxy
  kubernetes_sd_configs:
  - role: pod
  relabel_configs:
  # Only the proxies of this control plane, at their admin port.
  - source_labels:
    - __meta_kubernetes_pod_container_name
    - __meta_kubernetes_pod_container_port_name
    - __meta_kubernetes_pod_label_linkerd_io_control_plane_ns
    regex: linkerd-proxy;linkerd-admin;{{ .Values.linkerdNamespace }}
    action: keep
  # Every pod label under its own name (the linkerd.io ones are renamed below).
  - regex: __meta_kubernetes_pod_label_(.+)
    action: labelmap
  - regex: linkerd_io_.+
    action: labeldrop
  # linkerd.io/proxy-job would become "job", the scrape job's label: it is k8s_job.
  - source_labels: [__meta_kubernetes_pod_label_linkerd_io_proxy_job]
    regex: (.+)
    target_label: k8s_job
  - regex: __meta_kubernetes_pod_label_linkerd_io_proxy_job
    action: labeldrop
  # linkerd.io/proxy-<kind>=<name> gives <kind>=<name>.
  - regex: __meta_kubernetes_pod_label_linkerd_io_proxy_(.+)
    action: labelmap
  - regex: __meta_kubernetes_pod_label_linkerd_io_proxy_(.+)
    action: labeldrop
  # Other linkerd.io/<name> labels give <name>.
  - regex: __meta_kubernetes_pod_label_linkerd_io_(.+)
    action: labelmap
  - source_labels: [__meta_kubernetes_namespace]
    target_label: namespace
  - source_labels: [__meta_kubernetes_pod_name]
    target_label: pod
{{- with .Values.prometheus.scrapeConfigs }}
{{ toYaml . }}
{{- end }}
{{- with .Values.prometheus.remoteWrite }}
remote_write:
{{ toYaml . }}
{{- end }}
{{- end -}}
