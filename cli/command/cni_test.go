package command

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/l5d-go/l5d/pkg/proxyconf"
	"github.com/l5d-go/l5d/proxy-init/cni"
	"github.com/l5d-go/l5d/test/kube"
)

// TestInstallCNIConfigIsThePlugins checks that the plugin configuration linkerd install-cni
// puts in the linkerd-cni-config ConfigMap is one the plugin accepts, with the flags'
// settings, and that bad flags are refused with their name.
func TestInstallCNIConfigIsThePlugins(t *testing.T) {
	out, errOut, err := run(t, "", "install-cni", "--skip-inbound-ports", "9000,9100-9110", "--skip-outbound-ports", "25",
		"--proxy-uid", "2200", "--iptables-mode", "nft", "--inbound-port", "4243")
	if err != nil {
		t.Fatalf("install-cni: %v\n%s", err, errOut)
	}
	var text string
	for _, doc := range strings.Split(out, "\n---\n") {
		var o struct {
			Kind string            `json:"kind"`
			Data map[string]string `json:"data"`
		}
		if yaml.Unmarshal([]byte(doc), &o) == nil && o.Kind == "ConfigMap" {
			text = o.Data["cni_network_config"]
		}
	}
	if text == "" {
		t.Fatalf("no cni_network_config in the output:\n%s", out)
	}
	s, err := cni.Parse([]byte(strings.ReplaceAll(text, "__KUBECONFIG_FILEPATH__", "/etc/cni/net.d/ZZZ-linkerd-cni-kubeconfig")))
	if err != nil {
		t.Fatalf("the plugin refuses the rendered configuration: %v\n%s", err, text)
	}
	if got := s.Base.InboundPortsToIgnore.String(); got != "4190,4191,9000,9100-9110" {
		t.Errorf("inbound ports to ignore %q", got)
	}
	if got := s.Base.OutboundPortsToIgnore.String(); got != "25" {
		t.Errorf("outbound ports to ignore %q", got)
	}
	if s.Base.ProxyUID != 2200 || s.Base.InboundProxyPort != 4243 || s.Backends[0].Restore != "iptables-nft-restore" || len(s.Backends) != 1 {
		t.Errorf("settings %+v, backends %+v", s.Base, s.Backends)
	}

	for _, tc := range []struct{ args []string }{
		{[]string{"--inbound-port", "0"}},
		{[]string{"--skip-outbound-ports", "smtp"}},
		{[]string{"--iptables-mode", "ebpf"}},
		{[]string{"--cni-log-level", "loud"}},
	} {
		_, _, err := run(t, "", append([]string{"install-cni"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.args[0]) {
			t.Errorf("install-cni %q: %v, want an error naming %s", tc.args, err, tc.args[0])
		}
	}
}

// TestManualInjectFollowsTheControlPlanesCNIMode checks that linkerd inject --manual, which
// reads the installed values from linkerd-config, adds the network validator instead of
// linkerd-init for a control plane installed with --linkerd-cni-enabled.
func TestManualInjectFollowsTheControlPlanesCNIMode(t *testing.T) {
	c := kube.Shared(t)
	const ns = "l5d-cni-manual"
	cp, _, err := run(t, "", "install", "-L", ns, "--linkerd-cni-enabled")
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, ns, cp)
	out, errOut, err := run(t, "", "inject", "--manual", "-L", ns, "--kubeconfig", c.Kubeconfig(), "testdata/workloads.yaml")
	if err != nil {
		t.Fatalf("inject --manual: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "name: "+proxyconf.NetworkValidatorContainer) || strings.Contains(out, "name: "+proxyconf.InitContainer) || strings.Contains(out, "NET_ADMIN") {
		t.Errorf("inject --manual against a CNI-mode control plane:\n%s", out)
	}
}
