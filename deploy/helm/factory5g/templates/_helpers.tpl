{{/*
Expand the name of the chart.
*/}}
{{- define "factory5g.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
Truncated at 40 characters, shorter than the usual 63: the chart appends suffixes of up to 10
characters ("-simulator"), and a StatefulSet name must stay within 52 characters for its
controller-revision-hash label to fit 63.
If the release name contains the chart name it is used as the full name.
*/}}
{{- define "factory5g.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "factory5g.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels. Every object also gets a component label: see factory5g.componentLabels.
*/}}
{{- define "factory5g.labels" -}}
helm.sh/chart: {{ include "factory5g.chart" . }}
{{ include "factory5g.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: factory5g
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels
*/}}
{{- define "factory5g.selectorLabels" -}}
app.kubernetes.io/name: {{ include "factory5g.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of an object that belongs to one component.
Call with (dict "root" $ "component" "ingest").
*/}}
{{- define "factory5g.componentLabels" -}}
{{ include "factory5g.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Selector labels of one component. Call with (dict "root" $ "component" "ingest").
*/}}
{{- define "factory5g.componentSelectorLabels" -}}
{{ include "factory5g.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Create the name of the service account to use
*/}}
{{- define "factory5g.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "factory5g.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: a digest pins the image, otherwise the tag (default: appVersion).
*/}}
{{- define "factory5g.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Names of the Secrets the pods read, whether the chart creates them or they already exist.
*/}}
{{- define "factory5g.databaseSecretName" -}}
{{- default (printf "%s-database" (include "factory5g.fullname" .)) .Values.database.existingSecret }}
{{- end }}

{{- define "factory5g.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}url{{ end }}
{{- end }}

{{- define "factory5g.mqttSecretName" -}}
{{- default (printf "%s-mqtt" (include "factory5g.fullname" .)) .Values.mqtt.existingSecret }}
{{- end }}

{{/*
True (non-empty) when the pods get MQTT credentials from a Secret.
*/}}
{{- define "factory5g.mqttCredentials" -}}
{{- if or .Values.mqtt.existingSecret .Values.mqtt.username .Values.mqtt.password (include "factory5g.mqttServiceAccounts" .) }}true{{ end }}
{{- end }}

{{/*
True (non-empty) when any service has a broker account of its own.
*/}}
{{- define "factory5g.mqttServiceAccounts" -}}
{{- if not .Values.mqtt.existingSecret }}
{{- range $service, $account := (.Values.mqtt.serviceCredentials | default dict) }}{{ if $account.username }}true{{ end }}{{ end }}
{{- end }}
{{- end }}

{{- define "factory5g.apiSecretName" -}}
{{- default (printf "%s-api" (include "factory5g.fullname" .)) .Values.api.existingSecret }}
{{- end }}

{{- define "factory5g.apiSecretKey" -}}
{{- if .Values.api.existingSecret }}{{ .Values.api.existingSecretKey }}{{ else }}bootstrap-key{{ end }}
{{- end }}

{{/*
Checksum of the user-supplied secret settings: pods roll when a credential changes.
A generated bootstrap key is not part of it, so re-rendering does not roll the API.
*/}}
{{- define "factory5g.secretChecksum" -}}
{{- $s := dict "database" .Values.database "mqtt" .Values.mqtt "apiKey" .Values.api.bootstrapKey "apiSecret" .Values.api.existingSecret "apiSecretKey" .Values.api.existingSecretKey }}
{{- toJson $s | sha256sum }}
{{- end }}

{{/*
Checksum of the non-secret configuration (environment and rule file).
*/}}
{{- define "factory5g.configChecksum" -}}
{{- include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end }}

{{/*
Environment variables every service container gets from Secrets.
*/}}
{{- define "factory5g.secretEnv" -}}
{{- $root := .root | default . -}}
{{ include "factory5g.databaseEnv" . }}
{{- include "factory5g.mqttEnv" . }}
{{- end }}

{{/*
The database URL of a service: its own login user's when database.serviceUrls (or, with an
existing Secret, database.existingSecretServiceKeys) names one, else the shared `url`.
Call with the root context or with (dict "root" $ "component" "ingest").
*/}}
{{- define "factory5g.databaseEnv" -}}
{{- $root := .root | default . -}}
{{- $component := .component | default "" -}}
{{- $db := $root.Values.database -}}
{{- $key := include "factory5g.databaseSecretKey" $root -}}
{{- if and $component $db.existingSecret (index ($db.existingSecretServiceKeys | default dict) $component) }}
{{- $key = index $db.existingSecretServiceKeys $component -}}
{{- else if and $component (not $db.existingSecret) (index ($db.serviceUrls | default dict) $component) }}
{{- $key = printf "url-%s" $component -}}
{{- end }}
- name: F5G_DATABASE__URL
  valueFrom:
    secretKeyRef:
      name: {{ include "factory5g.databaseSecretName" $root }}
      key: {{ $key }}
{{- end }}

{{/*
MQTT credentials from their Secret; nothing when the broker takes anonymous clients.
*/}}
{{- define "factory5g.mqttEnv" -}}
{{- $root := .root | default . -}}
{{- $component := .component | default "" -}}
{{- $m := $root.Values.mqtt -}}
{{- $own := and $component (not $m.existingSecret) (index ($m.serviceCredentials | default dict) $component | default dict).username -}}
{{- if or $own $m.existingSecret $m.username $m.password }}
- name: F5G_MQTT__USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ include "factory5g.mqttSecretName" $root }}
      key: {{ if $own }}username-{{ $component }}{{ else if $m.existingSecret }}{{ $m.existingSecretUsernameKey }}{{ else }}username{{ end }}
