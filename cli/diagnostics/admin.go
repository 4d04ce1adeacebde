package diagnostics

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/l5d-go/l5d/cli/podconn"
	"github.com/l5d-go/l5d/cli/resource"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// ProxyAdminPort is the proxy's admin port, serving /metrics and /identity/certificate.
const ProxyAdminPort = 4191

// AdminEndpoint is one admin server to read: a container's port of a pod.
type AdminEndpoint struct {
	Namespace, Pod string
	// Container is the container serving the port; empty for a proxy, whose header
	// names only the pod.
	Container string
	Port      int
	// Index and Of number the pod among the selected ones, from 1.
	Index, Of int
}

// ProxyEndpoints returns the proxy admin endpoint of each meshed pod of pods, numbered
// among the meshed ones. Pods without a proxy are left out.
func ProxyEndpoints(pods []corev1.Pod) []AdminEndpoint {
	var out []AdminEndpoint
	for _, p := range pods {
		if resource.Meshed(&p) {
			out = append(out, AdminEndpoint{Namespace: p.Namespace, Pod: p.Name, Port: ProxyAdminPort})
		}
	}
	for i := range out {
		out[i].Index, out[i].Of = i+1, len(out)
	}
	return out
}

// ControllerEndpoints returns, for every pod of pods, the admin endpoint of each
// container other than the proxy that declares a port named "admin-http" or, lacking
// one, a port in 9990-9999 (the control plane's admin ports). Pods without such a
// container are left out of the numbering.
func ControllerEndpoints(pods []corev1.Pod) []AdminEndpoint {
	var out []AdminEndpoint
	n := 0
	for _, p := range pods {
		var eps []AdminEndpoint
		for _, c := range p.Spec.Containers {
			if c.Name == resource.ProxyContainer {
				continue
			}
			if port := adminPort(c); port != 0 {
				eps = append(eps, AdminEndpoint{Namespace: p.Namespace, Pod: p.Name, Container: c.Name, Port: port})
			}
		}
		if len(eps) == 0 {
			continue
		}
		n++
		for i := range eps {
			eps[i].Index = n
		}
		out = append(out, eps...)
	}
	for i := range out {
		out[i].Of = n
	}
	return out
}

func adminPort(c corev1.Container) int {
	for _, p := range c.Ports {
		if p.Name == "admin-http" {
			return int(p.ContainerPort)
		}
	}
	for _, p := range c.Ports {
		if p.ContainerPort >= 9990 && p.ContainerPort <= 9999 {
			return int(p.ContainerPort)
		}
	}
	return 0
}

// WriteMetrics fetches /metrics of each endpoint through the API server and writes it
// after a header as `linkerd diagnostics` prints it:
//
//	#
//	# POD web-5b97875957-xn269 (1 of 1)
//	# CONTAINER destination        (control-plane containers only)
//	#
//
// An endpoint that cannot be read gets "# ERROR ..." in its block; the others are still
// written and the returned error counts the failures.
func WriteMetrics(ctx context.Context, w io.Writer, client kubernetes.Interface, eps []AdminEndpoint) error {
	failed := 0
	for _, e := range eps {
		fmt.Fprintf(w, "#\n# POD %s (%d of %d)\n", e.Pod, e.Index, e.Of)
		if e.Container != "" {
			fmt.Fprintf(w, "# CONTAINER %s\n", e.Container)
		}
		fmt.Fprintln(w, "#")
		body, err := podconn.Get(ctx, client, e.Namespace, e.Pod, e.Port, "metrics")
		if err != nil {
			failed++
			fmt.Fprintf(w, "# ERROR %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
			continue
		}
		if _, err := w.Write(body); err != nil {
			return fmt.Errorf("writing metrics: %w", err)
		}
		if len(body) > 0 && body[len(body)-1] != '\n' {
			fmt.Fprintln(w)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d admin endpoints could not be read", failed, len(eps))
	}
	return nil
}
