{{/* The release's base name, at most 63 characters. */}}
{{- define "paymesh.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "paymesh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select one component's pods: (dict "root" $ "component" "accounts"). */}}
{{- define "paymesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "paymesh.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels every object carries: (dict "root" $ "component" "accounts"). */}}
{{- define "paymesh.labels" -}}
{{ include "paymesh.selectorLabels" . }}
app.kubernetes.io/part-of: paymesh
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Labels of every pod of the release (for the default-deny policy). */}}
{{- define "paymesh.releaseLabels" -}}
app.kubernetes.io/name: {{ include "paymesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "paymesh.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Who talks to whom: the one place the allowed network paths are written.
The NetworkPolicies, the gRPC targets and the environment follow from it.
`merchants`: it calls merchants' endpoints on the internet (webhooks.merchantEgress);
`secretKey`: it gets its own <svc>.secret_key from <svc>.existingSecret.
*/}}
{{- define "paymesh.topology" -}}
accounts: {http: false, calls: [], kafkaClient: true, redis: false, secretKey: false, merchants: false}
payments: {http: false, calls: [accounts, risk], kafkaClient: true, redis: false, secretKey: false, merchants: false}
risk: {http: false, calls: [], kafkaClient: true, redis: true, secretKey: false, merchants: false}
webhooks: {http: false, calls: [], kafkaClient: true, redis: false, secretKey: true, merchants: true}
gateway: {http: true, calls: [accounts, payments, risk, webhooks], kafkaClient: false, redis: true, secretKey: true, merchants: false}
{{- end -}}

{{/* The Service name of a component: (dict "root" $ "component" "accounts"). */}}
{{- define "paymesh.serviceName" -}}
{{- printf "%s-%s" (include "paymesh.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* dns:///<headless service FQDN>:<port>, balanced round-robin by the client. */}}
{{- define "paymesh.grpcTarget" -}}
{{- $svc := index .root.Values.services .component -}}
{{- printf "dns:///%s.%s.svc.%s:%v" (include "paymesh.serviceName" .) .root.Release.Namespace .root.Values.clusterDomain $svc.port -}}
{{- end -}}

{{- define "paymesh.envName" -}}
{{- printf "PAYMESH_%s" (upper .) -}}
{{- end -}}

{{/* The pod and container hardening of the restricted profile. */}}
{{- define "paymesh.podSecurity" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
automountServiceAccountToken: false
{{- with .Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The writable paths of a read-only root filesystem. */}}
{{- define "paymesh.writableVolumes" -}}
- name: tmp
  emptyDir:
    medium: Memory
    sizeLimit: 64Mi
- name: var
  emptyDir:
    sizeLimit: 256Mi
{{- end -}}

{{- define "paymesh.writableMounts" -}}
- name: tmp
  mountPath: /tmp
- name: var
  mountPath: /var/lib/paymesh
{{- end -}}

{{/* A database URL from the existing Secret: (dict "root" $ "component" "accounts"). */}}
{{- define "paymesh.databaseEnv" -}}
- name: {{ include "paymesh.envName" .component }}__DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "database.existingSecret is required" .root.Values.database.existingSecret }}
      key: {{ index .root.Values.database.keys .component | required (printf "database.keys.%s is required" .component) }}
{{- end -}}

{{/*
A service's secret_key from its existing Secret, for that service only:
(dict "root" $ "component" "gateway"). The gateway's guards its signing keys
and idempotency records; the webhooks service's, the endpoints' signing
secrets at rest. Each refuses to start in production while it is the default.
*/}}
{{- define "paymesh.secretKeyEnv" -}}
{{- $cfg := index .root.Values .component -}}
- name: {{ include "paymesh.envName" .component }}__SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ required (printf "%s.existingSecret is required" .component) $cfg.existingSecret }}
      key: {{ $cfg.secretKeyKey }}
{{- end -}}
