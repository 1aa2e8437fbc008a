{{/* The CSI driver's name: fixed in csi-nfs, so not a value. */}}
{{- define "rwxnfs.driverName" -}}nfs.rwxnfs.io{{- end -}}

{{- define "rwxnfs.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped prefix of every object's name. */}}
{{- define "rwxnfs.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains (include "rwxnfs.name" .) .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "rwxnfs.name" .) | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "rwxnfs.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "rwxnfs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: include with (list $ "nfsd"). */}}
{{- define "rwxnfs.selectorLabels" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ include "rwxnfs.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "rwxnfs.componentLabels" -}}
{{ include "rwxnfs.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* An rwxnfs image: include with (list $ "nfsd"). */}}
{{- define "rwxnfs.image" -}}
{{- $ := index . 0 -}}
{{- $repo := index $.Values.image (index . 1) -}}
{{- $tag := default $.Chart.AppVersion $.Values.image.tag -}}
{{- if $.Values.image.registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" $.Values.image.registry) $repo $tag -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{- define "rwxnfs.nfsdName" -}}{{ include "rwxnfs.fullname" . }}-nfsd{{- end -}}
{{- define "rwxnfs.controllerName" -}}{{ include "rwxnfs.fullname" . }}-controller{{- end -}}
{{- define "rwxnfs.nodeName" -}}{{ include "rwxnfs.fullname" . }}-node{{- end -}}

{{- define "rwxnfs.tokenSecret" -}}
{{- default (printf "%s-admin-token" (include "rwxnfs.fullname" .)) .Values.nfsd.admin.existingTokenSecret -}}
{{- end -}}

{{- define "rwxnfs.tlsSecret" -}}
{{- default (printf "%s-admin-tls" (include "rwxnfs.fullname" .)) .Values.nfsd.admin.tls.existingSecret -}}
{{- end -}}

{{/*
The address nodes mount from and the controller reaches the admin API
at: the Service's fixed ClusterIP, or the node address of a hostNetwork
nfsd. It is recorded in every PersistentVolume, so it is required, not
guessed.
*/}}
{{- define "rwxnfs.serverAddress" -}}
{{- $n := .Values.nfsd.network -}}
{{- if eq $n.mode "hostNetwork" -}}
{{- required "nfsd.network.hostIP is required with nfsd.network.mode=hostNetwork: the address of the node nfsd runs on (pin it there with nfsd.nodeSelector); nodes mount from it" $n.hostIP -}}
{{- else -}}
{{- required "nfsd.network.clusterIP is required with nfsd.network.mode=service: a free address in your cluster's service CIDR (e.g. 10.96.100.100 with kubeadm's default 10.96.0.0/12); every PersistentVolume records it, so it must never change" $n.clusterIP -}}
{{- end -}}
{{- end -}}

{{/*
nfsd's name as the controller knows it (--nfsd name=...). Volume IDs
record it, so it does not depend on the release's name: PersistentVolumes
kept from one install still resolve after a reinstall under another name.
*/}}
{{- define "rwxnfs.nfsdID" -}}nfsd-0{{- end -}}

{{- define "rwxnfs.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Leader election once there is more than one controller. */}}
{{- define "rwxnfs.leaderElection" -}}
{{- if gt (int .Values.controller.replicas) 1 }}
- --leader-election
- --leader-election-namespace={{ .Release.Namespace }}
{{- else }}
- --leader-election=false
{{- end }}
{{- end -}}

{{/* A container with no capabilities and a read-only root. */}}
{{- define "rwxnfs.restricted" -}}
runAsUser: 0
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/*
rpcbind and rpc.statd start as root, bind privileged ports and drop to
their own users (rpcbind to _rpc; statd to the owner of its sm directory)
and prune their bounding sets (SETPCAP). The install test runs both from
the node image with exactly this set; without SETPCAP statd exits.
*/}}
{{- define "rwxnfs.rpcCaps" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
  add: [NET_BIND_SERVICE, SETUID, SETGID, SETPCAP]
{{- end -}}
