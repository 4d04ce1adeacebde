{{/*
Values the chart cannot honour everywhere fail the install, naming the value, instead of
being silently ignored: the proxy injector injects proxies on Linkerd's fixed ports, and
linkerd-init knows two iptables backends. Included by proxy-injector.yaml: pass $.
*/}}
{{- define "l5d.validate" -}}
{{- if not (has .Values.proxyInit.iptablesMode (list "legacy" "nft")) -}}
{{- fail (printf "proxyInit.iptablesMode %q: must be legacy or nft" (toString .Values.proxyInit.iptablesMode)) -}}
{{- end -}}
{{- range $name, $port := dict "inbound" 4143 "outbound" 4140 "control" 4190 "admin" 4191 -}}
{{- if ne (int (index $.Values.proxy.ports $name)) $port -}}
{{- fail (printf "proxy.ports.%s %v: injected proxies always use Linkerd's port %d, so it cannot be changed" $name (index $.Values.proxy.ports $name) $port) -}}
{{- end -}}
{{- end -}}
{{- end -}}
