package cni

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/proxy-init/iptables"
)

func TestMeshed(t *testing.T) {
	proxy := corev1.Container{Name: "linkerd-proxy"}
	app := corev1.Container{Name: "app"}
	for _, tc := range []struct {
		name string
		pod  corev1.Pod
		want bool
	}{
		{"proxy container", corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{app, proxy}}}, true},
		{"native sidecar", corev1.Pod{Spec: corev1.PodSpec{InitContainers: []corev1.Container{proxy}, Containers: []corev1.Container{app}}}, true},
		{"no proxy", corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{app}}}, false},
		{"inject disabled", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"linkerd.io/inject": "disabled"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{app, proxy}}}, false},
		{"linkerd-init does it", corev1.Pod{Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: "linkerd-init"}}, Containers: []corev1.Container{app, proxy}}}, false},
	} {
		if got, why := Meshed(&tc.pod); got != tc.want || (!got && why == "") {
			t.Errorf("%s: meshed %v (%q), want %v", tc.name, got, why, tc.want)
		}
	}
}

func TestPodConfigAddsThePodsAnnotations(t *testing.T) {
	s, err := Parse([]byte(`{"cniVersion":"1.0.0","name":"n","type":"linkerd-cni","kubernetes":{"kubeconfig":"/k"},
		"linkerd":{"inbound-ports-to-ignore":["4190",4191],"outbound-ports-to-ignore":["25"],"subnets-to-ignore":["10.9.0.0/16"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Base.InboundProxyPort != iptables.DefaultInboundProxyPort || s.Base.ProxyUID != iptables.DefaultProxyUID || len(s.Backends) != 1 {
		t.Fatalf("defaults: %+v %+v", s.Base, s.Backends)
	}
	cfg, err := PodConfig(s.Base,
		map[string]string{"config.linkerd.io/skip-inbound-ports": "9000", "config.linkerd.io/proxy-uid": "2200"},
		map[string]string{"config.linkerd.io/skip-inbound-ports": "1", "config.linkerd.io/skip-outbound-ports": "3306", "config.linkerd.io/skip-subnets": "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.InboundPortsToIgnore.String(); got != "4190,4191,9000" {
		t.Errorf("inbound ignored %q: the pod's annotation wins over the namespace's", got)
	}
	if got := cfg.OutboundPortsToIgnore.String(); got != "25,3306" {
		t.Errorf("outbound ignored %q", got)
	}
	if len(cfg.SubnetsToIgnore) != 2 || cfg.ProxyUID != 2200 {
		t.Errorf("subnets %v, uid %d", cfg.SubnetsToIgnore, cfg.ProxyUID)
	}
	if len(s.Base.SubnetsToIgnore) != 1 {
		t.Errorf("PodConfig changed the base configuration: %v", s.Base.SubnetsToIgnore)
	}
	for key, val := range map[string]string{
		"config.linkerd.io/skip-outbound-ports": "smtp",
		"config.linkerd.io/skip-subnets":        "10.0.0.0/33",
		"config.linkerd.io/proxy-uid":           "proxy",
	} {
		if _, err := PodConfig(s.Base, map[string]string{key: val}, nil); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s=%q: %v, want an error naming the annotation", key, val, err)
		}
	}
}
