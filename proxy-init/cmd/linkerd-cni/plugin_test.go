package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/pkg/proxyconf"
	"github.com/l5d-go/l5d/proxy-init/internal/redirecttest"
	"github.com/l5d-go/l5d/test/kube"
	"github.com/l5d-go/l5d/test/netns"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

// plugin builds the plugin binary once per test.
func plugin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "linkerd-cni")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building the plugin: %v\n%s", err, out)
	}
	return bin
}

// prevResult is what a primary plugin would have printed for pod p.
func prevResult(p *netns.Pod) map[string]any {
	return map[string]any{
		"cniVersion": "1.0.0",
		"interfaces": []any{map[string]any{"name": "eth0", "sandbox": p.Path()}},
		"ips": []any{
			map[string]any{"address": netip.PrefixFrom(p.IPv4, 16).String(), "interface": 0},
			map[string]any{"address": netip.PrefixFrom(p.IPv6, 64).String(), "interface": 0},
		},
	}
}

// netConf is the configuration linkerd install-cni writes, chained after pod p's primary
// plugin, with edit applied to its "linkerd" section.
func netConf(kubeconfig string, p *netns.Pod, edit func(map[string]any)) []byte {
	li := map[string]any{
		"incoming-proxy-port":     4143,
		"outgoing-proxy-port":     4140,
		"proxy-uid":               2102,
		"inbound-ports-to-ignore": []string{"4190", "4191"},
		"use-wait-flag":           true,
		"iptables-mode":           "legacy",
		"ipv6":                    true,
	}
	if edit != nil {
		edit(li)
	}
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "l5d-test",
		"type":       "linkerd-cni",
		"log_level":  "debug",
		"kubernetes": map[string]any{"kubeconfig": kubeconfig},
		"linkerd":    li,
	}
	if p != nil {
		conf["prevResult"] = prevResult(p)
	}
	b, _ := json.Marshal(conf)
	return b
}

// call runs the plugin as a container runtime does; it returns stdout and the error of a
// failed run, with stderr.
func call(bin, command string, p *netns.Pod, ns, pod string, conf []byte) ([]byte, error) {
	cmd := exec.Command(bin)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"CNI_COMMAND=" + command,
		"CNI_CONTAINERID=" + p.Name(),
		"CNI_NETNS=" + p.Path(),
		"CNI_IFNAME=eth0",
		"CNI_PATH=" + filepath.Dir(bin),
		"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=" + ns + ";K8S_POD_NAME=" + pod + ";K8S_POD_INFRA_CONTAINER_ID=" + p.Name(),
	}
	cmd.Stdin = bytes.NewReader(conf)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s: %w\nstdout: %s\nstderr: %s", command, err, out.String(), errb.String())
	}
	return out.Bytes(), nil
}

// save returns both families' nat tables in pod p.
func save(t *testing.T, p *netns.Pod) string {
	t.Helper()
	return redirecttest.Save(t, p, "iptables-legacy-save") + redirecttest.Save(t, p, "ip6tables-legacy-save")
}

// meshedPod is a pod as the injector leaves it in CNI mode: the proxy, no linkerd-init.
func meshedPod(ns, name string, ann map[string]string, native bool) *corev1.Pod {
	proxy := corev1.Container{Name: proxyconf.ProxyContainer, Image: "registry.invalid/l5d-test/proxy:latest"}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: ann},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "app", Image: "registry.invalid/l5d-test/app:latest"},
		}},
	}
	if native {
		always := corev1.ContainerRestartPolicyAlways
		proxy.RestartPolicy = &always
		pod.Spec.InitContainers = []corev1.Container{proxy}
	} else {
		pod.Spec.Containers = append(pod.Spec.Containers, proxy)
	}
	return pod
}

