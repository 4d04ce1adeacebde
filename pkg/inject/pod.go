package inject

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/pkg/proxyconf"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Owner is the workload a pod belongs to, for the linkerd.io/proxy-<kind> label. Kind is the
// Kubernetes kind ("Deployment", "Job"); an empty Kind adds no owner label.
type Owner struct {
	Kind string
	Name string
}

const (
	identityDir       = "/var/run/linkerd/identity/end-entity"
	tokenDir          = "/var/run/secrets/tokens"
	tokenAudience     = "identity.l5d.io"
	tokenExpiry       = 86400
	awaitBinary       = "/usr/lib/linkerd/linkerd-await"
	awaitTimeout      = "--timeout=2m"
	volumeDefaultMode = 420
)

// InjectPodSpec injects the proxy into a pod (or pod template): meta and spec are changed in
// place. mode is ModeEnabled or ModeIngress (see Decide, which callers run first); ns supplies
// namespace-level config annotations and the workload namespace label; owner the
// linkerd.io/proxy-<kind> label. On error (an annotation that cannot be used, named in the
// error as an *AnnotationError) meta and spec are left unchanged. It applies what Additions
// returns.
func (v *Values) InjectPodSpec(ns Namespace, owner Owner, mode Mode, meta *metav1.ObjectMeta, spec *corev1.PodSpec) error {
	a, err := v.Additions(ns, owner, mode, meta, spec)
	if err != nil {
		return err
	}
	a.Apply(meta, spec)
	return nil
}

// Additions is what injection adds to a pod; nothing else of the pod changes. The
// admission webhook writes it as a JSON patch without encoding the pod, InjectPodSpec
// applies it (Apply).
type Additions struct {
	// InitContainers go in front of the pod's init containers (linkerd-init or the
	// network validator, then the proxy when it runs as a native sidecar).
	InitContainers []corev1.Container
	// Containers go in front of the pod's containers (the proxy, as a classic sidecar);
	// AppendContainers after them (the debug sidecar).
	Containers, AppendContainers []corev1.Container
	// Volumes go after the pod's volumes.
	Volumes []corev1.Volume
	// Annotations and Labels are set on the pod, replacing the values it has for them.
	Annotations, Labels map[string]string
}

// Apply adds a to meta and spec.
func (a *Additions) Apply(meta *metav1.ObjectMeta, spec *corev1.PodSpec) {
	if len(a.InitContainers) > 0 {
		spec.InitContainers = append(slices.Clip(a.InitContainers), spec.InitContainers...)
	}
	if len(a.Containers) > 0 {
		spec.Containers = append(slices.Clip(a.Containers), spec.Containers...)
	}
	spec.Containers = append(spec.Containers, a.AppendContainers...)
	spec.Volumes = append(spec.Volumes, a.Volumes...)
	if meta.Annotations == nil {
		meta.Annotations = make(map[string]string, len(a.Annotations))
	}
	maps.Copy(meta.Annotations, a.Annotations)
	if meta.Labels == nil {
		meta.Labels = make(map[string]string, len(a.Labels))
	}
	maps.Copy(meta.Labels, a.Labels)
}

