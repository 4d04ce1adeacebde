{{/* Resources in both shapes: Kubernetes' (requests/limits, what l5d's templates use) and
Linkerd's values shape (cpu/memory/ephemeral-storage, each with request and limit, what
Linkerd's CLI and templates read). Pass the Kubernetes-shaped dict; returns YAML. */}}
{{- define "l5d.bothResourceShapes" -}}
{{- $out := deepCopy (default dict .) -}}
{{- range $res := list "cpu" "memory" "ephemeral-storage" -}}
{{- $_ := set $out $res (dict "request" (toString (index (default dict $out.requests) $res | default "")) "limit" (toString (index (default dict $out.limits) $res | default ""))) -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* Image section in Linkerd's shape: pass (list $ image-dict). The name in full, the
version and pull policy resolved. Returns YAML. */}}
{{- define "l5d.linkerdImage" -}}
{{- $ := index . 0 -}}
{{- $img := deepCopy (index . 1) -}}
{{- $_ := set $img "name" (include "l5d.imageName" (list $ $img.name)) -}}
{{- $_ := set $img "version" (default (include "l5d.version" $) $img.version) -}}
{{- $_ := set $img "pullPolicy" (default $.Values.imagePullPolicy $img.pullPolicy) -}}
{{- toYaml $img -}}
{{- end -}}

{{/* The values document of linkerd-config (see config.yaml). Settings only Linkerd's
templates read, with Linkerd's defaults; each is filled only where the chart's values do
not set it. l5d's proxies and injector take these from their own flags and annotations. */}}
{{- define "l5d.linkerdOnlyDefaults" -}}
disableHeartBeat: true
enableEndpointSlices: true
enableH2Upgrade: true
podAnnotations: {}
podLabels: {}
imagePullSecrets: []
identity:
  externalCA: false
  serviceAccountTokenProjection: true
proxy:
  gid: -1
  cores: 0
  enableExternalProfiles: false
  enableShutdownEndpoint: false
  waitBeforeExitSeconds: 0
  requireIdentityOnInboundPorts: ""
  nativeSidecar: false
  logHTTPHeaders: "off"
  isGateway: false
  isIngress: false
  shutdownGracePeriod: ""
  podInboundPorts: ""
  accessLog: ""
  outboundDiscoveryCacheUnusedTimeout: 5s
  inboundDiscoveryCacheUnusedTimeout: 90s
  disableOutboundProtocolDetectTimeout: false
  disableInboundProtocolDetectTimeout: false
  control:
    streams:
      initialTimeout: 3s
      idleTimeout: 5m
      lifetime: 1h
  inbound:
    server:
      http2:
        keepAliveInterval: 10s
        keepAliveTimeout: 3s
  outbound:
    server:
      http2:
        keepAliveInterval: 10s
        keepAliveTimeout: 3s
  livenessProbe:
    initialDelaySeconds: 10
    timeoutSeconds: 1
  readinessProbe:
    initialDelaySeconds: 2
    timeoutSeconds: 1
  startupProbe:
    initialDelaySeconds: 0
    periodSeconds: 1
    failureThreshold: 120
proxyInit:
  closeWaitTimeoutSecs: 0
  runAsRoot: false
  runAsUser: 65534
  skipSubnets: ""
  logLevel: ""
  logFormat: ""
  xtMountPath:
    mountPath: /run
    name: linkerd-proxy-init-xtables-lock
proxyInjector:
  externalSecret: false
profileValidator:
  externalSecret: false
policyValidator:
  externalSecret: false
{{- end -}}

{{- define "l5d.linkerdValues" -}}
{{- $v := deepCopy (omit .Values "identity") -}}
{{- $id := deepCopy .Values.identity -}}
{{- $_ := set $id "issuer" (omit $id.issuer "tls") -}}
{{- $_ := set $v "identity" $id -}}
{{- $_ := set $v "linkerdVersion" (include "l5d.version" .) -}}
{{- $_ := set $v "identityTrustDomain" (include "l5d.trustDomain" .) -}}
{{- $_ := set $v "identityTrustAnchorsPEM" .Values.identityTrustAnchorsPEM -}}
{{- range $c := list "proxy" "proxyInit" "debugContainer" -}}
{{- $sec := get $v $c -}}
{{- $_ := set $sec "image" (include "l5d.linkerdImage" (list $ $sec.image) | fromYaml) -}}
{{- end -}}
{{- range $c := list "proxy" "proxyInit" -}}
{{- $sec := get $v $c -}}
{{- $_ := set $sec "resources" (include "l5d.bothResourceShapes" $sec.resources | fromYaml) -}}
{{- end -}}
{{- $v = mergeOverwrite (include "l5d.linkerdOnlyDefaults" . | fromYaml) $v -}}
{{- toYaml $v -}}
{{- end -}}
