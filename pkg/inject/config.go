package inject

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/l5d-go/l5d/pkg/proxyconf"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// proxyConfig is the per-pod configuration: Values with every annotation override applied.
type proxyConfig struct {
	proxyImage, initImage, debugImage string
	pullPolicy                        corev1.PullPolicy
	uid                               int64
	logLevel, logFormat               string
	resources                         corev1.ResourceRequirements
	cores                             int64 // 0: unset
	skipInbound, skipOutbound         string
	skipSubnets                       string
	opaquePorts                       string
	inboundTimeout, outboundTimeout   time.Duration
	inboundPolicy                     string
	await                             bool
	accessLog                         string
	debugSidecar                      bool
	nativeSidecar                     bool
	waitBeforeExit                    int64
	shutdownEndpoint                  bool

	debugPullPolicy                                   corev1.PullPolicy
	gid                                               int64 // -1: unset
	adminPort, controlPort, inboundPort, outboundPort int32
	podInboundPorts                                   string // "": the container ports
	requireIdentityPorts                              string // inbound ports refusing clients without a mesh identity
	closeWaitSecs                                     int64
	cpuRatio                                          string // "": unset
	inboundDiscovery, outboundDiscovery               time.Duration
	disableInboundDetect, disableOutboundDetect       bool
	shutdownGrace                                     time.Duration
	externalProfiles                                  bool
	hostnameLabels                                    bool
	gateway                                           bool
	additionalEnv                                     []corev1.EnvVar
}

// AnnotationError is an annotation whose value cannot be used. Injection is refused as a
// whole: nothing is half-injected.
type AnnotationError struct {
	Key, Value string
	Err        error
}

// Error names the annotation, its value and what is wrong with it.
func (e *AnnotationError) Error() string {
	return fmt.Sprintf("annotation %s=%q: %v", e.Key, e.Value, e.Err)
}

// Unwrap returns the parse error.
func (e *AnnotationError) Unwrap() error { return e.Err }

// lookup finds a config annotation: the pod's value wins over the namespace's.
type lookup struct{ pod, ns map[string]string }

func (l lookup) get(key string) (string, bool) {
	if v, ok := l.pod[key]; ok {
		return strings.TrimSpace(v), true
	}
	if v, ok := l.ns[key]; ok {
		return strings.TrimSpace(v), true
	}
	return "", false
}

