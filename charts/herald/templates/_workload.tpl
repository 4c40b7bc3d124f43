{{/*
The objects every component has: ConfigMap data, Deployment, HPA, PDB. Each
component template calls them with (dict "root" $ "component" NAME); what only
the gateway has (downward API address, preStop drain, Pods-metric autoscaling)
is spelt out here under `eq $c "gateway"` rather than hidden in values.
*/}}

{{/* herald.configData: the component's non-secret environment. */}}
{{- define "herald.configData" -}}
{{- $root := .root -}}
{{- $c := .component -}}
{{- $v := index $root.Values $c -}}
{{- $ports := include "herald.ports" $c | fromYaml -}}
HERALD_LOG_FORMAT: {{ $root.Values.log.format | quote }}
HERALD_LOG_LEVEL: {{ $root.Values.log.level | quote }}
HERALD_ADMIN_LISTEN: {{ printf ":%d" (int $ports.admin) | quote }}
HERALD_DRAIN_DELAY: {{ include "herald.seconds" $v.drain.delaySeconds | quote }}
HERALD_DRAIN_TIMEOUT: {{ include "herald.seconds" $v.drain.timeoutSeconds | quote }}
{{- if eq $c "ingest" }}
HERALD_LISTEN: {{ printf ":%d" (int $ports.http) | quote }}
HERALD_PUBLIC_URL: {{ include "herald.publicURL" $root | quote }}
{{- /* dns:/// makes gRPC resolve every ready router (a headless Service) and balance over them. */}}
HERALD_ROUTER_ADDR: {{ printf "dns:///%s-router.%s.svc.%s:%d" (include "herald.fullname" $root) $root.Release.Namespace $root.Values.clusterDomain 8090 | quote }}
{{- end }}
{{- if eq $c "router" }}
HERALD_GRPC_LISTEN: {{ printf ":%d" (int $ports.grpc) | quote }}
{{- end }}
{{- if eq $c "gateway" }}
HERALD_LISTEN: {{ printf ":%d" (int $ports.websocket) | quote }}
HERALD_GRPC_LISTEN: {{ printf ":%d" (int $ports.grpc) | quote }}
HERALD_ENDPOINT_URL: {{ include "herald.publicURL" $root | quote }}
HERALD_DRAIN_WINDOW: {{ include "herald.seconds" $v.drain.windowSeconds | quote }}
{{- end }}
{{- if or (eq $c "router") (eq $c "gateway") }}
HERALD_LEASE_TTL: {{ $root.Values.leaseTTL | quote }}
HERALD_MAX_QUEUE_LEN: {{ include "herald.scalar" $root.Values.maxQueueLen | quote }}
{{- end }}
HERALD_REDIS_CLUSTER: {{ $root.Values.redis.cluster | toString | quote }}
HERALD_REDIS_PREFIX: {{ $root.Values.redis.prefix | quote }}
{{- range $k, $val := $v.config }}
{{ printf "HERALD_%s" ($k | upper | replace "-" "_") }}: {{ include "herald.scalar" $val | quote }}
{{- end }}
{{- end -}}

