package node

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// fieldValue is the downward-API value of fieldPath for pod (whose status already holds the
// IPs the agent gave it).
func fieldValue(pod *corev1.Pod, fieldPath string) (string, error) {
	if key, ok := subscript(fieldPath, "metadata.labels"); ok {
		return pod.Labels[key], nil
	}
	if key, ok := subscript(fieldPath, "metadata.annotations"); ok {
		return pod.Annotations[key], nil
	}
	switch fieldPath {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP":
		return pod.Status.PodIP, nil
	case "status.podIPs":
		ips := make([]string, len(pod.Status.PodIPs))
		for i, ip := range pod.Status.PodIPs {
			ips[i] = ip.IP
		}
		return strings.Join(ips, ","), nil
	case "status.hostIP":
		return pod.Status.HostIP, nil
	case "status.hostIPs":
		ips := make([]string, len(pod.Status.HostIPs))
		for i, ip := range pod.Status.HostIPs {
			ips[i] = ip.IP
		}
		return strings.Join(ips, ","), nil
	}
	return "", fmt.Errorf("field path %q is not supported", fieldPath)
}

// subscript parses "<prefix>['key']".
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "']")
}

// formatMap renders labels or annotations as the downward API does: key="value" lines,
// sorted, values quoted.
func formatMap(m map[string]string) string {
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%s", k, strconv.Quote(m[k]))
	}
	return b.String()
}

// resourceValue is the downward-API value of ref for a container of pod: its limit (the
// node's allocatable when unset) or request, divided by the divisor and rounded up.
func resourceValue(pod *corev1.Pod, defaultContainer string, ref *corev1.ResourceFieldSelector, allocatable corev1.ResourceList) (string, error) {
	name := ref.ContainerName
	if name == "" {
		name = defaultContainer
	}
	var c *corev1.Container
	for _, list := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range list {
			if list[i].Name == name {
				c = &list[i]
			}
		}
	}
	if c == nil {
		return "", fmt.Errorf("resourceFieldRef: no container %q", name)
	}
	kind, res, ok := strings.Cut(ref.Resource, ".")
	if !ok || (kind != "limits" && kind != "requests") {
		return "", fmt.Errorf("resourceFieldRef: resource %q is not supported", ref.Resource)
	}
	rn := corev1.ResourceName(res)
	var (
		q   resource.Quantity
		set bool
	)
	if kind == "limits" {
		q, set = c.Resources.Limits[rn]
		if !set {
			q = allocatable[rn]
		}
	} else {
		q, set = c.Resources.Requests[rn]
		if !set && rn != corev1.ResourceCPU && rn != corev1.ResourceMemory && rn != corev1.ResourceEphemeralStorage {
			return "", fmt.Errorf("resourceFieldRef: resource %q is not supported", ref.Resource)
		}
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if rn == corev1.ResourceCPU {
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
}

// serviceEnv returns the Docker-link style variables of the Services visible to pod:
// the default/kubernetes Service always, the pod's namespace's when enableServiceLinks is
// not false.
func (a *agent) serviceEnv(pod *corev1.Pod) (map[string]string, error) {
	var svcs []*corev1.Service
	if pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks {
		list, err := a.services.Services(pod.Namespace).List(labels.Everything())
		if err != nil {
			return nil, fmt.Errorf("listing services: %w", err)
		}
		svcs = append(svcs, list...)
	}
	if pod.Namespace != metav1.NamespaceDefault || !(pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks) {
		if k, err := a.services.Services(metav1.NamespaceDefault).Get("kubernetes"); err == nil {
			svcs = append(svcs, k)
		}
	}
	env := map[string]string{}
	for _, s := range svcs {
		if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == corev1.ClusterIPNone || len(s.Spec.Ports) == 0 {
			continue
		}
		prefix := strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
		ip := s.Spec.ClusterIP
		first := s.Spec.Ports[0]
		env[prefix+"_SERVICE_HOST"] = ip
		env[prefix+"_SERVICE_PORT"] = strconv.Itoa(int(first.Port))
		for _, p := range s.Spec.Ports {
			if p.Name != "" {
				env[prefix+"_SERVICE_PORT_"+strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_"))] = strconv.Itoa(int(p.Port))
			}
		}
		hostPort := ip
		if strings.Contains(ip, ":") {
			hostPort = "[" + ip + "]"
		}
		proto := strings.ToLower(string(first.Protocol))
		if proto == "" {
			proto = "tcp"
		}
		env[prefix+"_PORT"] = fmt.Sprintf("%s://%s:%d", proto, hostPort, first.Port)
		for _, p := range s.Spec.Ports {
			pr := strings.ToLower(string(p.Protocol))
			if pr == "" {
				pr = "tcp"
			}
			base := fmt.Sprintf("%s_PORT_%d_%s", prefix, p.Port, strings.ToUpper(pr))
			env[base] = fmt.Sprintf("%s://%s:%d", pr, hostPort, p.Port)
			env[base+"_PROTO"] = pr
			env[base+"_PORT"] = strconv.Itoa(int(p.Port))
			env[base+"_ADDR"] = ip
		}
	}
	return env, nil
}

// containerEnv is the environment of container c as the kubelet makes it: envFrom, then env
// (with $(VAR) expansion against what came before and the service variables), then the
// service variables not set otherwise. A missing ConfigMap, Secret or key that is not
// optional is an error (the container waits with CreateContainerConfigError).
func (a *agent) containerEnv(ctx context.Context, pod *corev1.Pod, c *corev1.Container) ([]string, error) {
	svcEnv, err := a.serviceEnv(pod)
	if err != nil {
		return nil, err
	}
	vars := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	for _, from := range c.EnvFrom {
		var data map[string]string
		switch {
		case from.ConfigMapRef != nil:
			cm, err := a.configMap(ctx, pod.Namespace, from.ConfigMapRef.Name, from.ConfigMapRef.Optional)
			if err != nil {
				return nil, fmt.Errorf("envFrom: %w", err)
			}
			if cm != nil {
				data = cm.Data
			}
		case from.SecretRef != nil:
			s, err := a.secret(ctx, pod.Namespace, from.SecretRef.Name, from.SecretRef.Optional)
			if err != nil {
				return nil, fmt.Errorf("envFrom: %w", err)
			}
			if s != nil {
				data = map[string]string{}
				for k, v := range s.Data {
					data[k] = string(v)
				}
			}
		}
		keys := slices.Sorted(maps.Keys(data))
		for _, k := range keys {
			set(from.Prefix+k, data[k])
		}
	}
	lookup := func(k string) (string, bool) {
		if v, ok := vars[k]; ok {
			return v, true
		}
		v, ok := svcEnv[k]
		return v, ok
	}
	for _, e := range c.Env {
		v, err := a.envValue(ctx, pod, c, e, lookup)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if v == nil {
			continue
		}
		set(e.Name, *v)
	}
	svcKeys := make([]string, 0, len(svcEnv))
	for k := range svcEnv {
		svcKeys = append(svcKeys, k)
	}
	sort.Strings(svcKeys)
	for _, k := range svcKeys {
		if _, ok := vars[k]; !ok {
			set(k, svcEnv[k])
		}
	}
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+vars[k])
	}
	return env, nil
}

