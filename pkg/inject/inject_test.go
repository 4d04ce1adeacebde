package inject

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/pkg/proxyconf"
	proxycfg "github.com/l5d-go/l5d/proxy/config"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// seedAnchorsSHA is linkerd.io/trust-root-sha256 of the injected pod in seed 003.
const seedAnchorsSHA = "354fe6f49331e8e03d8fb07808e00a3e145d2661181cbfec7777b41051dc8e22"

func testValues(t testing.TB) Values {
	t.Helper()
	pem, err := os.ReadFile("testdata/seed-anchors.pem")
	if err != nil {
		t.Fatal(err)
	}
	v := DefaultValues()
	v.IdentityTrustAnchorsPEM = string(pem)
	return v
}

func decodeFile(t *testing.T, name string) runtime.Object {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(raw, nil, nil)
	if err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return obj
}

// podParts returns the pod (template) metadata and spec of any injectable object.
func podParts(t *testing.T, obj runtime.Object) (*metav1.ObjectMeta, *corev1.PodSpec) {
	t.Helper()
	meta, spec := PodTemplate(obj)
	if meta == nil {
		t.Fatalf("%T: no pod template", obj)
	}
	return meta, spec
}

func TestGolden(t *testing.T) {
	cases := []struct {
		input  string
		golden string
		ns     Namespace
		force  bool
		values func(*Values)
	}{
		// The seed's Deployment with the seed's 2.12 settings (classic sidecar).
		{input: "seed-deployment.yaml", values: func(v *Values) { v.NativeSidecar = false }},
		// Namespace-enabled, native sidecar by default, app init container keeps running meshed.
		{input: "deployment.yaml", ns: Namespace{Annotations: map[string]string{"linkerd.io/inject": "enabled"}}},
		{input: "pod-overrides.yaml"},
		{input: "job.yaml"},
		{input: "statefulset-ns-config.yaml", ns: Namespace{Annotations: map[string]string{
			"linkerd.io/inject":                        "enabled",
			"config.linkerd.io/proxy-memory-limit":     "128Mi",
			"config.linkerd.io/default-inbound-policy": "deny",
			"config.linkerd.io/opaque-ports":           "5432",
		}}},
		{input: "daemonset-ingress.yaml"},
		// Client-side injection (linkerd inject --manual) of a template without annotations.
		{input: "cronjob.yaml", force: true},
		// A Job on a cluster without native sidecars: the proxy's /shutdown endpoint is on.
		{input: "job.yaml", golden: "job-classic", values: func(v *Values) { v.NativeSidecar = false }},
	}
	for _, tc := range cases {
		if tc.golden == "" {
			tc.golden = strings.TrimSuffix(tc.input, ".yaml")
		}
		t.Run(tc.golden, func(t *testing.T) {
			v := testValues(t)
			if tc.values != nil {
				tc.values(&v)
			}
			in := decodeFile(t, tc.input)
			res, err := v.InjectObject(tc.ns, in, tc.force)
			if err != nil {
				t.Fatalf("inject: %v", err)
			}
			if !res.Decision.Inject {
				t.Fatalf("not injected: %s", res.Decision.Reason)
			}
			got, err := yaml.Marshal(res.Object)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.golden+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("injected %s differs from %s (run with -update after checking):\n%s", tc.input, golden, lineDiff(string(want), string(got)))
			}
			meta, spec := podParts(t, res.Object)
			checkProxyAcceptsEnv(t, spec)
			checkInitArgsParse(t, spec)
			if got := meta.Annotations[AnnotationTrustRootSHA256]; got != seedAnchorsSHA {
				t.Errorf("trust-root-sha256 = %s, want the seed's %s", got, seedAnchorsSHA)
			}
			// The input object is never modified.
			if _, spec := podParts(t, in); HasProxy(spec) {
				t.Error("InjectObject modified its input")
			}
		})
	}
}

// lineDiff shows the first differing lines of two texts.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 10; i++ {
		var a, c string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			c = g[i]
		}
		if a != c {
			b.WriteString("line " + strconv.Itoa(i+1) + ":\n  want: " + a + "\n  got:  " + c + "\n")
			shown++
		}
	}
	return b.String()
}

func findProxy(spec *corev1.PodSpec) *corev1.Container {
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range list {
			if list[i].Name == ProxyContainerName {
				return &list[i]
			}
		}
	}
	return nil
}