// resolve applies every override to v, collecting one error per bad annotation.
func (v *Values) resolve(l lookup, containerPorts map[string]int32) (*proxyConfig, error) {
	c := &proxyConfig{
		pullPolicy:      v.ImagePullPolicy,
		uid:             v.ProxyUID,
		logLevel:        v.LogLevel,
		logFormat:       v.LogFormat,
		skipInbound:     v.SkipInboundPorts,
		skipOutbound:    v.SkipOutboundPorts,
		opaquePorts:     v.OpaquePorts,
		inboundTimeout:  v.InboundConnectTimeout,
		outboundTimeout: v.OutboundConnectTimeout,
		inboundPolicy:   v.DefaultInboundPolicy,
		await:           v.Await,
		nativeSidecar:   v.NativeSidecar,
		resources:       *v.ProxyResources.DeepCopy(),
		gid:             -1,
		adminPort:       ProxyAdminPort,
		controlPort:     ProxyControlPort,
		inboundPort:     ProxyInboundPort,
		outboundPort:    ProxyOutboundPort,
	}
	var errs []error
	bad := func(key, val string, err error) {
		errs = append(errs, &AnnotationError{Key: key, Value: val, Err: err})
	}
	str := func(key string, dst *string) {
		if val, ok := l.get(key); ok {
			if val == "" {
				bad(key, val, errors.New("empty value"))
				return
			}
			*dst = val
		}
	}
	boolean := func(key string, dst *bool) {
		if val, ok := l.get(key); ok {
			b, err := strconv.ParseBool(val)
			if err != nil {
				bad(key, val, errors.New("not true or false"))
				return
			}
			*dst = b
		}
	}
	onOff := func(key string, dst *bool) {
		if val, ok := l.get(key); ok {
			switch val {
			case "enabled":
				*dst = true
			case "disabled":
				*dst = false
			default:
				bad(key, val, errors.New("not enabled or disabled"))
			}
		}
	}
	duration := func(key string, dst *time.Duration) {
		if val, ok := l.get(key); ok {
			d, err := time.ParseDuration(val)
			if err != nil || d <= 0 {
				bad(key, val, errors.New("not a positive duration such as 100ms or 1s"))
				return
			}
			*dst = d
		}
	}
	portList := func(key string, dst *string) {
		if val, ok := l.get(key); ok {
			list, err := proxyconf.ParsePorts(val)
			if err != nil {
				bad(key, val, err)
				return
			}
			*dst = formatPorts(list)
		}
	}

	proxyImage, proxyVersion := v.ProxyImage, v.ProxyVersion
	str(AnnotationProxyImage, &proxyImage)
	str(AnnotationProxyVersionOverride, &proxyVersion)
	c.proxyImage = imageRef(proxyImage, proxyVersion)
	initImage, initVersion := v.InitImage, v.InitVersion
	str(AnnotationInitImage, &initImage)
	str(AnnotationInitImageVersion, &initVersion)
	c.initImage = imageRef(initImage, initVersion)
	debugImage, debugVersion := v.DebugImage, v.DebugVersion
	str(AnnotationDebugImage, &debugImage)
	str(AnnotationDebugImageVersion, &debugVersion)
	c.debugImage = imageRef(debugImage, debugVersion)

	pullPolicy := func(key string, dst *corev1.PullPolicy) {
		if val, ok := l.get(key); ok {
			switch p := corev1.PullPolicy(val); p {
			case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
				*dst = p
			default:
				bad(key, val, errors.New("not Always, IfNotPresent or Never"))
			}
		}
	}
	pullPolicy(AnnotationImagePullPolicy, &c.pullPolicy)
	c.debugPullPolicy = c.pullPolicy
	pullPolicy(proxyconf.AnnDebugImagePullPolicy, &c.debugPullPolicy)
	id := func(key string, dst *int64) {
		if val, ok := l.get(key); ok {
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n < 0 {
				bad(key, val, errors.New("not a non-negative integer"))
			} else {
				*dst = n
			}
		}
	}
	id(AnnotationProxyUID, &c.uid)
	id(proxyconf.AnnProxyGID, &c.gid)
	port := func(key string, dst *int32) {
		if val, ok := l.get(key); ok {
			n, err := strconv.ParseUint(val, 10, 16)
			if err != nil || n == 0 {
				bad(key, val, errors.New("not a port from 1 to 65535"))
			} else {
				*dst = int32(n)
			}
		}
	}
	port(proxyconf.AnnAdminPort, &c.adminPort)
	port(proxyconf.AnnControlPort, &c.controlPort)
	port(proxyconf.AnnInboundPort, &c.inboundPort)
	port(proxyconf.AnnOutboundPort, &c.outboundPort)
	if ps := []int32{c.adminPort, c.controlPort, c.inboundPort, c.outboundPort}; len(map[int32]bool{ps[0]: true, ps[1]: true, ps[2]: true, ps[3]: true}) != 4 {
		errs = append(errs, fmt.Errorf("proxy ports must differ: admin %d, control %d, inbound %d, outbound %d", ps[0], ps[1], ps[2], ps[3]))
	}
	portList(proxyconf.AnnPodInboundPorts, &c.podInboundPorts)
	portList(proxyconf.AnnRequireIdentityInboundPorts, &c.requireIdentityPorts)
	if val, ok := l.get(proxyconf.AnnCloseWaitTimeout); ok {
		d, err := time.ParseDuration(val)
		if err != nil || d < time.Second || d%time.Second != 0 {
			bad(proxyconf.AnnCloseWaitTimeout, val, errors.New("not a whole number of seconds such as 1m or 3600s"))
		} else {
			c.closeWaitSecs = int64(d / time.Second)
		}
	}
	if val, ok := l.get(proxyconf.AnnProxyCPURatioLimit); ok {
		r, err := strconv.ParseFloat(val, 64)
		if err != nil || !(r > 0 && r <= 1) {
			bad(proxyconf.AnnProxyCPURatioLimit, val, errors.New("not a ratio above 0 and at most 1, such as 0.2"))
		} else {
			c.cpuRatio = strconv.FormatFloat(r, 'f', -1, 64)
		}
	}
	duration(proxyconf.AnnInboundDiscoveryCacheTimeout, &c.inboundDiscovery)
	duration(proxyconf.AnnOutboundDiscoveryCacheTimeout, &c.outboundDiscovery)
	duration(proxyconf.AnnShutdownGracePeriod, &c.shutdownGrace)
	boolean(proxyconf.AnnDisableInboundDetectTimeout, &c.disableInboundDetect)
	boolean(proxyconf.AnnDisableOutboundDetectTimeout, &c.disableOutboundDetect)
	boolean(proxyconf.AnnEnableExternalProfiles, &c.externalProfiles)
	boolean(proxyconf.AnnProxyMetricsHostnameLabels, &c.hostnameLabels)
	boolean(proxyconf.AnnEnableGateway, &c.gateway)
	if val, ok := l.get(proxyconf.AnnProxyLogHTTPHeaders); ok && val != "off" && val != "insecure" {
		// l5d's proxy never writes header values to its log; both values are accepted.
		bad(proxyconf.AnnProxyLogHTTPHeaders, val, errors.New("not off or insecure"))
	}
	if val, ok := l.get(proxyconf.AnnProxyAdditionalEnv); ok {
		env, err := parseAdditionalEnv(val)
		if err != nil {
			bad(proxyconf.AnnProxyAdditionalEnv, val, err)
		} else {
			c.additionalEnv = env
		}
	}
	str(AnnotationProxyLogLevel, &c.logLevel)
	if val, ok := l.get(AnnotationProxyLogFormat); ok {
		if err := checkLogFormat(val); err != nil {
			bad(AnnotationProxyLogFormat, val, err)
		} else {
			c.logFormat = val
		}
	}

	quantities := []struct {
		key  string
		name corev1.ResourceName
		lim  bool
	}{
		{AnnotationProxyCPURequest, corev1.ResourceCPU, false},
		{AnnotationProxyCPULimit, corev1.ResourceCPU, true},
		{AnnotationProxyMemoryRequest, corev1.ResourceMemory, false},
		{AnnotationProxyMemoryLimit, corev1.ResourceMemory, true},
		{AnnotationProxyEphemeralRequest, corev1.ResourceEphemeralStorage, false},
		{AnnotationProxyEphemeralLimit, corev1.ResourceEphemeralStorage, true},
	}
	for _, q := range quantities {
		val, ok := l.get(q.key)
		if !ok {
			continue
		}
		qty, err := resource.ParseQuantity(val)
		if err != nil || qty.Sign() <= 0 {
			bad(q.key, val, errors.New("not a positive Kubernetes quantity such as 100m or 64Mi"))
			continue
		}
		list := &c.resources.Requests
		if q.lim {
			list = &c.resources.Limits
		}
		if *list == nil {
			*list = corev1.ResourceList{}
		}
		(*list)[q.name] = qty
	}
	for name, req := range c.resources.Requests {
		if lim, ok := c.resources.Limits[name]; ok && req.Cmp(lim) > 0 {
			errs = append(errs, fmt.Errorf("proxy %s request %s exceeds its limit %s", name, req.String(), lim.String()))
		}
	}
	if lim, ok := c.resources.Limits[corev1.ResourceCPU]; ok {
		c.cores = max(1, int64(math.Ceil(float64(lim.MilliValue())/1000)))
	}

	portList(AnnotationSkipInboundPorts, &c.skipInbound)
	portList(AnnotationSkipOutboundPorts, &c.skipOutbound)
	if val, ok := l.get(AnnotationSkipSubnets); ok {
		ps, err := proxyconf.ParseNetworks(val)
		if err != nil {
			bad(AnnotationSkipSubnets, val, err)
		} else {
			parts := make([]string, len(ps))
			for i, p := range ps {
				parts[i] = p.String()
			}
			c.skipSubnets = strings.Join(parts, ",")
		}
	}
	if val, ok := l.get(AnnotationOpaquePorts); ok {
		list, err := parseOpaquePorts(val, containerPorts)
		if err != nil {
			bad(AnnotationOpaquePorts, val, err)
		} else {
			c.opaquePorts = list
		}
	}
	duration(AnnotationInboundConnectTimeout, &c.inboundTimeout)
	duration(AnnotationOutboundConnectTimeout, &c.outboundTimeout)
	if val, ok := l.get(AnnotationDefaultInboundPolicy); ok {
		if err := checkPolicy(val); err != nil {
			bad(AnnotationDefaultInboundPolicy, val, err)
		} else {
			c.inboundPolicy = val
		}
	}
	onOff(AnnotationProxyAwait, &c.await)
	if val, ok := l.get(AnnotationAccessLog); ok {
		if val != "apache" && val != "json" {
			bad(AnnotationAccessLog, val, errors.New("not apache or json"))
		} else {
			c.accessLog = val
		}
	}
	boolean(AnnotationEnableDebugSidecar, &c.debugSidecar)
	// The GA key supersedes the beta one, which supersedes the deprecated alpha one.
	boolean(AnnotationNativeSidecarAlpha, &c.nativeSidecar)
	boolean(AnnotationNativeSidecarBeta, &c.nativeSidecar)
	boolean(AnnotationNativeSidecar, &c.nativeSidecar)
	onOff(AnnotationProxyAdminShutdown, &c.shutdownEndpoint)
	if val, ok := l.get(AnnotationWaitBeforeExitSeconds); ok {
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil || n < 0 {
			bad(AnnotationWaitBeforeExitSeconds, val, errors.New("not a non-negative number of seconds"))
		} else {
			c.waitBeforeExit = n
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// parseAdditionalEnv reads a JSON list of Kubernetes EnvVar objects (Helm's
// proxy.additionalEnv shape) naming LINKERD2_PROXY_* variables, each with a value or valueFrom.
func parseAdditionalEnv(val string) ([]corev1.EnvVar, error) {
	var env []corev1.EnvVar
	dec := json.NewDecoder(strings.NewReader(val))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf(`not a JSON list of env vars such as [{"name":"LINKERD2_PROXY_X","value":"1"}]: %w`, err)
	}
	for _, e := range env {
		if !strings.HasPrefix(e.Name, "LINKERD2_PROXY_") {
			return nil, fmt.Errorf("env var %q: only LINKERD2_PROXY_* variables may be added", e.Name)
		}
	}
	return env, nil
}

// parseOpaquePorts reads config.linkerd.io/opaque-ports with the mesh's one reader
// (numbers, ranges and names of the pod's container ports, names first) and, unlike the
// controllers, which skip a bad item as Linkerd does, refuses the value naming the first bad
// item: the injector is where a user hears about it.
func parseOpaquePorts(val string, named map[string]int32) (string, error) {
	list, skipped := proxyconf.ParseOpaquePorts(val, func(name string) (uint16, bool) {
		p, ok := named[name]
		return uint16(p), ok && p > 0 && p <= 65535
	})
	if len(skipped) > 0 {
		return "", fmt.Errorf("%w (not a port, a range or a container port name of the pod)", skipped[0])
	}
	return formatPorts(list), nil
}

// formatPorts writes a port list in canonical form: items sorted, as given ("25,8000-9000").
func formatPorts(list proxyconf.Ports) string {
	sorted := append(proxyconf.Ports(nil), list...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Lo < sorted[j].Lo })
	parts := make([]string, 0, len(sorted))
	for _, r := range sorted {
		if r.Lo == r.Hi {
			parts = append(parts, strconv.Itoa(int(r.Lo)))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", r.Lo, r.Hi))
		}
	}
	return strings.Join(parts, ",")
}

// imageRef joins an image name and a version tag; an image already naming a tag or digest
// after its last slash is used as is.
func imageRef(image, version string) string {
	last := image[strings.LastIndex(image, "/")+1:]
	if strings.ContainsAny(last, ":@") || version == "" {
		return image
	}
	return image + ":" + version
}

func mustQuantity(s string) resource.Quantity { return resource.MustParse(s) }