// envValue resolves one env entry; nil means the variable is left out (an optional
// reference to something missing).
func (a *agent) envValue(ctx context.Context, pod *corev1.Pod, c *corev1.Container, e corev1.EnvVar, lookup func(string) (string, bool)) (*string, error) {
	if e.ValueFrom == nil {
		v := expand(e.Value, lookup)
		return &v, nil
	}
	vf := e.ValueFrom
	switch {
	case vf.FieldRef != nil:
		v, err := fieldValue(pod, vf.FieldRef.FieldPath)
		return &v, err
	case vf.ResourceFieldRef != nil:
		v, err := resourceValue(pod, c.Name, vf.ResourceFieldRef, a.allocatable())
		return &v, err
	case vf.ConfigMapKeyRef != nil:
		ref := vf.ConfigMapKeyRef
		cm, err := a.configMap(ctx, pod.Namespace, ref.Name, ref.Optional)
		if err != nil || cm == nil {
			return nil, err
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			if ref.Optional != nil && *ref.Optional {
				return nil, nil
			}
			return nil, fmt.Errorf("key %q not found in ConfigMap %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return &v, nil
	case vf.SecretKeyRef != nil:
		ref := vf.SecretKeyRef
		s, err := a.secret(ctx, pod.Namespace, ref.Name, ref.Optional)
		if err != nil || s == nil {
			return nil, err
		}
		b, ok := s.Data[ref.Key]
		if !ok {
			if ref.Optional != nil && *ref.Optional {
				return nil, nil
			}
			return nil, fmt.Errorf("key %q not found in Secret %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		v := string(b)
		return &v, nil
	}
	return nil, fmt.Errorf("valueFrom without a supported source")
}

// configMap gets a ConfigMap; a missing optional one is nil without error.
func (a *agent) configMap(ctx context.Context, ns, name string, optional *bool) (*corev1.ConfigMap, error) {
	cm, err := a.cfg.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && optional != nil && *optional {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config map %s/%s: %w", ns, name, err)
	}
	return cm, nil
}

// secret gets a Secret; a missing optional one is nil without error.
func (a *agent) secret(ctx context.Context, ns, name string, optional *bool) (*corev1.Secret, error) {
	s, err := a.cfg.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && optional != nil && *optional {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s: %w", ns, name, err)
	}
	return s, nil
}
