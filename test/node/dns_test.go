package node

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestResolvConfFollowsDNSPolicy(t *testing.T) {
	dns := netip.MustParseAddr("10.96.0.10")
	ndots2, timeout := "2", "3"
	extra := &corev1.PodDNSConfig{
		Nameservers: []string{"10.0.0.9", "10.96.0.10"},
		Searches:    []string{"corp.example", "svc.cluster.local"},
		Options:     []corev1.PodDNSConfigOption{{Name: "ndots", Value: &ndots2}, {Name: "timeout", Value: &timeout}, {Name: "edns0"}},
	}
	for _, tc := range []struct {
		name   string
		policy corev1.DNSPolicy
		config *corev1.PodDNSConfig
		dns    netip.Addr
		want   string // "" for the node's own file
	}{
		{"unset is ClusterFirst", "", nil, dns,
			"nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"},
		{"ClusterFirst", corev1.DNSClusterFirst, nil, dns,
			"nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"},
		{"ClusterFirst with dnsConfig", corev1.DNSClusterFirst, extra, dns,
			"nameserver 10.96.0.10\nnameserver 10.0.0.9\nsearch shop.svc.cluster.local svc.cluster.local cluster.local corp.example\noptions ndots:2 timeout:3 edns0\n"},
		{"ClusterFirstWithHostNet", corev1.DNSClusterFirstWithHostNet, nil, dns,
			"nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"},
		{"ClusterFirst without a cluster DNS server", corev1.DNSClusterFirst, nil, netip.Addr{}, ""},
		{"Default", corev1.DNSDefault, extra, dns, ""},
		{"None", corev1.DNSNone, extra, dns,
			"nameserver 10.0.0.9\nnameserver 10.96.0.10\nsearch corp.example svc.cluster.local\noptions ndots:2 timeout:3 edns0\n"},
		{"None without dnsConfig", corev1.DNSNone, nil, dns, ""},
	} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "p"}, Spec: corev1.PodSpec{DNSPolicy: tc.policy, DNSConfig: tc.config}}
		got, ok := resolvConf(pod, tc.dns, "cluster.local")
		if tc.want == "" && tc.name != "None without dnsConfig" {
			if ok {
				t.Errorf("%s: got a resolv.conf %q; want the node's own", tc.name, got)
			}
			continue
		}
		if !ok || string(got) != tc.want {
			t.Errorf("%s: got %q (own file %v); want %q", tc.name, got, ok, tc.want)
		}
	}
}

func TestResolvConfKeepsTheKubeletLimits(t *testing.T) {
	cfg := &corev1.PodDNSConfig{Nameservers: []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop"}, Spec: corev1.PodSpec{DNSPolicy: corev1.DNSClusterFirst, DNSConfig: cfg}}
	got, _ := resolvConf(pod, netip.MustParseAddr("10.96.0.10"), "cluster.local")
	want := "nameserver 10.96.0.10\nnameserver 10.0.0.1\nnameserver 10.0.0.2\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
	if string(got) != want {
		t.Errorf("four extra nameservers: got %q; want the first three in all, %q", got, want)
	}
}