// Additions returns what InjectPodSpec adds to a pod with meta and spec (which it reads
// and does not change: the annotations, the namespace, and the ports of the containers and
// init containers are all it reads of them), with the same arguments and errors.
func (v *Values) Additions(ns Namespace, owner Owner, mode Mode, meta *metav1.ObjectMeta, spec *corev1.PodSpec) (*Additions, error) {
	if err := v.Validate(); err != nil {
		return nil, fmt.Errorf("injector values: %w", err)
	}
	named := map[string]int32{}
	var inbound []int
	seen := map[int32]bool{}
	for _, list := range [][]corev1.Container{spec.Containers, spec.InitContainers} {
		for _, c := range list {
			for _, p := range c.Ports {
				if p.Name != "" {
					named[p.Name] = p.ContainerPort
				}
				if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP || seen[p.ContainerPort] {
					continue
				}
				seen[p.ContainerPort] = true
				inbound = append(inbound, int(p.ContainerPort))
			}
		}
	}
	sort.Ints(inbound)
	cfg, err := v.resolve(lookup{pod: meta.Annotations, ns: ns.Annotations}, named)
	if err != nil {
		return nil, err
	}

	if !cfg.nativeSidecar && (owner.Kind == "Job" || owner.Kind == "CronJob") {
		// A classic sidecar never exits on its own: let the job stop it with POST /shutdown
		// on the admin port once its work is done.
		cfg.shutdownEndpoint = true
	}
	a := &Additions{}
	proxy := v.proxyContainer(cfg, mode, inbound)
	initC := v.initContainer(cfg)
	if cfg.nativeSidecar {
		always := corev1.ContainerRestartPolicyAlways
		proxy.RestartPolicy = &always
		// The kubelet starts the next container only once this probe passes: the app never
		// runs before the proxy is ready, and the proxy stops after it.
		proxy.StartupProbe = &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(cfg.adminPort), Scheme: corev1.URISchemeHTTP}},
			TimeoutSeconds:   1,
			PeriodSeconds:    1,
			SuccessThreshold: 1,
			FailureThreshold: 120,
		}
		a.InitContainers = []corev1.Container{initC, proxy}
	} else {
		if cfg.await {
			await := []string{awaitBinary, awaitTimeout}
			if cfg.adminPort != ProxyAdminPort {
				await = append(await, fmt.Sprintf("--port=%d", cfg.adminPort))
			}
			proxy.Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: await}}}
		}
		if cfg.waitBeforeExit > 0 {
			if proxy.Lifecycle == nil {
				proxy.Lifecycle = &corev1.Lifecycle{}
			}
			proxy.Lifecycle.PreStop = &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: cfg.waitBeforeExit}}
		}
		a.InitContainers = []corev1.Container{initC}
		a.Containers = []corev1.Container{proxy}
	}
	if cfg.debugSidecar {
		a.AppendContainers = []corev1.Container{{
			Name:                     DebugContainerName,
			Image:                    cfg.debugImage,
			ImagePullPolicy:          cfg.debugPullPolicy,
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		}}
	}
	mode420 := int32(volumeDefaultMode)
	expiry := int64(tokenExpiry)
	a.Volumes = make([]corev1.Volume, 0, 3)
	if !v.CNIEnabled { // linkerd-init's lock directory
		a.Volumes = append(a.Volumes, corev1.Volume{Name: VolumeXtablesLock, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	}
	a.Volumes = append(a.Volumes,
		corev1.Volume{Name: VolumeIdentityEndEntity, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
		corev1.Volume{Name: VolumeIdentityToken, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			DefaultMode: &mode420,
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: tokenAudience, ExpirationSeconds: &expiry, Path: VolumeIdentityToken,
			}}},
		}}},
	)

	a.Annotations = map[string]string{
		AnnotationCreatedBy:       v.CreatedBy,
		AnnotationProxyVersion:    proxyVersionOf(cfg.proxyImage),
		AnnotationTrustRootSHA256: v.TrustRootSHA256(),
		AnnotationIdentityMode:    "default",
	}
	if _, ok := meta.Annotations[AnnotationOpaquePorts]; !ok {
		// The destination controller reads the pod's annotation only: give it the ports the
		// proxy treats as opaque, as Linkerd's injector does.
		if _, fromNS := ns.Annotations[AnnotationOpaquePorts]; fromNS {
			a.Annotations[AnnotationOpaquePorts] = cfg.opaquePorts
		} else if exposed := exposedOpaquePorts(v.OpaquePorts, inbound); exposed != "" {
			a.Annotations[AnnotationOpaquePorts] = exposed
		}
	}
	if _, ok := meta.Annotations[AnnotationInject]; !ok {
		a.Annotations[AnnotationInject] = string(mode)
	}
	a.Labels = map[string]string{LabelControlPlaneNS: v.ControlPlaneNamespace}
	if owner.Kind != "" && owner.Name != "" {
		a.Labels[LabelProxyOwnerPrefix+strings.ToLower(owner.Kind)] = owner.Name
	}
	if nsName := ns.Name; nsName != "" {
		a.Labels[LabelWorkloadNS] = nsName
	} else if meta.Namespace != "" {
		a.Labels[LabelWorkloadNS] = meta.Namespace
	}
	return a, nil
}

// exposedOpaquePorts lists, comma-separated, the container ports (sorted) that the port
// list defaults (already validated) holds; "" when none.
func exposedOpaquePorts(defaults string, containerPorts []int) string {
	list, err := proxyconf.ParsePorts(defaults)
	if err != nil {
		return ""
	}
	var parts []string
	for _, p := range containerPorts {
		if p > 0 && p <= 65535 && list.Contains(uint16(p)) {
			parts = append(parts, strconv.Itoa(p))
		}
	}
	return strings.Join(parts, ",")
}

// detectTimeoutDisabled is the detect timeout Linkerd writes when an annotation disables it.
const detectTimeoutDisabled = "365d"

// profileSuffixes is LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES: the cluster's service
// suffix, or "." (every name) when external profiles are enabled.
func profileSuffixes(external bool, clusterDomain string) string {
	if external {
		return "."
	}
	return "svc." + clusterDomain + "."
}