// proxyReads is the set of variables the proxy reads or deliberately ignores (documented in
// proxy/config.Unsupported).
func proxyReads() map[string]bool {
	known := map[string]bool{}
	for _, n := range proxycfg.Names() {
		known[n] = true
	}
	for n := range proxycfg.Unsupported {
		known[n] = true
	}
	return known
}

// checkProxyAcceptsEnv runs the l5d proxy's own configuration loader on the injected
// environment (with the kubelet's $(VAR) expansion and downward-API values) and checks that
// every LINKERD2_PROXY_* variable set is one the proxy reads.
func checkProxyAcceptsEnv(t *testing.T, spec *corev1.PodSpec) {
	t.Helper()
	proxy := findProxy(spec)
	if proxy == nil {
		t.Fatal("no linkerd-proxy container")
	}
	known := proxyReads()
	fields := map[string]string{
		"metadata.name": "web-0", "metadata.namespace": "shop", "spec.nodeName": "node-1",
		"status.podIPs": "10.244.0.7,fd00:244::7", "spec.serviceAccountName": "web",
	}
	env := map[string]string{}
	expand := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	for _, e := range proxy.Env {
		if strings.HasPrefix(e.Name, "LINKERD2_PROXY_") && !known[e.Name] {
			t.Errorf("injector sets %s, which the proxy does not read", e.Name)
		}
		if e.ValueFrom != nil {
			env[e.Name] = fields[e.ValueFrom.FieldRef.FieldPath]
			continue
		}
		env[e.Name] = expand.ReplaceAllStringFunc(e.Value, func(ref string) string {
			if v, ok := env[ref[2:len(ref)-1]]; ok {
				return v
			}
			return ref
		})
	}
	cfg, err := proxycfg.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("the proxy rejects the injected environment: %v", err)
	}
	if cfg == nil {
		t.Fatal("proxy config is nil")
	}
	if got, want := env["LINKERD2_PROXY_IDENTITY_LOCAL_NAME"], "web.shop.serviceaccount.identity.linkerd.cluster.local"; got != want {
		t.Errorf("local identity = %q, want %q", got, want)
	}
}

// checkInitArgsParse parses linkerd-init's lists with proxy-init's own parsers.
func checkInitArgsParse(t *testing.T, spec *corev1.PodSpec) {
	t.Helper()
	var initC *corev1.Container
	for i := range spec.InitContainers {
		if spec.InitContainers[i].Name == InitContainerName {
			initC = &spec.InitContainers[i]
		}
	}
	if initC == nil {
		t.Fatal("no linkerd-init container")
	}
	if initC != &spec.InitContainers[0] {
		t.Error("linkerd-init is not the first init container")
	}
	args := initC.Args
	for i := 0; i+1 < len(args); i += 2 {
		var err error
		switch args[i] {
		case "--inbound-ports-to-ignore", "--outbound-ports-to-ignore":
			_, err = proxyconf.ParsePorts(args[i+1])
		case "--subnets-to-ignore":
			_, err = proxyconf.ParseNetworks(args[i+1])
		}
		if err != nil {
			t.Errorf("proxy-init rejects %s %s: %v", args[i], args[i+1], err)
		}
	}
}

