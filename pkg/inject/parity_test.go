package inject

import (
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/pkg/proxyconf"
	proxycfg "github.com/l5d-go/l5d/proxy/config"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// stringConsts returns the string constants declared in a Go source file, by value, whose
// value starts with one of prefixes.
func stringConsts(t *testing.T, path string, prefixes ...string) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	consts := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if i >= len(vs.Values) {
					continue
				}
				// Values are literals or Prefix* + "literal".
				var val string
				ast.Inspect(vs.Values[i], func(n ast.Node) bool {
					switch x := n.(type) {
					case *ast.BasicLit:
						s, _ := strconv.Unquote(x.Value)
						val += s
					case *ast.Ident:
						switch x.Name {
						case "Prefix":
							val += proxyconf.Prefix
						case "PrefixAlpha":
							val += proxyconf.PrefixAlpha
						case "PrefixBeta":
							val += proxyconf.PrefixBeta
						}
					}
					return true
				})
				for _, p := range prefixes {
					if strings.HasPrefix(val, p) && val != p {
						consts[val] = name.Name
					}
				}
			}
		}
	}
	return consts
}

// TestAnnotationsAndEnvInStep is the contract between the annotation names (pkg/proxyconf),
// what the injector honours (ConfigAnnotations) and what the proxy reads (proxy/config): it
// fails when a name is added on one side only. Every annotation in pkg/proxyconf is in
// ConfigAnnotations and changes the injected pod (its listed env vars included); every
// LINKERD2_PROXY_* name in pkg/proxyconf is read by the proxy or listed, with its reason, in
// proxy/config.Unsupported; every LINKERD2_PROXY_* variable the proxy reads has its name in
// pkg/proxyconf; and a pod with every annotation set gets only variables the proxy reads.
func TestAnnotationsAndEnvInStep(t *testing.T) {
	annotations := stringConsts(t, "../../pkg/proxyconf/annotations.go", proxyconf.Prefix, proxyconf.PrefixAlpha, proxyconf.PrefixBeta)
	delete(annotations, proxyconf.LabelAdmissionWebhooks) // a namespace label, not a proxy setting
	table := map[string]ConfigAnnotation{}
	for _, a := range ConfigAnnotations {
		if _, dup := table[a.Key]; dup {
			t.Errorf("%s listed twice in ConfigAnnotations", a.Key)
		}
		table[a.Key] = a
		if _, ok := annotations[a.Key]; !ok {
			t.Errorf("ConfigAnnotations lists %s, which has no name in pkg/proxyconf", a.Key)
		}
	}
	for key, name := range annotations {
		if _, ok := table[key]; !ok {
			t.Errorf("pkg/proxyconf.%s (%s) is not in the injector's ConfigAnnotations", name, key)
		}
	}

	reads := map[string]bool{}
	for _, n := range proxycfg.Names() {
		reads[n] = true
	}
	envNames := stringConsts(t, "../../pkg/proxyconf/env.go", "LINKERD2_PROXY_")
	for env, name := range envNames {
		_, unsupported := proxycfg.Unsupported[env]
		if !reads[env] && !unsupported {
			t.Errorf("pkg/proxyconf.%s (%s): the proxy neither reads it nor lists it in config.Unsupported", name, env)
		}
		if reads[env] && unsupported {
			t.Errorf("%s is read by the proxy and also listed as unsupported", env)
		}
	}
	for env := range reads {
		if strings.HasPrefix(env, "LINKERD2_PROXY_") {
			if _, ok := envNames[env]; !ok {
				t.Errorf("the proxy reads %s, which has no name in pkg/proxyconf", env)
			}
		}
	}
	for env := range proxycfg.Unsupported {
		if _, ok := envNames[env]; !ok {
			t.Errorf("config.Unsupported lists %s, which has no name in pkg/proxyconf", env)
		}
	}

	v := testValues(t)
	newPod := func(ann map[string]string) *corev1.Pod {
		a := map[string]string{AnnotationInject: "enabled"}
		for k, val := range ann {
			a[k] = val
		}
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop", Annotations: a},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app",
				Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
		}
	}
	inject := func(t *testing.T, ann map[string]string) *corev1.Pod {
		t.Helper()
		out, _, err := v.InjectPod(Namespace{Name: "shop"}, Owner{Kind: "Deployment", Name: "web"}, newPod(ann))
		if err != nil {
			t.Fatalf("injecting with %v: %v", ann, err)
		}
		return out
	}
	envOf := func(spec *corev1.PodSpec) map[string]string {
		m := map[string]string{}
		for _, e := range findProxy(spec).Env {
			m[e.Name] = e.Value
		}
		return m
	}
	all := map[string]string{}
	for _, a := range ConfigAnnotations {
		t.Run(a.Key, func(t *testing.T) {
			base := inject(t, a.With)
			baseEnv := envOf(&base.Spec)
			with := map[string]string{a.Key: a.Example}
			for k, val := range a.With {
				with[k] = val
			}
			out := inject(t, with)
			env := envOf(&out.Spec)
			for _, name := range a.Env {
				if got, ok := env[name]; !ok || got == baseEnv[name] {
					t.Errorf("%s=%q leaves %s at %q", a.Key, a.Example, name, baseEnv[name])
				}
				if !reads[name] {
					if _, ok := proxycfg.Unsupported[name]; !ok {
						t.Errorf("%s sets %s, which the proxy does not read", a.Key, name)
					}
				}
			}
			if !strings.HasPrefix(a.Spec, "none:") {
				delete(out.Annotations, a.Key)
				if reflect.DeepEqual(out.Spec, base.Spec) && reflect.DeepEqual(out.Annotations, base.Annotations) {
					t.Errorf("%s=%q changes nothing in the injected pod", a.Key, a.Example)
				}
			}
			bad := inject2(v, map[string]string{a.Key: "\x00bad"}, newPod)
			if bad == nil && a.Key != proxyconf.AnnProxyImage && a.Key != proxyconf.AnnProxyVersion &&
				a.Key != proxyconf.AnnInitImage && a.Key != proxyconf.AnnInitImageVersion &&
				a.Key != proxyconf.AnnDebugImage && a.Key != proxyconf.AnnDebugImageVersion &&
				a.Key != proxyconf.AnnProxyLogLevel {
				t.Errorf("%s accepts a malformed value", a.Key)
			}
		})
		if a.Key != proxyconf.AnnNativeSidecarAlpha && a.Key != proxyconf.AnnNativeSidecarBeta && a.Key != proxyconf.AnnNativeSidecar {
			all[a.Key] = a.Example
		}
	}
	// Every annotation at once: the proxy accepts the whole environment.
	out := inject(t, all)
	checkProxyAcceptsEnv(t, &out.Spec)
	checkInitArgsParse(t, &out.Spec)
}

