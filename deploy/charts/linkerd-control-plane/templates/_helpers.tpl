{{/* Namespace the control plane lives in. */}}
{{- define "l5d.ns" -}}{{ .Release.Namespace }}{{- end -}}

{{/* Trust domain of workload identities. */}}
{{- define "l5d.trustDomain" -}}{{ default .Values.clusterDomain .Values.identityTrustDomain }}{{- end -}}

{{/* Identity name of a control-plane service account: pass (list $ "sa"). */}}
{{- define "l5d.identityName" -}}
{{- $ := index . 0 -}}
{{- index . 1 }}.{{ include "l5d.ns" $ }}.serviceaccount.identity.{{ include "l5d.ns" $ }}.{{ include "l5d.trustDomain" $ }}
{{- end -}}

{{/* Version of the control plane: linkerdVersion, or else the chart's appVersion (the
release the chart was packaged with). */}}
{{- define "l5d.version" -}}{{ default .Chart.AppVersion .Values.linkerdVersion }}{{- end -}}

{{/* Image name without tag: pass (list $ "name"). A name with a "/" is a full reference
(Linkerd's shape, e.g. cr.l5d.io/linkerd/proxy, and what linkerd-config's values record);
any other is under imageRegistry. */}}
{{- define "l5d.imageName" -}}
{{- $ := index . 0 -}}
{{- if contains "/" (index . 1) -}}{{ index . 1 }}{{- else -}}{{ $.Values.imageRegistry }}/{{ index . 1 }}{{- end -}}
{{- end -}}

{{/* Image reference: pass (list $ "name" "version-override"). */}}
{{- define "l5d.image" -}}
{{- $ := index . 0 -}}
{{ include "l5d.imageName" (list $ (index . 1)) }}:{{ default (include "l5d.version" $) (index . 2) }}
{{- end -}}

{{/* Labels every control-plane object carries. */}}
{{- define "l5d.labels" -}}
linkerd.io/control-plane-ns: {{ include "l5d.ns" . }}
app.kubernetes.io/part-of: l5d
app.kubernetes.io/version: {{ include "l5d.version" . | quote }}
{{- end -}}

{{/* Pod anti-affinity across nodes for a component: pass (list $ "component"). */}}
{{- define "l5d.antiAffinity" -}}
{{- $ := index . 0 -}}
{{- if $.Values.enablePodAntiAffinity }}
affinity:
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
    - labelSelector:
        matchLabels:
          linkerd.io/control-plane-component: {{ index . 1 }}
      topologyKey: kubernetes.io/hostname
{{- end }}
{{- end -}}

