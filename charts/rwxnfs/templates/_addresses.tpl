{{/* host:port, with brackets around an IPv6 host. */}}
{{- define "rwxnfs.hostPort" -}}
{{- $h := index . 0 -}}
{{- if contains ":" $h }}[{{ $h }}]{{ else }}{{ $h }}{{ end }}:{{ index . 1 }}
{{- end -}}
