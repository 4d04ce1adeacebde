package localcluster

import (
	"bytes"
	"context"
	"fmt"
	discoveryv1 "k8s.io/api/discovery/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"log/slog"
	"net/netip"
	"os"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// ClusterDomain is the cluster's DNS domain.
const ClusterDomain = "cluster.local"

// hostsHeader opens every hosts file: the loopback names a pod's /etc/hosts always has.
const hostsHeader = `# Written by l5d test/localcluster: every Service's cluster IPs (ready pod IPs when headless). Rewritten in place.
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
`

// renderHosts returns the hosts file for svcs: for each Service with cluster IPs, one line
// per IP naming <svc>.<ns>.svc.<domain>, <svc>.<ns>.svc and <svc>.<ns>; for a headless
// Service, one such line per ready endpoint address of its EndpointSlices (as cluster DNS
// answers a headless name with the ready pods' addresses). Sorted so the output depends
// only on the objects.
func renderHosts(svcs []*corev1.Service, slices []*discoveryv1.EndpointSlice, domain string) []byte {
	type line struct{ ip, names string }
	var lines []line
	add := func(s *corev1.Service, ip string) {
		addr, err := netip.ParseAddr(ip)
		if err != nil { // "None" or garbage: nothing to resolve to
			return
		}
		base := s.Name + "." + s.Namespace
		lines = append(lines, line{addr.String(), base + ".svc." + domain + "\t" + base + ".svc\t" + base})
	}
	ready := map[string][]string{} // "<ns>/<svc>" -> ready endpoint addresses
	for _, sl := range slices {
		name := sl.Labels[discoveryv1.LabelServiceName]
		if name == "" {
			continue
		}
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			ready[sl.Namespace+"/"+name] = append(ready[sl.Namespace+"/"+name], ep.Addresses...)
		}
	}
	for _, s := range svcs {
		if s.Spec.ClusterIP == corev1.ClusterIPNone {
			seen := map[string]bool{}
			for _, ip := range ready[s.Namespace+"/"+s.Name] {
				if !seen[ip] {
					seen[ip] = true
					add(s, ip)
				}
			}
			continue
		}
		ips := s.Spec.ClusterIPs
		if len(ips) == 0 && s.Spec.ClusterIP != "" {
			ips = []string{s.Spec.ClusterIP}
		}
		for _, ip := range ips {
			add(s, ip)
		}
	}
	sort.Slice(lines, func(i, j int) bool {
		if lines[i].names != lines[j].names {
			return lines[i].names < lines[j].names
		}
		return lines[i].ip < lines[j].ip
	})
	var b bytes.Buffer
	b.WriteString(hostsHeader)
	for _, l := range lines {
		fmt.Fprintf(&b, "%s\t%s\n", l.ip, l.names)
	}
	return b.Bytes()
}

// writeInPlace replaces the content of the file at path without replacing the file: pods
// bind-mount it, and a rename would leave them with the old inode. It is truncated and
// written with one write call.
func writeInPlace(path string, content []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("opening hosts file: %w", err)
	}
	if _, err := f.Write(content); err != nil {
		f.Close()
		return fmt.Errorf("writing hosts file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing hosts file %s: %w", path, err)
	}
	return nil
}

// hostsWriter keeps a hosts file in step with the Services of a lister.
type hostsWriter struct {
	path   string
	lister corelisters.ServiceLister
	slices discoverylisters.EndpointSliceLister
	log    *slog.Logger
	kick   chan struct{}
}

// newHostsWriter writes the initial file (loopback names only) and returns a writer whose
// handler must be added to the Service informer and whose run must be started.
func newHostsWriter(path string, lister corelisters.ServiceLister, slices discoverylisters.EndpointSliceLister, log *slog.Logger) (*hostsWriter, error) {
	if err := writeInPlace(path, renderHosts(nil, nil, ClusterDomain)); err != nil {
		return nil, err
	}
	return &hostsWriter{path: path, lister: lister, slices: slices, log: log, kick: make(chan struct{}, 1)}, nil
}

// handler asks for a rewrite on every Service or EndpointSlice change.
func (h *hostsWriter) handler() cache.ResourceEventHandler {
	kick := func() {
		select {
		case h.kick <- struct{}{}:
		default:
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { kick() },
		UpdateFunc: func(any, any) { kick() },
		DeleteFunc: func(any) { kick() },
	}
}

// run rewrites the file after changes (several changes may give one rewrite) until ctx ends.
func (h *hostsWriter) run(ctx context.Context) {
	var last []byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.kick:
		}
		svcs, err := h.lister.List(labels.Everything())
		if err != nil {
			h.log.Error("listing services for the hosts file", "err", err)
			continue
		}
		slices, err := h.slices.List(labels.Everything())
		if err != nil {
			h.log.Error("listing endpoint slices for the hosts file", "err", err)
			continue
		}
		content := renderHosts(svcs, slices, ClusterDomain)
		if bytes.Equal(content, last) {
			continue
		}
		if err := writeInPlace(h.path, content); err != nil {
			h.log.Error("updating the hosts file", "err", err)
			continue
		}
		last = content
	}
}