// mergeEnv appends extra to env; an extra variable already in env replaces it in place.
func mergeEnv(env, extra []corev1.EnvVar) []corev1.EnvVar {
	for _, e := range extra {
		i := slices.IndexFunc(env, func(x corev1.EnvVar) bool { return x.Name == e.Name })
		if i >= 0 {
			env[i] = e
		} else {
			env = append(env, e)
		}
	}
	return env
}

// proxyVersionOf is the tag of an image reference, or "" when it has none.
func proxyVersionOf(image string) string {
	last := image[strings.LastIndex(image, "/")+1:]
	if i := strings.LastIndex(last, ":"); i >= 0 {
		return last[i+1:]
	}
	return ""
}

func (v *Values) svc(name string, port int) string {
	return fmt.Sprintf("%s.%s.svc.%s.:%d", name, v.ControlPlaneNamespace, v.ClusterDomain, port)
}

func (v *Values) identity(sa string) string {
	return certs.WorkloadIdentity(sa, v.ControlPlaneNamespace, v.ControlPlaneNamespace, v.TrustDomain)
}

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
}

// durationOr formats d as ms does, or returns def (Linkerd's default, as its chart writes
// it) when d is not set.
func durationOr(d time.Duration, def string) string {
	if d <= 0 {
		return def
	}
	return ms(d)
}

