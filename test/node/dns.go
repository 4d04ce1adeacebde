package node

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// DefaultClusterDomain is the cluster domain when Config.ClusterDomain is empty.
const DefaultClusterDomain = "cluster.local"

// Limits the kubelet applies to a pod's resolv.conf.
const (
	maxNameservers = 3
	maxSearches    = 32
)

// resolvConf returns the resolv.conf the kubelet writes for pod, given the cluster DNS
// server (invalid when there is none) and domain, and false when the pod keeps the node's
// own file (dnsPolicy Default, or ClusterFirst without a cluster DNS server):
//
//   - ClusterFirst (the default) and ClusterFirstWithHostNet: nameserver clusterDNS,
//     search <ns>.svc.<domain> svc.<domain> <domain>, options ndots:5;
//   - None: only what spec.dnsConfig says;
//
// then spec.dnsConfig is merged in as the kubelet does: its nameservers and searches are
// appended (duplicates dropped, at most 3 nameservers and 32 search domains), its options
// replace same-named ones and the rest are appended.
func resolvConf(pod *corev1.Pod, clusterDNS netip.Addr, domain string) ([]byte, bool) {
	var servers, searches []string
	type option struct{ name, value string }
	var options []option
	switch pod.Spec.DNSPolicy {
	case corev1.DNSNone:
	case corev1.DNSDefault:
		return nil, false
	default: // ClusterFirst, ClusterFirstWithHostNet, unset
		if !clusterDNS.IsValid() {
			return nil, false
		}
		servers = []string{clusterDNS.String()}
		searches = []string{pod.Namespace + ".svc." + domain, "svc." + domain, domain}
		options = []option{{"ndots", "5"}}
	}
	if cfg := pod.Spec.DNSConfig; cfg != nil {
		for _, s := range cfg.Nameservers {
			if !slices.Contains(servers, s) {
				servers = append(servers, s)
			}
		}
		for _, s := range cfg.Searches {
			if !slices.Contains(searches, s) {
				searches = append(searches, s)
			}
		}
		for _, o := range cfg.Options {
			v := ""
			if o.Value != nil {
				v = *o.Value
			}
			i := slices.IndexFunc(options, func(x option) bool { return x.name == o.Name })
			if i >= 0 {
				options[i].value = v
			} else {
				options = append(options, option{o.Name, v})
			}
		}
	}
	servers = servers[:min(len(servers), maxNameservers)]
	searches = searches[:min(len(searches), maxSearches)]
	var b strings.Builder
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(searches, " "))
	}
	if len(options) > 0 {
		words := make([]string, len(options))
		for i, o := range options {
			words[i] = o.name
			if o.value != "" {
				words[i] += ":" + o.value
			}
		}
		fmt.Fprintf(&b, "options %s\n", strings.Join(words, " "))
	}
	return []byte(b.String()), true
}

// writeResolvConf writes the pod's resolv.conf to its directory and returns the path, or
// "" when the pod keeps the node's file.
func (w *podWorker) writeResolvConf(pod *corev1.Pod) (string, error) {
	domain := w.a.cfg.ClusterDomain
	if domain == "" {
		domain = DefaultClusterDomain
	}
	content, ok := resolvConf(pod, w.a.cfg.ClusterDNS, domain)
	if !ok {
		return "", nil
	}
	path := filepath.Join(w.dir, "resolv.conf")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		return "", fmt.Errorf("writing the pod's resolv.conf: %w", err)
	}
	return path, nil
}