func TestMeshedPodIsRedirectedAndDelRemovesTheRules(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	bin := plugin(t)
	c := kube.Shared(t)
	ns := c.Namespace(t, kube.WithAnnotations(map[string]string{proxyconf.AnnSkipOutboundPorts: "9100"}))
	c.CreatePod(t, meshedPod(ns, "web", map[string]string{
		proxyconf.AnnSkipInboundPorts: "9000",
		proxyconf.AnnProxyUID:         "2103",
	}, false))
	n := netns.New(t)
	web, client := n.Pod(t, "web"), n.Pod(t, "client")
	for _, l := range []struct{ addr, tag string }{
		{":4143", "inbound"}, {":4140", "outbound"}, {":8080", "app"}, {":9000", "skipped"}, {":9100", "skipped"},
	} {
		redirecttest.Listen(t, web, l.addr, l.tag)
		redirecttest.Listen(t, client, l.addr, "client-"+l.tag)
	}
	conf := netConf(c.Kubeconfig(), web, nil)
	before := save(t, web)

	out, err := call(bin, "ADD", web, ns, "web", conf)
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	if err := json.Unmarshal(out, &res); err != nil || res["ips"] == nil {
		t.Fatalf("ADD did not pass the previous result on: %v: %s", err, out)
	}
	installed := save(t, web)
	if !strings.Contains(installed, "PROXY_INIT_REDIRECT") {
		t.Fatalf("ADD installed no rules:\n%s", installed)
	}

	for _, fam := range []struct {
		name     string
		web, cli netip.Addr
	}{{"ipv4", web.IPv4, client.IPv4}, {"ipv6", web.IPv6, client.IPv6}} {
		t.Run(fam.name, func(t *testing.T) {
			webApp := netip.AddrPortFrom(fam.web, 8080)
			cliApp := netip.AddrPortFrom(fam.cli, 8080)
			for _, tc := range []struct {
				what string
				from *netns.Pod
				uid  int
				dst  netip.AddrPort
				want string
			}{
				{"inbound to the app lands on the proxy's inbound port", client, -1, webApp, "inbound " + webApp.String()},
				{"the pod's skip-inbound-ports annotation is honoured", client, -1, netip.AddrPortFrom(fam.web, 9000), "skipped"},
				{"outbound from the app lands on the proxy's outbound port", web, -1, cliApp, "outbound " + cliApp.String()},
				{"the namespace's skip-outbound-ports annotation is honoured", web, -1, netip.AddrPortFrom(fam.cli, 9100), "client-skipped"},
				{"the proxy-uid annotation's user is exempt", web, 2103, cliApp, "client-app"},
			} {
				if got := redirecttest.Landing(t, tc.from, tc.uid, tc.dst); !strings.HasPrefix(got, tc.want) {
					t.Errorf("%s: got %q, want %q", tc.what, got, tc.want)
				}
			}
		})
	}

	if _, err := call(bin, "ADD", web, ns, "web", conf); err != nil {
		t.Fatalf("repeated ADD: %v", err)
	}
	if again := save(t, web); again != installed {
		t.Fatalf("a repeated ADD changed the rules:\nbefore:\n%s\nafter:\n%s", installed, again)
	}
	if _, err := call(bin, "CHECK", web, ns, "web", conf); err != nil {
		t.Fatalf("CHECK after ADD: %v", err)
	}

	for i := range 2 {
		if _, err := call(bin, "DEL", web, ns, "web", conf); err != nil {
			t.Fatalf("DEL #%d: %v", i+1, err)
		}
		if after := save(t, web); after != before {
			t.Fatalf("after DEL #%d the tables are not as before ADD:\nbefore:\n%s\nafter:\n%s", i+1, before, after)
		}
	}
	if got := redirecttest.Landing(t, client, -1, netip.AddrPortFrom(web.IPv4, 8080)); !strings.HasPrefix(got, "app") {
		t.Fatalf("after DEL, a connection to the app landed on %q", got)
	}
	if _, err := call(bin, "CHECK", web, ns, "web", conf); err == nil {
		t.Fatal("CHECK passed for a meshed pod without its rules")
	}
}

func TestPodsNotForThePluginAreLeftAlone(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	bin := plugin(t)
	c := kube.Shared(t)
	ns := c.Namespace(t)
	n := netns.New(t)
	withInit := meshedPod(ns, "with-init", nil, false)
	withInit.Spec.InitContainers = []corev1.Container{{Name: proxyconf.InitContainer, Image: "registry.invalid/l5d-test/init:latest"}}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
	}{
		{"unmeshed", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unmeshed"}}},
		{"disabled", meshedPod(ns, "disabled", map[string]string{proxyconf.AnnInject: proxyconf.InjectDisabled}, false)},
		{"with-init", withInit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.CreatePod(t, tc.pod)
			p := n.Pod(t, tc.name)
			before := save(t, p)
			if _, err := call(bin, "ADD", p, ns, tc.name, netConf(c.Kubeconfig(), p, nil)); err != nil {
				t.Fatal(err)
			}
			if after := save(t, p); after != before {
				t.Fatalf("ADD changed the rules of a pod that is not the plugin's:\n%s", after)
			}
		})
	}
	// A native-sidecar proxy is meshed too.
	c.CreatePod(t, meshedPod(ns, "native", nil, true))
	p := n.Pod(t, "native")
	if _, err := call(bin, "ADD", p, ns, "native", netConf(c.Kubeconfig(), p, nil)); err != nil {
		t.Fatal(err)
	}
	if got := save(t, p); !strings.Contains(got, "PROXY_INIT_OUTPUT") {
		t.Fatalf("a pod with the proxy as a native sidecar got no rules:\n%s", got)
	}
}

