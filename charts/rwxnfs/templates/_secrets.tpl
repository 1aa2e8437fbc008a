{{/*
The admin API's token and TLS material, as base64 (JSON). Made once per
install and read back with lookup on every upgrade, so nfsd and the
controller keep working across upgrades; the certificate is remade only
when the addresses it must name change. Memoized in .Values because
several templates need the same (random) values in one render.
*/}}
{{- define "rwxnfs.adminMaterial" -}}
{{- if not (hasKey .Values "__rwxnfsAdmin") -}}
{{- $m := dict -}}
{{- if not .Values.nfsd.admin.existingTokenSecret -}}
{{- $old := lookup "v1" "Secret" .Release.Namespace (include "rwxnfs.tokenSecret" .) -}}
{{- if and $old $old.data (hasKey $old.data "token") -}}
{{- $_ := set $m "token" (index $old.data "token") -}}
{{- else -}}
{{- $_ := set $m "token" (randAlphaNum 48 | b64enc) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.nfsd.admin.tls.enabled (not .Values.nfsd.admin.tls.existingSecret) -}}
{{- $svc := include "rwxnfs.nfsdName" . -}}
{{- $ips := list (include "rwxnfs.serverAddress" .) "127.0.0.1" -}}
{{- $dns := list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) "localhost" -}}
{{- $sans := printf "%s,%s" (join "," $ips) (join "," $dns) -}}
{{- $_ := set $m "sans" $sans -}}
{{- $old := lookup "v1" "Secret" .Release.Namespace (include "rwxnfs.tlsSecret" .) -}}
{{- $oldSans := "" -}}
{{- if and $old $old.metadata $old.metadata.annotations -}}
{{- $oldSans = index $old.metadata.annotations "rwxnfs.io/sans" | default "" -}}
{{- end -}}
{{- if and $old $old.data (eq $oldSans $sans) -}}
{{- $_ := set $m "ca" (index $old.data "ca.crt") -}}
{{- $_ := set $m "crt" (index $old.data "tls.crt") -}}
{{- $_ := set $m "key" (index $old.data "tls.key") -}}
{{- else -}}
{{- $ca := genCA (printf "%s admin CA" (include "rwxnfs.fullname" .)) 3650 -}}
{{- $cert := genSignedCert $svc $ips $dns 3650 $ca -}}
{{- $_ := set $m "ca" ($ca.Cert | b64enc) -}}
{{- $_ := set $m "crt" ($cert.Cert | b64enc) -}}
{{- $_ := set $m "key" ($cert.Key | b64enc) -}}
{{- end -}}
{{- end -}}
{{- $_ := set .Values "__rwxnfsAdmin" $m -}}
{{- end -}}
{{- toJson (index .Values "__rwxnfsAdmin") -}}
{{- end -}}

{{/* Changes when the token or certificate does, so pods restart to read them. */}}
{{- define "rwxnfs.adminChecksum" -}}
{{- include "rwxnfs.adminMaterial" . | sha256sum -}}
{{- end -}}