{{- define "herald.configMap" -}}
{{- $root := .root -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "herald.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "herald.componentLabels" . | nindent 4 }}
data:
  {{- include "herald.configData" . | nindent 2 }}
{{- end -}}

{{- define "herald.deployment" -}}
{{- $root := .root -}}
{{- $c := .component -}}
{{- $v := index $root.Values $c -}}
{{- $ports := include "herald.ports" $c | fromYaml -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "herald.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "herald.componentLabels" . | nindent 4 }}
spec:
  {{- if not $v.autoscaling.enabled }}
  replicas: {{ int $v.replicaCount }}
  {{- else }}
  {{- /* The autoscaler owns replicas. Helm 3 would reset a field it stops rendering
  to its default (1) when autoscaling is turned on for a running release, draining
  all but one pod; keeping the live count makes that upgrade a no-op for replicas.
  (`helm template` cannot look up, and renders none.) */}}
  {{- with lookup "apps/v1" "Deployment" $root.Release.Namespace (include "herald.componentName" .) }}
  replicas: {{ .spec.replicas }}
  {{- end }}
  {{- end }}
  revisionHistoryLimit: 5
  minReadySeconds: {{ include "herald.minReadySeconds" . }}
  {{- with $v.strategy }}
  strategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "herald.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "herald.componentLabels" . | nindent 8 }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include "herald.configData" . | sha256sum }}
        checksum/secret: {{ include "herald.secretData" $root | sha256sum }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "herald.serviceAccountName" $root }}
      automountServiceAccountToken: {{ $root.Values.serviceAccount.automountServiceAccountToken }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      terminationGracePeriodSeconds: {{ include "herald.terminationGracePeriod" . }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with include "herald.topologySpread" . }}
      topologySpreadConstraints:
        {{- . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ $c }}
          image: {{ include "herald.image" . }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          ports:
            {{- range $name, $port := $ports }}
            - name: {{ $name }}
              containerPort: {{ int $port }}
              protocol: TCP
            {{- end }}
          envFrom:
            - configMapRef:
                name: {{ include "herald.componentName" . }}
          env:
            {{- if or (eq $c "ingest") (eq $c "gateway") }}
            {{- include "herald.tokenKeysEnv" $root | nindent 12 }}
            {{- include "herald.postgresEnv" (dict "root" $root) | nindent 12 }}
            {{- end }}
            {{- include "herald.redisEnv" $root | nindent 12 }}
            {{- if eq $c "gateway" }}
            - name: POD_IP
              valueFrom:
                fieldRef:
                  fieldPath: status.podIP
            # Routers deliver to the gateway that owns a user agent at this address,
            # so it must be this pod's own, not a Service's.
            - name: HERALD_GRPC_ADVERTISE
              value: {{ $v.grpcAdvertise | quote }}
            {{- end }}
            {{- if and (eq $c "ingest") $v.tls.secretName }}
            - name: HERALD_TLS_CERT
              value: /etc/herald/tls/tls.crt
            - name: HERALD_TLS_KEY
              value: /etc/herald/tls/tls.key
            {{- end }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          startupProbe:
            {{- include "herald.httpProbe" (dict "path" "/livez" "timings" $v.startupProbe) | nindent 12 }}
          livenessProbe:
            {{- include "herald.httpProbe" (dict "path" "/livez" "timings" $v.livenessProbe) | nindent 12 }}
          # /readyz answers 503 from the first moment of a drain.
          readinessProbe:
            {{- include "herald.httpProbe" (dict "path" "/readyz" "timings" $v.readinessProbe) | nindent 12 }}
          {{- if and (eq $c "gateway") (eq $v.preStop "drain") }}
          lifecycle:
            # Starts the drain (readiness false, user agents told to reconnect over the
            # drain window) and answers once it is done; SIGTERM then ends the process.
            preStop:
              httpGet:
                path: /drain
                port: admin
          {{- end }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          {{- if and (eq $c "ingest") $v.tls.secretName }}
          volumeMounts:
            - name: tls
              mountPath: /etc/herald/tls
              readOnly: true
          {{- end }}
      {{- if and (eq $c "ingest") $v.tls.secretName }}
      volumes:
        # A kubernetes.io/tls Secret (cert-manager's Certificate makes one).
        - name: tls
          secret:
            secretName: {{ $v.tls.secretName }}
      {{- end }}
{{- end -}}

{{- define "herald.hpa" -}}
{{- $root := .root -}}
{{- $c := .component -}}
{{- $a := (index $root.Values $c).autoscaling -}}
{{- if $a.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "herald.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "herald.componentLabels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "herald.componentName" . }}
  minReplicas: {{ int $a.minReplicas }}
  maxReplicas: {{ int $a.maxReplicas }}
  metrics:
    {{- if eq $c "gateway" }}
    # Open WebSockets per pod, from the Prometheus Adapter (README: "Autoscaling gateways").
    - type: Pods
      pods:
        metric:
          name: {{ $a.connectionsMetric }}
        target:
          type: AverageValue
          averageValue: {{ include "herald.scalar" $a.connectionsPerPod | quote }}
    {{- end }}
    {{- if not (kindIs "invalid" $a.targetCPUUtilizationPercentage) }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ int $a.targetCPUUtilizationPercentage }}
    {{- end }}
  {{- with $a.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end -}}

{{- define "herald.pdb" -}}
{{- $root := .root -}}
{{- $p := (index $root.Values .component).podDisruptionBudget -}}
{{- if $p.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "herald.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "herald.componentLabels" . | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" $p.minAvailable) }}
  minAvailable: {{ $p.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $p.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "herald.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}

{{/* herald.ingress: a component's Ingress onto its Service's named port. */}}
{{- define "herald.ingress" -}}
{{- $root := .root -}}
{{- $in := (index $root.Values .component).ingress -}}
{{- $svc := include "herald.componentName" . -}}
{{- $port := .port -}}
{{- if $in.enabled }}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ $svc }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "herald.componentLabels" . | nindent 4 }}
  {{- with $in.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with $in.className }}
  ingressClassName: {{ . }}
  {{- end }}
  {{- with $in.tls }}
  tls:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  rules:
    {{- range $in.hosts }}
    - host: {{ .host | quote }}
      http:
        paths:
          {{- range .paths }}
          - path: {{ .path }}
            pathType: {{ .pathType }}
            backend:
              service:
                name: {{ $svc }}
                port:
                  name: {{ $port }}
          {{- end }}
    {{- end }}
{{- end }}
{{- end -}}