// inject2 injects and returns the error (nil when accepted).
func inject2(v Values, ann map[string]string, newPod func(map[string]string) *corev1.Pod) error {
	_, _, err := v.InjectPod(Namespace{Name: "shop"}, Owner{}, newPod(ann))
	return err
}

// TestNewAnnotationEffects checks the details of the annotations added for Linkerd parity:
// port overrides reach listeners, container ports, probes and linkerd-init; proxy-gid reaches
// runAsGroup and --proxy-gid; close-wait-timeout reaches --timeout-close-wait-secs in a
// privileged linkerd-init; proxy-additional-env replaces and adds variables; disabled detect
// timeouts are Linkerd's 365d; a port clash and non-proxy env vars are refused.
func TestNewAnnotationEffects(t *testing.T) {
	v := testValues(t)
	pod := func(ann map[string]string) *corev1.Pod {
		a := map[string]string{AnnotationInject: "enabled"}
		for k, val := range ann {
			a[k] = val
		}
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "n", Annotations: a},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
	}
	out, _, err := v.InjectPod(Namespace{Name: "n"}, Owner{}, pod(map[string]string{
		proxyconf.AnnAdminPort: "5191", proxyconf.AnnControlPort: "5190", proxyconf.AnnInboundPort: "5143", proxyconf.AnnOutboundPort: "5140",
		proxyconf.AnnProxyGID: "2102", proxyconf.AnnCloseWaitTimeout: "2m",
		proxyconf.AnnProxyAdditionalEnv:          `[{"name":"LINKERD2_PROXY_LOG","value":"debug"},{"name":"LINKERD2_PROXY_OUTBOUND_HTTP_QUEUE_CAPACITY","value":"1000"}]`,
		proxyconf.AnnDisableInboundDetectTimeout: "true",
	}))
	if err != nil {
		t.Fatal(err)
	}
	p := findProxy(&out.Spec)
	env := map[string]string{}
	for _, e := range p.Env {
		env[e.Name] = e.Value
	}
	for name, want := range map[string]string{
		proxyconf.EnvAdminListenAddr: "0.0.0.0:5191", proxyconf.EnvControlListenAddr: "0.0.0.0:5190",
		proxyconf.EnvInboundListenAddr: "0.0.0.0:5143", proxyconf.EnvOutboundListenAddr: "127.0.0.1:5140",
		proxyconf.EnvLog: "debug", "LINKERD2_PROXY_OUTBOUND_HTTP_QUEUE_CAPACITY": "1000",
		proxyconf.EnvInboundDetectTimeout: "365d",
	} {
		if env[name] != want {
			t.Errorf("%s = %q, want %q", name, env[name], want)
		}
	}
	if p.Ports[0].ContainerPort != 5143 || p.Ports[1].ContainerPort != 5191 || p.StartupProbe.HTTPGet.Port.IntVal != 5191 {
		t.Errorf("ports %v, startup probe port %v: want 5143, 5191", p.Ports, p.StartupProbe.HTTPGet.Port)
	}
	if p.SecurityContext.RunAsGroup == nil || *p.SecurityContext.RunAsGroup != 2102 {
		t.Errorf("proxy runAsGroup %v, want 2102", p.SecurityContext.RunAsGroup)
	}
	for flag, want := range map[string]string{"--incoming-proxy-port": "5143", "--outgoing-proxy-port": "5140",
		"--inbound-ports-to-ignore": "5190,5191,4567,4568", "--proxy-gid": "2102", "--timeout-close-wait-secs": "120"} {
		if got, _ := initArg(&out.Spec, flag); got != want {
			t.Errorf("linkerd-init %s %q, want %q", flag, got, want)
		}
	}
	for _, c := range out.Spec.InitContainers {
		if c.Name == InitContainerName && (c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged) {
			t.Error("linkerd-init is not privileged, so it cannot write the close-wait sysctl")
		}
	}
	checkProxyAcceptsEnv(t, &out.Spec)
	checkInitArgsParse(t, &out.Spec)

	for ann, wantInErr := range map[string]string{
		proxyconf.AnnAdminPort:          "must differ",
		proxyconf.AnnProxyAdditionalEnv: "only LINKERD2_PROXY_",
	} {
		a := map[string]string{ann: "4143"}
		if ann == proxyconf.AnnProxyAdditionalEnv {
			a[ann] = `[{"name":"PATH","value":"/x"}]`
		}
		_, _, err := v.InjectPod(Namespace{Name: "n"}, Owner{}, pod(a))
		if err == nil || !strings.Contains(err.Error(), wantInErr) {
			t.Errorf("%v: error %v, want one containing %q", a, err, wantInErr)
		}
	}
}
