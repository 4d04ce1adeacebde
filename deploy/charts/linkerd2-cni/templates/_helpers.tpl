{{/* l5dcni.ports turns a comma-separated port list ("4190, 8000-9000") into a JSON list of strings. */}}
{{- define "l5dcni.ports" -}}
{{- $out := list -}}
{{- range (splitList "," .) }}{{ if trim . }}{{ $out = append $out (trim .) }}{{ end }}{{ end -}}
{{- toJson $out -}}
{{- end -}}