func TestDecide(t *testing.T) {
	enabledNS := Namespace{Name: "a", Annotations: map[string]string{AnnotationInject: "enabled"}}
	withAnn := func(v string) *metav1.ObjectMeta {
		return &metav1.ObjectMeta{Annotations: map[string]string{AnnotationInject: v}}
	}
	plain := &corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}
	cases := []struct {
		name  string
		ns    Namespace
		meta  *metav1.ObjectMeta
		spec  *corev1.PodSpec
		force bool
		want  Reason
		mode  Mode
	}{
		{"namespace enabled", enabledNS, &metav1.ObjectMeta{}, plain, false, ReasonInjected, ModeEnabled},
		{"nothing enabled", Namespace{}, &metav1.ObjectMeta{}, plain, false, ReasonNotEnabled, ""},
		{"forced (manual inject)", Namespace{}, &metav1.ObjectMeta{}, plain, true, ReasonInjected, ModeEnabled},
		{"pod disabled wins over namespace", enabledNS, withAnn("disabled"), plain, false, ReasonDisabled, ModeDisabled},
		{"pod disabled wins over force", Namespace{}, withAnn("disabled"), plain, true, ReasonDisabled, ModeDisabled},
		{"pod ingress", Namespace{}, withAnn("ingress"), plain, false, ReasonInjected, ModeIngress},
		{"namespace disabled, pod enabled", Namespace{Annotations: map[string]string{AnnotationInject: "disabled"}}, withAnn("enabled"), plain, false, ReasonInjected, ModeEnabled},
		{"unknown value", Namespace{}, withAnn("yes"), plain, false, ReasonInvalidInjectMode, "yes"},
		{"hostNetwork", enabledNS, &metav1.ObjectMeta{}, &corev1.PodSpec{HostNetwork: true}, false, ReasonHostNetwork, ModeEnabled},
		{"already injected", enabledNS, &metav1.ObjectMeta{}, &corev1.PodSpec{Containers: []corev1.Container{{Name: "linkerd-proxy"}}}, false, ReasonAlreadyInjected, ModeEnabled},
		{"already injected natively", enabledNS, &metav1.ObjectMeta{}, &corev1.PodSpec{InitContainers: []corev1.Container{{Name: "linkerd-proxy"}}}, false, ReasonAlreadyInjected, ModeEnabled},
		{"webhooks disabled namespace", Namespace{Labels: map[string]string{LabelAdmissionWebhooks: "disabled"}, Annotations: enabledNS.Annotations}, withAnn("enabled"), plain, false, ReasonWebhooksDisabled, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.ns, tc.meta, tc.spec, tc.force)
			if d.Reason != tc.want || d.Mode != tc.mode || d.Inject != (tc.want == ReasonInjected) {
				t.Errorf("Decide = %+v, want reason %s mode %q", d, tc.want, tc.mode)
			}
		})
	}
}

func TestBadAnnotationsRefused(t *testing.T) {
	cases := []struct{ key, value, wantInMsg string }{
		{AnnotationSkipInboundPorts, "80,http", "skip-inbound-ports"},
		{AnnotationSkipOutboundPorts, "70000", "skip-outbound-ports"},
		{AnnotationSkipSubnets, "10.0.0.0/33", "skip-subnets"},
		{AnnotationOpaquePorts, "nosuchport", "nosuchport"},
		{AnnotationProxyCPULimit, "lots", "proxy-cpu-limit"},
		{AnnotationProxyMemoryRequest, "-5Mi", "proxy-memory-request"},
		{AnnotationDefaultInboundPolicy, "allow-all", "default-inbound-policy"},
		{AnnotationProxyAwait, "maybe", "proxy-await"},
		{AnnotationAccessLog, "xml", "access-log"},
		{AnnotationProxyUID, "root", "proxy-uid"},
		{AnnotationNativeSidecarBeta, "sometimes", "proxy-enable-native-sidecar"},
		{AnnotationNativeSidecar, "yes please", "config.linkerd.io/proxy-enable-native-sidecar"},
		{AnnotationProxyAdminShutdown, "true", "config.linkerd.io/proxy-admin-shutdown"},
		{AnnotationInboundConnectTimeout, "soon", "proxy-inbound-connect-timeout"},
		{AnnotationProxyLogFormat, "xml", "proxy-log-format"},
		{AnnotationImagePullPolicy, "Sometimes", "image-pull-policy"},
		{AnnotationProxyImage, "", "proxy-image"},
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			v := testValues(t)
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "n", Annotations: map[string]string{AnnotationInject: "enabled", tc.key: tc.value}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{{ContainerPort: 80}}}}},
			}
			before := pod.DeepCopy()
			out, _, err := v.InjectPod(Namespace{Name: "n"}, Owner{}, pod)
			if err == nil {
				t.Fatalf("accepted %s=%q", tc.key, tc.value)
			}
			var ae *AnnotationError
			if !errors.As(err, &ae) || !strings.Contains(err.Error(), tc.wantInMsg) {
				t.Errorf("error %q does not name %s", err, tc.wantInMsg)
			}
			if out != nil || HasProxy(&pod.Spec) || pod.Annotations[AnnotationCreatedBy] != "" || len(pod.Spec.Volumes) != len(before.Spec.Volumes) {
				t.Error("pod half-injected after a refused annotation")
			}
		})
	}
	t.Run("request above limit", func(t *testing.T) {
		v := testValues(t)
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
			AnnotationInject: "enabled", AnnotationProxyCPURequest: "2", AnnotationProxyCPULimit: "1"}}}
		if _, _, err := v.InjectPod(Namespace{}, Owner{}, pod); err == nil || !strings.Contains(err.Error(), "exceeds its limit") {
			t.Errorf("err = %v, want request-above-limit refusal", err)
		}
	})
}

