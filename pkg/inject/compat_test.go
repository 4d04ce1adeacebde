package inject

import (
	"strings"
	"testing"

	"github.com/l5d-go/l5d/pkg/proxyconf"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestInjectedMetadataMatchesLinkerd checks every annotation and label Linkerd's injector
// writes on an injected pod: created-by, proxy-version, trust-root-sha256 and
// identity-mode, the inject mode, the control-plane/workload namespace and owner labels, and
// config.linkerd.io/opaque-ports (the namespace's value, or the default opaque ports the pod
// exposes) so that the destination controller, which reads the pod's annotation, agrees with
// the proxy on which ports skip protocol detection.
func TestInjectedMetadataMatchesLinkerd(t *testing.T) {
	pod := func(ann map[string]string, ports ...int32) *corev1.Pod {
		a := map[string]string{AnnotationInject: "enabled"}
		for k, v := range ann {
			a[k] = v
		}
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "emojivoto", Annotations: a},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}},
		}
		for _, port := range ports {
			p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{ContainerPort: port})
		}
		return p
	}
	v := testValues(t)
	out, _, err := v.InjectPod(Namespace{Name: "emojivoto"}, Owner{Kind: "Deployment", Name: "web"}, pod(nil, 80, 3306, 6379))
	if err != nil {
		t.Fatal(err)
	}
	wantAnn := map[string]string{
		"linkerd.io/created-by":          "linkerd/proxy-injector stable-2.12.2",
		"linkerd.io/proxy-version":       "stable-2.12.2",
		"linkerd.io/trust-root-sha256":   seedAnchorsSHA,
		"linkerd.io/identity-mode":       "default",
		"linkerd.io/inject":              "enabled",
		"config.linkerd.io/opaque-ports": "3306,6379",
	}
	for k, want := range wantAnn {
		if got, ok := out.Annotations[k]; !ok || got != want {
			t.Errorf("annotation %s = %q (present %v), want %q", k, got, ok, want)
		}
	}
	wantLabels := map[string]string{
		"linkerd.io/control-plane-ns": "linkerd",
		"linkerd.io/workload-ns":      "emojivoto",
		"linkerd.io/proxy-deployment": "web",
	}
	for k, want := range wantLabels {
		if got := out.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}

	for _, tc := range []struct {
		name      string
		ns, ann   map[string]string
		ports     []int32
		want      string
		wantUnset bool
	}{
		{name: "no default opaque port exposed", ports: []int32{80, 8080}, wantUnset: true},
		{name: "namespace value copied", ns: map[string]string{AnnotationOpaquePorts: "8080-8090"}, ports: []int32{80}, want: "8080-8090"},
		{name: "pod value kept", ns: map[string]string{AnnotationOpaquePorts: "8080"}, ann: map[string]string{AnnotationOpaquePorts: "9000"}, ports: []int32{3306}, want: "9000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := v.InjectPod(Namespace{Name: "emojivoto", Annotations: tc.ns}, Owner{}, pod(tc.ann, tc.ports...))
			if err != nil {
				t.Fatal(err)
			}
			got, ok := out.Annotations[AnnotationOpaquePorts]
			if tc.wantUnset {
				if ok {
					t.Errorf("opaque-ports annotation %q written, want none", got)
				}
				return
			}
			if got != tc.want {
				t.Errorf("opaque-ports annotation %q, want %q", got, tc.want)
			}
		})
	}
}

// TestAdminShutdownAnnotation checks Linkerd's config.linkerd.io/proxy-admin-shutdown
// (enabled/disabled) switches the proxy's POST /shutdown admin endpoint.
func TestAdminShutdownAnnotation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		owner Owner
		ann   string // "" for none
		want  bool
	}{
		{"default off", Owner{Kind: "Deployment", Name: "d"}, "", false},
		{"enabled", Owner{Kind: "Deployment", Name: "d"}, "enabled", true},
		{"disabled", Owner{Kind: "Deployment", Name: "d"}, "disabled", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := testValues(t)
			ann := map[string]string{AnnotationInject: "enabled"}
			if tc.ann != "" {
				ann[AnnotationProxyAdminShutdown] = tc.ann
			}
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: ann}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
			out, _, err := v.InjectPod(Namespace{Name: "n"}, tc.owner, p)
			if err != nil {
				t.Fatal(err)
			}
			got := false
			for _, e := range findProxy(&out.Spec).Env {
				if e.Name == proxyconf.EnvShutdownEndpointEnabled && e.Value == "true" {
					got = true
				}
			}
			if got != tc.want {
				t.Errorf("%s set: %v, want %v", proxyconf.EnvShutdownEndpointEnabled, got, tc.want)
			}
		})
	}
}