- name: F5G_MQTT__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "factory5g.mqttSecretName" $root }}
      key: {{ if $own }}password-{{ $component }}{{ else if $m.existingSecret }}{{ $m.existingSecretPasswordKey }}{{ else }}password{{ end }}
{{- end }}
{{- end }}

{{/*
Pod annotations that roll the pods when configuration or credentials change.
*/}}
{{- define "factory5g.checksumAnnotations" -}}
checksum/config: {{ include "factory5g.configChecksum" . }}
checksum/secret: {{ include "factory5g.secretChecksum" . }}
{{- end }}

{{/*
Pod-level settings shared by every workload.
Call with (dict "root" $ "component" "ingest" "values" .Values.ingest).
*/}}
{{- define "factory5g.podSpecCommon" -}}
{{- $root := .root -}}
serviceAccountName: {{ include "factory5g.serviceAccountName" $root }}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- include "factory5g.topologySpread" . }}
{{- end }}

{{/*
Topology spread: the chart's node and zone defaults plus the workload's own constraints.
Deployments match on pod-template-hash so a rollout is spread by itself.
*/}}
{{- define "factory5g.topologySpread" -}}
{{- $root := .root -}}
{{- $ts := $root.Values.topologySpread }}
{{- if or $ts.enabled .values.topologySpreadConstraints }}
topologySpreadConstraints:
{{- if $ts.enabled }}
  - maxSkew: {{ $ts.maxSkew }}
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: {{ $ts.nodeWhenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "factory5g.componentSelectorLabels" (dict "root" $root "component" .component) | nindent 8 }}
    {{- with .matchLabelKeys }}
    matchLabelKeys:
      {{- toYaml . | nindent 6 }}
    {{- end }}
  - maxSkew: {{ $ts.maxSkew }}
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: {{ $ts.zoneWhenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "factory5g.componentSelectorLabels" (dict "root" $root "component" .component) | nindent 8 }}
    {{- with .matchLabelKeys }}
    matchLabelKeys:
      {{- toYaml . | nindent 6 }}
    {{- end }}
{{- end }}
{{- with .values.topologySpreadConstraints }}
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Container-level settings shared by every container: image, security context, /tmp.
*/}}
{{- define "factory5g.containerCommon" -}}
image: {{ include "factory5g.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
{{- end }}

{{/*
Volume mounts and volumes of the writable /tmp and, with TLS, the broker certificates.
*/}}
{{- define "factory5g.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if and .Values.mqtt.tls.enabled .Values.mqtt.tls.existingSecret }}
- name: mqtt-tls
  mountPath: /etc/factory5g/mqtt-tls
  readOnly: true
{{- end }}
{{- end }}

{{- define "factory5g.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- if and .Values.mqtt.tls.enabled .Values.mqtt.tls.existingSecret }}
- name: mqtt-tls
  secret:
    secretName: {{ .Values.mqtt.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{/*
HTTP probes. Call with (dict "port" "metrics" "path" "/healthz" "timing" .Values.ingest.probes.liveness).
*/}}
{{- define "factory5g.httpProbe" -}}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
{{- toYaml .timing | nindent 0 }}
{{- end }}

{{/*
True (non-empty) when a component has a database login user of its own: a serviceUrls entry
or, with an existing Secret, an existingSecretServiceKeys entry.
Call with (dict "root" $ "component" "simulator").
*/}}
{{- define "factory5g.ownDatabaseUrl" -}}
{{- $db := .root.Values.database -}}
{{- if $db.existingSecret }}
{{- if index ($db.existingSecretServiceKeys | default dict) .component }}true{{ end }}
{{- else }}
{{- if index ($db.serviceUrls | default dict) .component }}true{{ end }}
{{- end }}
{{- end }}

{{/*
Secure defaults. Unless security.insecure is set, rendering fails, naming the value, when
the schema owner's URL has no password, an enabled service has no database login user of its
own (or its URL no password), a service has no MQTT credentials, or TLS to the broker is off.
*/}}
{{- define "factory5g.securityCheck" -}}
{{- if not .Values.security.insecure }}
{{- $hint := "(docs/security.md, \"Chart setup\"; security.insecure=true renders without it, for demonstrations only)" }}
{{- $withPassword := "^postgres(ql)?://[^/?#@:]+:[^/?#@]+@|[?&]password=[^&]" }}
{{- $db := .Values.database }}
{{- $services := list }}
{{- range $c := list "ingest" "rules" "api" "notify" "commands" }}
{{- if (index $.Values $c).enabled }}{{ $services = append $services $c }}{{ end }}
{{- end }}
{{- if $db.existingSecret }}
{{- range $c := $services }}
{{- if not (index ($db.existingSecretServiceKeys | default dict) $c) }}
{{- fail (printf "database.existingSecretServiceKeys.%s is required: the key in Secret %s holding the URL of the %s service's own login user (role factory5g_%s), so that it never connects as the schema owner %s" $c $db.existingSecret $c $c $hint) }}
{{- end }}
{{- end }}
{{- else }}
{{- if not (regexMatch $withPassword $db.url) }}
{{- fail (printf "database.url must carry the schema owner's password (postgresql://<owner>:<password>@<host>:5432/<database>), or use database.existingSecret %s" $hint) }}
{{- end }}
{{- $all := $services }}
{{- if and .Values.simulator.enabled (index ($db.serviceUrls | default dict) "simulator") }}
{{- $all = append $all "simulator" }}
{{- end }}
{{- range $c := $all }}
{{- $url := index ($db.serviceUrls | default dict) $c }}
{{- if not $url }}
{{- fail (printf "database.serviceUrls.%s is required: the URL of the %s service's own login user (role factory5g_%s), so that it never connects as the schema owner %s" $c $c $c $hint) }}
{{- end }}
{{- if not (regexMatch $withPassword $url) }}
{{- fail (printf "database.serviceUrls.%s must carry its login user's password %s" $c $hint) }}
{{- end }}
{{- end }}
{{- end }}
{{- if not .Values.mqtt.tls.enabled }}
{{- fail (printf "mqtt.tls.enabled is required: credentials and data must not cross the network in clear text %s" $hint) }}
{{- end }}
{{- if not .Values.mqtt.existingSecret }}
{{- $m := .Values.mqtt }}
{{- range $c := list "ingest" "rules" "api" "simulator" "commands" }}
{{- if (index $.Values $c).enabled }}
{{- $own := index ($m.serviceCredentials | default dict) $c | default dict }}
{{- if $own.username }}
{{- if not $own.password }}
{{- fail (printf "mqtt.serviceCredentials.%s.password is required with its username %s" $c $hint) }}
{{- end }}
{{- else if not (and $m.username $m.password) }}
{{- fail (printf "mqtt.serviceCredentials.%s is required (or the shared mqtt.username and mqtt.password, or mqtt.existingSecret): the broker must not take anonymous clients %s" $c $hint) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