func TestNativeSidecarSwitch(t *testing.T) {
	for _, tc := range []struct {
		name     string
		global   bool
		ann      map[string]string
		wantInit bool
	}{
		{"default on", true, nil, true},
		{"global off", false, nil, false},
		{"alpha annotation off", true, map[string]string{AnnotationNativeSidecarAlpha: "false"}, false},
		{"beta annotation on with global off", false, map[string]string{AnnotationNativeSidecarBeta: "true"}, true},
		{"beta wins over alpha", true, map[string]string{AnnotationNativeSidecarAlpha: "false", AnnotationNativeSidecarBeta: "true"}, true},
		{"GA annotation off", true, map[string]string{AnnotationNativeSidecar: "false"}, false},
		{"GA annotation on with global off", false, map[string]string{AnnotationNativeSidecar: "true"}, true},
		{"GA wins over beta and alpha", true, map[string]string{AnnotationNativeSidecar: "false", AnnotationNativeSidecarBeta: "true", AnnotationNativeSidecarAlpha: "true"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := testValues(t)
			v.NativeSidecar = tc.global
			ann := map[string]string{AnnotationInject: "enabled"}
			for k, val := range tc.ann {
				ann[k] = val
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: ann}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
			out, _, err := v.InjectPod(Namespace{Name: "n"}, Owner{}, pod)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantInit {
				if len(out.Spec.InitContainers) != 2 || out.Spec.InitContainers[1].Name != ProxyContainerName ||
					out.Spec.InitContainers[1].RestartPolicy == nil || *out.Spec.InitContainers[1].RestartPolicy != corev1.ContainerRestartPolicyAlways ||
					out.Spec.InitContainers[1].StartupProbe == nil || len(out.Spec.Containers) != 1 {
					t.Errorf("want native sidecar after linkerd-init, got init=%v containers=%v", names(out.Spec.InitContainers), names(out.Spec.Containers))
				}
			} else if out.Spec.Containers[0].Name != ProxyContainerName || out.Spec.Containers[0].Lifecycle == nil || out.Spec.Containers[0].Lifecycle.PostStart == nil {
				t.Errorf("want classic proxy first with linkerd-await, got %v", names(out.Spec.Containers))
			}
		})
	}
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func TestOwnerOf(t *testing.T) {
	yes := true
	pod := func(kind, name, hash string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{}}}
		if hash != "" {
			p.Labels["pod-template-hash"] = hash
		}
		if kind != "" {
			p.OwnerReferences = []metav1.OwnerReference{{Kind: kind, Name: name, Controller: &yes}}
		}
		return p
	}
	for _, tc := range []struct {
		pod  *corev1.Pod
		want Owner
	}{
		{pod("ReplicaSet", "nginx-deployment-858bdd545b", "858bdd545b"), Owner{"Deployment", "nginx-deployment"}},
		{pod("ReplicaSet", "bare-rs", ""), Owner{"ReplicaSet", "bare-rs"}},
		{pod("StatefulSet", "db", ""), Owner{"StatefulSet", "db"}},
		{pod("Job", "report", ""), Owner{"Job", "report"}},
		{pod("", "", ""), Owner{}},
	} {
		if got := OwnerOf(tc.pod); got != tc.want {
			t.Errorf("OwnerOf(%v) = %v, want %v", tc.pod.OwnerReferences, got, tc.want)
		}
	}
}

func TestValuesValidate(t *testing.T) {
	v := DefaultValues()
	if err := v.Validate(); err == nil || !strings.Contains(err.Error(), "trust anchors") {
		t.Errorf("Validate without anchors = %v, want an error naming the trust anchors", err)
	}
	v = testValues(t)
	v.DefaultInboundPolicy = "open"
	if err := v.Validate(); err == nil || !strings.Contains(err.Error(), "default inbound policy") {
		t.Errorf("Validate = %v, want an error naming the default inbound policy", err)
	}
}