// initArg returns the value following flag in linkerd-init's arguments, or "" and false.
func initArg(spec *corev1.PodSpec, flag string) (string, bool) {
	for _, c := range spec.InitContainers {
		if c.Name != InitContainerName {
			continue
		}
		for i := 0; i+1 < len(c.Args); i++ {
			if c.Args[i] == flag {
				return c.Args[i+1], true
			}
		}
	}
	return "", false
}

// TestIptablesModeReachesInit checks that Values.IptablesMode (Helm's
// proxyInit.iptablesMode) is passed to linkerd-init, which otherwise defaults to legacy and
// fails on nodes with only nf_tables, and that an unknown mode is refused.
func TestIptablesModeReachesInit(t *testing.T) {
	for _, mode := range []string{"", "legacy", "nft"} {
		v := testValues(t)
		want := "legacy"
		if mode != "" {
			v.IptablesMode, want = mode, mode
		}
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationInject: "enabled"}}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
		out, _, err := v.InjectPod(Namespace{Name: "n"}, Owner{}, p)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := initArg(&out.Spec, "--iptables-mode"); !ok || got != want {
			t.Errorf("mode %q: linkerd-init --iptables-mode %q (present %v), want %q", mode, got, ok, want)
		}
	}
	v := testValues(t)
	v.IptablesMode = "iptables"
	if err := v.Validate(); err == nil || !strings.Contains(err.Error(), "iptables mode") {
		t.Errorf("Validate with iptables mode %q: %v", v.IptablesMode, err)
	}
}

// TestProxyResourcesDefaults checks that Values.ProxyResources (Helm's proxy.resources)
// reach the proxy container and that an annotation overrides only its own entry.
func TestProxyResourcesDefaults(t *testing.T) {
	v := testValues(t)
	v.ProxyResources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: mustQuantity("150m"), corev1.ResourceMemory: mustQuantity("40Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: mustQuantity("90Mi")},
	}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationInject: "enabled", AnnotationProxyMemoryLimit: "200Mi"}}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
	out, _, err := v.InjectPod(Namespace{Name: "n"}, Owner{}, p)
	if err != nil {
		t.Fatal(err)
	}
	r := findProxy(&out.Spec).Resources
	if r.Requests.Cpu().String() != "150m" || r.Requests.Memory().String() != "40Mi" || r.Limits.Memory().String() != "200Mi" {
		t.Errorf("proxy resources %v", r)
	}
	if v.ProxyResources.Limits.Memory().String() != "90Mi" {
		t.Error("injection changed the shared Values")
	}
}

// TestCNIModeInjectsTheValidator checks that with Values.CNIEnabled (Helm's cniEnabled)
// pods get the linkerd-network-validator init container, without any capability and not as
// the proxy's user, instead of linkerd-init, for classic and native sidecars alike.
func TestCNIModeInjectsTheValidator(t *testing.T) {
	for _, native := range []bool{false, true} {
		v := testValues(t)
		v.CNIEnabled = true
		v.NativeSidecar = native
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationInject: "enabled"}}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
		out, _, err := v.InjectPod(Namespace{Name: "n"}, Owner{}, p)
		if err != nil {
			t.Fatal(err)
		}
		inits := out.Spec.InitContainers
		if len(inits) == 0 || inits[0].Name != ValidatorContainerName {
			t.Fatalf("native %v: first init container is not %s: %+v", native, ValidatorContainerName, inits)
		}
		val := inits[0]
		proxyImage := ""
		for _, c := range append(append([]corev1.Container{}, out.Spec.InitContainers...), out.Spec.Containers...) {
			if c.Name == ProxyContainerName {
				proxyImage = c.Image
			}
		}
		if val.Command[0] != validatorBinary || val.Image != proxyImage {
			t.Errorf("native %v: validator command %q image %q", native, val.Command, val.Image)
		}
		sc := val.SecurityContext
		if sc.Capabilities == nil || len(sc.Capabilities.Add) != 0 || *sc.RunAsUser == v.ProxyUID {
			t.Errorf("native %v: validator security context %+v", native, sc)
		}
		if args := strings.Join(val.Args, " "); !strings.Contains(args, "--listen-addr 0.0.0.0:4140") {
			t.Errorf("native %v: validator args %q do not listen on the proxy's outbound port", native, args)
		}
		for _, list := range [][]corev1.Container{out.Spec.InitContainers, out.Spec.Containers} {
			for _, c := range list {
				if c.Name == InitContainerName {
					t.Errorf("native %v: linkerd-init injected in CNI mode", native)
				}
				if c.SecurityContext != nil && c.SecurityContext.Capabilities != nil && len(c.SecurityContext.Capabilities.Add) > 0 {
					t.Errorf("native %v: container %s adds capabilities %v", native, c.Name, c.SecurityContext.Capabilities.Add)
				}
			}
		}
		for _, vol := range out.Spec.Volumes {
			if vol.Name == VolumeXtablesLock {
				t.Errorf("native %v: linkerd-init's xtables lock volume injected in CNI mode", native)
			}
		}
	}
}