{{/* PodDisruptionBudget of a component: pass (list $ "component"). */}}
{{- define "l5d.pdb" -}}
{{- $ := index . 0 -}}
{{- if $.Values.enablePodDisruptionBudget }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: linkerd-{{ index . 1 }}
  namespace: {{ include "l5d.ns" $ }}
  labels:
    {{- include "l5d.labels" $ | nindent 4 }}
    linkerd.io/control-plane-component: {{ index . 1 }}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      linkerd.io/control-plane-component: {{ index . 1 }}
{{- end }}
{{- end -}}

{{/* Annotations and labels of a meshed control-plane pod: pass (list $ "component"). */}}
{{- define "l5d.podMeta" -}}
{{- $ := index . 0 -}}
annotations:
  linkerd.io/created-by: linkerd/helm {{ include "l5d.version" $ }}
  linkerd.io/inject: disabled
  linkerd.io/proxy-version: {{ default (include "l5d.version" $) $.Values.proxy.image.version | quote }}
  linkerd.io/trust-root-sha256: {{ sha256sum $.Values.identityTrustAnchorsPEM }}
labels:
  linkerd.io/control-plane-component: {{ index . 1 }}
  linkerd.io/control-plane-ns: {{ include "l5d.ns" $ }}
  linkerd.io/proxy-deployment: linkerd-{{ index . 1 }}
  linkerd.io/workload-ns: {{ include "l5d.ns" $ }}
{{- end -}}

{{/* The linkerd-init container: pass $. */}}
{{- define "l5d.initContainer" -}}
- name: linkerd-init
  image: {{ include "l5d.image" (list . .Values.proxyInit.image.name .Values.proxyInit.image.version) }}
  imagePullPolicy: {{ .Values.imagePullPolicy }}
  args:
  - --firewall-bin-path
  - {{ if eq .Values.proxyInit.iptablesMode "nft" }}iptables-nft{{ else }}iptables-legacy{{ end }}
  - --firewall-save-bin-path
  - {{ if eq .Values.proxyInit.iptablesMode "nft" }}iptables-nft-save{{ else }}iptables-legacy-save{{ end }}
  - --incoming-proxy-port
  - {{ .Values.proxy.ports.inbound | quote }}
  - --outgoing-proxy-port
  - {{ .Values.proxy.ports.outbound | quote }}
  - --proxy-uid
  - {{ .Values.proxy.uid | quote }}
  - --inbound-ports-to-ignore
  - "{{ .Values.proxy.ports.control }},{{ .Values.proxy.ports.admin }},{{ .Values.proxyInit.ignoreInboundPorts }}"
  - --outbound-ports-to-ignore
  - "443,6443,{{ .Values.proxyInit.ignoreOutboundPorts }}"
  resources:
    {{- toYaml .Values.proxyInit.resources | nindent 4 }}
  securityContext:
    allowPrivilegeEscalation: false
    capabilities:
      add: [NET_ADMIN, NET_RAW]
    privileged: false
    readOnlyRootFilesystem: true
    runAsNonRoot: true
    runAsUser: 65534
  terminationMessagePolicy: FallbackToLogsOnError
  volumeMounts:
  - mountPath: /run
    name: linkerd-proxy-init-xtables-lock
{{- end -}}

{{/* The linkerd-proxy sidecar: pass (list $ "component" "inbound-ports" local-identity-bool). */}}
{{- define "l5d.proxy" -}}
{{- $ := index . 0 -}}
{{- $ns := include "l5d.ns" $ -}}
{{- $suffix := printf "%s.svc.%s." $ns $.Values.clusterDomain -}}
- name: linkerd-proxy
  image: {{ include "l5d.image" (list $ $.Values.proxy.image.name $.Values.proxy.image.version) }}
  imagePullPolicy: {{ $.Values.imagePullPolicy }}
  env:
  - {name: _pod_name, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
  - {name: _pod_ns, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
  - {name: _pod_uid, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
  - {name: _pod_nodeName, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
  - {name: _pod_containerName, value: linkerd-proxy}
  - {name: _pod_sa, valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}}
  - {name: _l5d_ns, value: {{ $ns }}}
  - {name: _l5d_trustdomain, value: {{ include "l5d.trustDomain" $ }}}
  {{- if index . 3 }}
  {{- /* As Linkerd's identity pod: its clients (proxies without a certificate yet) reach
  it over TLS only. */}}
  - {name: LINKERD2_PROXY_INBOUND_PORTS_REQUIRE_TLS, value: "8080"}
  {{- end }}
  - {name: LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED, value: "false"}
  - {name: LINKERD2_PROXY_LOG, value: {{ $.Values.proxy.logLevel | quote }}}
  - {name: LINKERD2_PROXY_LOG_FORMAT, value: {{ $.Values.proxy.logFormat | quote }}}
  {{- /* As Linkerd's destination pod: its proxy calls the controllers beside it over
  localhost, in plaintext. Through the Services it would reach its own pod's address,
  which the pod's own connections reach without its inbound proxy, so its mesh TLS would
  meet the controllers' plaintext. */}}
  {{- $local := eq (index . 1) "destination" }}
  - {name: LINKERD2_PROXY_DESTINATION_SVC_ADDR, value: {{ ternary "localhost.:8086" (printf "linkerd-dst-headless.%s:8086" $suffix) $local | quote }}}
  - {name: LINKERD2_PROXY_DESTINATION_SVC_NAME, value: {{ include "l5d.identityName" (list $ "linkerd-destination") }}}
  - {name: LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS, value: {{ $.Values.clusterNetworks | quote }}}
  - {name: LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES, value: "svc.{{ $.Values.clusterDomain }}."}
  - {name: LINKERD2_PROXY_DESTINATION_CONTEXT, value: '{"ns":"$(_pod_ns)", "nodeName":"$(_pod_nodeName)", "pod":"$(_pod_name)"}'}
  - {name: LINKERD2_PROXY_POLICY_SVC_ADDR, value: {{ ternary "localhost.:8090" (printf "linkerd-policy.%s:8090" $suffix) $local | quote }}}
  - {name: LINKERD2_PROXY_POLICY_SVC_NAME, value: {{ include "l5d.identityName" (list $ "linkerd-destination") }}}
  - {name: LINKERD2_PROXY_POLICY_WORKLOAD, value: '{"ns":"$(_pod_ns)", "pod":"$(_pod_name)"}'}
  - {name: LINKERD2_PROXY_INBOUND_DEFAULT_POLICY, value: {{ $.Values.proxy.defaultInboundPolicy }}}
  - {name: LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS, value: {{ $.Values.clusterNetworks | quote }}}
  - {name: LINKERD2_PROXY_INBOUND_CONNECT_TIMEOUT, value: {{ $.Values.proxy.inboundConnectTimeout }}}
  - {name: LINKERD2_PROXY_OUTBOUND_CONNECT_TIMEOUT, value: {{ $.Values.proxy.outboundConnectTimeout }}}
  - {name: LINKERD2_PROXY_CONTROL_STREAM_INITIAL_TIMEOUT, value: 3s}
  - {name: LINKERD2_PROXY_CONTROL_STREAM_IDLE_TIMEOUT, value: 5m}
  - {name: LINKERD2_PROXY_CONTROL_STREAM_LIFETIME, value: 1h}
  - {name: LINKERD2_PROXY_OUTBOUND_DISCOVERY_IDLE_TIMEOUT, value: 5s}
  - {name: LINKERD2_PROXY_INBOUND_DISCOVERY_IDLE_TIMEOUT, value: 90s}
  - {name: LINKERD2_PROXY_CONTROL_LISTEN_ADDR, value: "0.0.0.0:{{ $.Values.proxy.ports.control }}"}
  - {name: LINKERD2_PROXY_ADMIN_LISTEN_ADDR, value: "0.0.0.0:{{ $.Values.proxy.ports.admin }}"}
  - {name: LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR, value: "127.0.0.1:{{ $.Values.proxy.ports.outbound }}"}
  - {name: LINKERD2_PROXY_OUTBOUND_LISTEN_ADDRS, value: "127.0.0.1:{{ $.Values.proxy.ports.outbound }}"}
  - {name: LINKERD2_PROXY_INBOUND_LISTEN_ADDR, value: "0.0.0.0:{{ $.Values.proxy.ports.inbound }}"}
  - {name: LINKERD2_PROXY_INBOUND_IPS, valueFrom: {fieldRef: {fieldPath: status.podIPs}}}
  - {name: LINKERD2_PROXY_INBOUND_PORTS, value: {{ index . 2 | quote }}}
  - {name: LINKERD2_PROXY_INBOUND_ACCEPT_KEEPALIVE, value: 10000ms}
  - {name: LINKERD2_PROXY_OUTBOUND_CONNECT_KEEPALIVE, value: 10000ms}
  - {name: LINKERD2_PROXY_INBOUND_ACCEPT_USER_TIMEOUT, value: 30s}
  - {name: LINKERD2_PROXY_OUTBOUND_CONNECT_USER_TIMEOUT, value: 30s}
  - {name: LINKERD2_PROXY_INBOUND_SERVER_HTTP2_KEEP_ALIVE_INTERVAL, value: 10s}
  - {name: LINKERD2_PROXY_INBOUND_SERVER_HTTP2_KEEP_ALIVE_TIMEOUT, value: 3s}
  - {name: LINKERD2_PROXY_OUTBOUND_SERVER_HTTP2_KEEP_ALIVE_INTERVAL, value: 10s}
  - {name: LINKERD2_PROXY_OUTBOUND_SERVER_HTTP2_KEEP_ALIVE_TIMEOUT, value: 3s}
  - {name: LINKERD2_PROXY_OUTBOUND_METRICS_HOSTNAME_LABELS, value: "false"}
  - {name: LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION, value: {{ $.Values.proxy.opaquePorts | quote }}}
  - {name: LINKERD2_PROXY_IDENTITY_DIR, value: /var/run/linkerd/identity/end-entity}
  - name: LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS
    value: |
      {{- required "identityTrustAnchorsPEM is required" $.Values.identityTrustAnchorsPEM | trim | nindent 6 }}
  - {name: LINKERD2_PROXY_IDENTITY_TOKEN_FILE, value: /var/run/secrets/tokens/linkerd-identity-token}
  {{- if index . 3 }}
  - {name: LINKERD2_PROXY_IDENTITY_SVC_ADDR, value: "localhost.:8080"}
  {{- else }}
  - {name: LINKERD2_PROXY_IDENTITY_SVC_ADDR, value: "linkerd-identity-headless.{{ $suffix }}:8080"}
  {{- end }}
  - {name: LINKERD2_PROXY_IDENTITY_LOCAL_NAME, value: "$(_pod_sa).$(_pod_ns).serviceaccount.identity.{{ $ns }}.{{ include "l5d.trustDomain" $ }}"}
  - {name: LINKERD2_PROXY_IDENTITY_SVC_NAME, value: {{ include "l5d.identityName" (list $ "linkerd-identity") }}}
  {{- /* The identity pod's proxy gets its certificate from the container it would hold back. */}}
  {{- if and $.Values.proxy.await (not (index . 3)) }}
  lifecycle:
    postStart:
      exec:
        command: [/usr/lib/linkerd/linkerd-await, --timeout=2m]
  {{- end }}
  livenessProbe:
    httpGet: {path: /live, port: {{ $.Values.proxy.ports.admin }}}
    initialDelaySeconds: 10
    periodSeconds: 10
    timeoutSeconds: 1
    failureThreshold: 3
  readinessProbe:
    httpGet: {path: /ready, port: {{ $.Values.proxy.ports.admin }}}
    initialDelaySeconds: 2
    periodSeconds: 10
  ports:
  - {containerPort: {{ $.Values.proxy.ports.inbound }}, name: linkerd-proxy}
  - {containerPort: {{ $.Values.proxy.ports.admin }}, name: linkerd-admin}
  resources:
    {{- toYaml $.Values.proxy.resources | nindent 4 }}
  securityContext:
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    runAsNonRoot: true
    runAsUser: {{ $.Values.proxy.uid }}
  terminationMessagePolicy: FallbackToLogsOnError
  volumeMounts:
  - {mountPath: /var/run/linkerd/identity/end-entity, name: linkerd-identity-end-entity}
  - {mountPath: /var/run/secrets/tokens, name: linkerd-identity-token}
{{- end -}}

{{/* Volumes of a meshed pod. */}}
{{- define "l5d.proxyVolumes" -}}
- name: linkerd-proxy-init-xtables-lock
  emptyDir: {}
- name: linkerd-identity-end-entity
  emptyDir: {medium: Memory}
- name: linkerd-identity-token
  projected:
    sources:
    - serviceAccountToken:
        audience: identity.l5d.io
        expirationSeconds: 86400
        path: linkerd-identity-token
{{- end -}}

{{/* Security context of a controller container: pass $. */}}
{{- define "l5d.controllerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  capabilities: {drop: [ALL]}
  readOnlyRootFilesystem: true
  runAsNonRoot: true
  runAsUser: {{ .Values.controllerUID }}
  seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* Common controller flags: pass $. */}}
{{- define "l5d.controllerArgs" -}}
- -log-level={{ .Values.controllerLogLevel }}
- -log-format={{ .Values.controllerLogFormat }}
{{- end -}}