func ms(d interface{ Milliseconds() int64 }) string {
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

func (v *Values) proxyContainer(c *proxyConfig, mode Mode, inbound []int) corev1.Container {
	val := func(name, value string) corev1.EnvVar { return corev1.EnvVar{Name: name, Value: value} }
	env := []corev1.EnvVar{
		fieldEnv("_pod_name", "metadata.name"),
		fieldEnv("_pod_ns", "metadata.namespace"),
		fieldEnv("_pod_uid", "metadata.uid"),
		fieldEnv("_pod_nodeName", "spec.nodeName"),
		val("_pod_containerName", ProxyContainerName),
		val(proxyconf.EnvShutdownEndpointEnabled, strconv.FormatBool(c.shutdownEndpoint)),
		val(proxyconf.EnvLog, c.logLevel),
		val(proxyconf.EnvLogFormat, c.logFormat),
		val(proxyconf.EnvDestinationAddr, v.svc("linkerd-dst-headless", 8086)),
		val(proxyconf.EnvDestinationProfileNetworks, v.ClusterNetworks),
		val(proxyconf.EnvPolicyAddr, v.svc("linkerd-policy", 8090)),
		val(proxyconf.EnvPolicyWorkload, `{"ns":"$(_pod_ns)", "pod":"$(_pod_name)"}`+"\n"),
		val(proxyconf.EnvInboundDefaultPolicy, c.inboundPolicy),
		val(proxyconf.EnvPolicyClusterNetworks, v.ClusterNetworks),
		// Linkerd's defaults for its control-plane streams; this proxy lists them as
		// unsupported (proxy/config), Linkerd's proxy honours them.
		val(proxyconf.EnvControlStreamInitialTimeout, "3s"),
		val(proxyconf.EnvControlStreamIdleTimeout, "5m"),
		val(proxyconf.EnvControlStreamLifetime, "1h"),
		val(proxyconf.EnvInboundConnectTimeout, ms(c.inboundTimeout)),
		val(proxyconf.EnvOutboundConnectTimeout, ms(c.outboundTimeout)),
		val(proxyconf.EnvOutboundDiscoveryIdle, durationOr(c.outboundDiscovery, "5s")),
		val(proxyconf.EnvInboundDiscoveryIdle, durationOr(c.inboundDiscovery, "90s")),
		val(proxyconf.EnvControlListenAddr, fmt.Sprintf("0.0.0.0:%d", c.controlPort)),
		val(proxyconf.EnvAdminListenAddr, fmt.Sprintf("0.0.0.0:%d", c.adminPort)),
		// The singular name is what proxies before Linkerd's edge-24.4.5 read.
		val(proxyconf.EnvOutboundListenAddr, fmt.Sprintf("127.0.0.1:%d", c.outboundPort)),
		val(proxyconf.EnvOutboundListenAddrs, fmt.Sprintf("127.0.0.1:%d", c.outboundPort)),
		val(proxyconf.EnvInboundListenAddr, fmt.Sprintf("0.0.0.0:%d", c.inboundPort)),
		fieldEnv(proxyconf.EnvInboundIPs, "status.podIPs"),
	}
	if c.requireIdentityPorts != "" {
		env = append(env, val(proxyconf.EnvInboundPortsRequireID, c.requireIdentityPorts))
	}
	if c.podInboundPorts != "" {
		env = append(env, val(proxyconf.EnvInboundPorts, c.podInboundPorts))
	} else if len(inbound) > 0 {
		parts := make([]string, len(inbound))
		for i, p := range inbound {
			parts[i] = strconv.Itoa(p)
		}
		env = append(env, val(proxyconf.EnvInboundPorts, strings.Join(parts, ",")))
	}
	env = append(env,
		val(proxyconf.EnvDestinationProfileSuffixes, profileSuffixes(c.externalProfiles, v.ClusterDomain)),
		val(proxyconf.EnvInboundAcceptKeepalive, "10000ms"),
		val(proxyconf.EnvOutboundConnectKeepalive, "10000ms"),
		val(proxyconf.EnvInboundAcceptUserTimeout, "30s"),
		val(proxyconf.EnvOutboundConnectUserTimeout, "30s"),
		val(proxyconf.EnvInboundHTTP2KeepAliveInterval, "10s"),
		val(proxyconf.EnvInboundHTTP2KeepAliveTimeout, "3s"),
		val(proxyconf.EnvOutboundHTTP2KeepAliveInterval, "10s"),
		val(proxyconf.EnvOutboundHTTP2KeepAliveTimeout, "3s"),
	)
	if c.opaquePorts != "" {
		env = append(env, val(proxyconf.EnvInboundDisableDetection, c.opaquePorts))
	}
	env = append(env, val(proxyconf.EnvDestinationContext, `{"ns":"$(_pod_ns)", "nodeName":"$(_pod_nodeName)", "pod":"$(_pod_name)"}`+"\n"))
	if c.cores > 0 {
		env = append(env, val(proxyconf.EnvCores, strconv.FormatInt(c.cores, 10)))
	}
	if c.cpuRatio != "" {
		env = append(env, val(proxyconf.EnvCoresMaxRatio, c.cpuRatio))
	}
	for _, d := range []struct {
		name string
		dur  time.Duration
	}{
		{proxyconf.EnvShutdownGracePeriod, c.shutdownGrace},
	} {
		if d.dur > 0 {
			env = append(env, val(d.name, ms(d.dur)))
		}
	}
	if c.disableInboundDetect {
		env = append(env, val(proxyconf.EnvInboundDetectTimeout, detectTimeoutDisabled))
	}
	if c.disableOutboundDetect {
		env = append(env, val(proxyconf.EnvOutboundDetectTimeout, detectTimeoutDisabled))
	}
	env = append(env, val(proxyconf.EnvMetricsHostnameLabels, strconv.FormatBool(c.hostnameLabels)))
	if c.accessLog != "" {
		env = append(env, val(proxyconf.EnvAccessLog, c.accessLog))
	}
	if mode == ModeIngress {
		env = append(env, val(proxyconf.EnvIngressMode, "true"))
	}
	if c.gateway {
		// The multicluster gateway: the names it may forward to, as Linkerd's injector.
		env = append(env, val(proxyconf.EnvInboundGatewaySuffixes, "svc."+v.ClusterDomain+"."))
	}
	env = append(env,
		fieldEnv("_pod_sa", "spec.serviceAccountName"),
		val("_l5d_ns", v.ControlPlaneNamespace),
		val("_l5d_trustdomain", v.TrustDomain),
		val(proxyconf.EnvIdentityDir, identityDir),
		val(proxyconf.EnvIdentityTrustAnchors, v.IdentityTrustAnchorsPEM),
		val(proxyconf.EnvIdentityTokenFile, tokenDir+"/"+VolumeIdentityToken),
		val(proxyconf.EnvIdentityAddr, v.svc("linkerd-identity-headless", 8080)),
		val(proxyconf.EnvIdentityLocalName, "$(_pod_sa).$(_pod_ns).serviceaccount.identity."+v.ControlPlaneNamespace+"."+v.TrustDomain),
		val(proxyconf.EnvIdentityName, v.identity("linkerd-identity")),
		val(proxyconf.EnvDestinationName, v.identity("linkerd-destination")),
		val(proxyconf.EnvPolicyName, v.identity("linkerd-destination")),
	)
	env = mergeEnv(env, c.additionalEnv)
	probe := func(path string, delay int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(c.adminPort), Scheme: corev1.URISchemeHTTP}},
			InitialDelaySeconds: delay, TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3,
		}
	}
	no, yes := false, true
	uid := c.uid
	res := c.resources
	var gid *int64
	if c.gid >= 0 {
		g := c.gid
		gid = &g
	}
	return corev1.Container{
		Name:            ProxyContainerName,
		Image:           c.proxyImage,
		ImagePullPolicy: c.pullPolicy,
		Env:             env,
		Ports: []corev1.ContainerPort{
			{Name: PortNameProxy, ContainerPort: c.inboundPort, Protocol: corev1.ProtocolTCP},
			{Name: PortNameAdmin, ContainerPort: c.adminPort, Protocol: corev1.ProtocolTCP},
		},
		LivenessProbe:  probe("/live", 10),
		ReadinessProbe: probe("/ready", 2),
		Resources:      res,
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: &no,
			ReadOnlyRootFilesystem:   &yes,
			RunAsUser:                &uid,
			RunAsGroup:               gid,
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		VolumeMounts: []corev1.VolumeMount{
			{Name: VolumeIdentityEndEntity, MountPath: identityDir},
			{Name: VolumeIdentityToken, MountPath: tokenDir},
		},
	}
}