func TestBadInputGetsACNIErrorNamingTheProblem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	bin := plugin(t)
	c := kube.Shared(t)
	ns := c.Namespace(t)
	c.CreatePod(t, meshedPod(ns, "bad-ann", map[string]string{proxyconf.AnnSkipInboundPorts: "80,http"}, false))
	n := netns.New(t)
	p := n.Pod(t, "p")
	for _, tc := range []struct {
		what string
		pod  string
		conf []byte
		want string
	}{
		{"port out of range", "bad-ann", netConf(c.Kubeconfig(), p, func(l map[string]any) { l["incoming-proxy-port"] = 70000 }), "linkerd.incoming-proxy-port 70000"},
		{"bad port list", "bad-ann", netConf(c.Kubeconfig(), p, func(l map[string]any) { l["outbound-ports-to-ignore"] = []string{"25", "x"} }), "linkerd.outbound-ports-to-ignore"},
		{"bad iptables mode", "bad-ann", netConf(c.Kubeconfig(), p, func(l map[string]any) { l["iptables-mode"] = "ebpf" }), "linkerd.iptables-mode"},
		{"no kubeconfig", "bad-ann", netConf("", p, nil), "kubernetes.kubeconfig"},
		{"not JSON", "bad-ann", []byte("{"), "network config"},
		{"bad annotation", "bad-ann", netConf(c.Kubeconfig(), p, nil), proxyconf.AnnSkipInboundPorts},
		{"pod not found", "missing", netConf(c.Kubeconfig(), p, nil), "reading pod " + ns + "/missing"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			before := save(t, p)
			out, err := call(bin, "ADD", p, ns, tc.pod, tc.conf)
			if err == nil {
				t.Fatalf("ADD succeeded: %s", out)
			}
			var cniErr struct {
				CNIVersion string `json:"cniVersion"`
				Code       int    `json:"code"`
				Msg        string `json:"msg"`
			}
			if jerr := json.Unmarshal(out, &cniErr); jerr != nil || cniErr.Code == 0 {
				t.Fatalf("stdout is not a CNI error result: %v: %s", jerr, out)
			}
			if !strings.Contains(cniErr.Msg, tc.want) {
				t.Fatalf("error %q does not name %q", cniErr.Msg, tc.want)
			}
			if after := save(t, p); after != before {
				t.Fatalf("a failed ADD changed the rules:\n%s", after)
			}
		})
	}
}

// BenchmarkAdd measures a meshed pod's ADD (the plugin reads the pod and its namespace from
// the API server, then installs the rules) against the same rules installed by the
// proxy-init binary, as the linkerd-init container does, in the same run; each iteration
// ends with the plugin's DEL. Compare the two ns/op (medians of -count runs):
//
//	go test -run '^$' -bench . -count 5 ./proxy-init/cmd/linkerd-cni/
func BenchmarkAdd(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root for network namespaces")
	}
	dir := b.TempDir()
	bin, initBin := filepath.Join(dir, "linkerd-cni"), filepath.Join(dir, "proxy-init")
	for out, pkg := range map[string]string{bin: ".", initBin: "../proxy-init"} {
		if o, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			b.Fatalf("building %s: %v\n%s", pkg, err, o)
		}
	}
	c := kube.Shared(b)
	ns := c.Namespace(b)
	c.CreatePod(b, meshedPod(ns, "web", nil, false))
	n := netns.New(b)
	web := n.Pod(b, "web")
	conf := netConf(c.Kubeconfig(), web, nil)
	del := func(b *testing.B) {
		if _, err := call(bin, "DEL", web, ns, "web", conf); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("linkerd-cni", func(b *testing.B) {
		for b.Loop() {
			if _, err := call(bin, "ADD", web, ns, "web", conf); err != nil {
				b.Fatal(err)
			}
			del(b)
		}
	})
	b.Run("proxy-init", func(b *testing.B) {
		for b.Loop() {
			cmd := exec.Command(initBin, "--netns", web.Path(), "--use-wait-flag", "--iptables-mode", "legacy",
				"--proxy-uid", "2102", "--inbound-ports-to-ignore", "4190,4191", "--log-level", "warn")
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("proxy-init: %v\n%s", err, out)
			}
			del(b)
		}
	})
}