// validatorBinary is the network validator's path in the proxy image.
const validatorBinary = "/usr/lib/linkerd/linkerd-network-validator"

// initContainer is linkerd-init, or in CNI mode the network validator.
func (v *Values) initContainer(c *proxyConfig) corev1.Container {
	if v.CNIEnabled {
		return v.validatorContainer(c)
	}
	inIgnore := fmt.Sprintf("%d,%d", c.controlPort, c.adminPort)
	if c.skipInbound != "" {
		inIgnore += "," + c.skipInbound
	}
	args := []string{
		"--incoming-proxy-port", strconv.Itoa(int(c.inboundPort)),
		"--outgoing-proxy-port", strconv.Itoa(int(c.outboundPort)),
		"--proxy-uid", strconv.FormatInt(c.uid, 10),
		"--inbound-ports-to-ignore", inIgnore,
		"--iptables-mode", v.IptablesMode,
	}
	if c.skipOutbound != "" {
		args = append(args, "--outbound-ports-to-ignore", c.skipOutbound)
	}
	if c.skipSubnets != "" {
		args = append(args, "--subnets-to-ignore", c.skipSubnets)
	}
	if c.gid >= 0 {
		args = append(args, "--proxy-gid", strconv.FormatInt(c.gid, 10))
	}
	no, yes := false, true
	nobody := int64(65534)
	sc := &corev1.SecurityContext{
		AllowPrivilegeEscalation: &no,
		Capabilities:             &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}},
		Privileged:               &no,
		ReadOnlyRootFilesystem:   &yes,
		RunAsNonRoot:             &yes,
		RunAsUser:                &nobody,
	}
	if c.closeWaitSecs > 0 {
		// Writing the conntrack sysctl needs a privileged root container, as in Linkerd.
		args = append(args, "--timeout-close-wait-secs", strconv.FormatInt(c.closeWaitSecs, 10))
		root := int64(0)
		sc.Privileged, sc.AllowPrivilegeEscalation, sc.RunAsNonRoot, sc.RunAsUser = &yes, &yes, &no, &root
	}
	return corev1.Container{
		Name:                     InitContainerName,
		Image:                    c.initImage,
		ImagePullPolicy:          c.pullPolicy,
		Args:                     args,
		Resources:                *v.InitResources.DeepCopy(),
		SecurityContext:          sc,
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		VolumeMounts:             []corev1.VolumeMount{{Name: VolumeXtablesLock, MountPath: "/run"}},
	}
}

// validatorContainer checks, before the proxy starts, that the linkerd-cni plugin
// redirects the pod's traffic (it listens on the proxy's outbound port), and fails the pod
// with a message naming linkerd-cni when it does not. It runs as an ordinary user with no
// capability: the proxy's user would be exempt from redirection.
func (v *Values) validatorContainer(c *proxyConfig) corev1.Container {
	no, yes := false, true
	nobody := int64(65534)
	return corev1.Container{
		Name:            ValidatorContainerName,
		Image:           c.proxyImage,
		ImagePullPolicy: c.pullPolicy,
		Command:         []string{validatorBinary},
		Args: []string{
			"--log-format", "plain",
			"--log-level", "debug",
			"--listen-addr", fmt.Sprintf("0.0.0.0:%d", ProxyOutboundPort),
			"--timeout", "10s",
		},
		Resources: *v.InitResources.DeepCopy(),
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: &no,
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			Privileged:               &no,
			ReadOnlyRootFilesystem:   &yes,
			RunAsNonRoot:             &yes,
			RunAsUser:                &nobody,
			RunAsGroup:               &nobody,
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}
