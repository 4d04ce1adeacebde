// Package podconn reaches a pod's ports through the Kubernetes API server, so the CLI
// needs no manual `kubectl port-forward`: HTTP GETs through the pods/proxy subresource
// (as `kubectl get --raw /api/v1/namespaces/NS/pods/POD:PORT/proxy/PATH`) and TCP
// port-forwards through pods/portforward (as `kubectl port-forward`), over websockets
// with a fallback to SPDY.
package podconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/streaming/pkg/httpstream"
)

// Get fetches path (e.g. "metrics") from the pod's port through the API server's
// pods/proxy subresource and returns the body. A refusal (status other than 2xx) is an
// error naming the pod and port, with the API server's or pod's explanation when short.
func Get(ctx context.Context, client kubernetes.Interface, ns, pod string, port int, path string) ([]byte, error) {
	body, err := client.CoreV1().RESTClient().Get().
		Namespace(ns).Resource("pods").Name(pod + ":" + strconv.Itoa(port)).
		SubResource("proxy").Suffix(path).Do(ctx).Raw()
	if err != nil {
		if why := strings.TrimSpace(string(body)); why != "" && len(why) < 512 {
			return nil, fmt.Errorf("GET /%s on pod %s/%s port %d through the API server: %w: %s", path, ns, pod, port, err, why)
		}
		return nil, fmt.Errorf("GET /%s on pod %s/%s port %d through the API server: %w", path, ns, pod, port, err)
	}
	return body, nil
}

// Forward is an open port-forward from a loopback port to a pod's port.
type Forward struct {
	// Addr is the local end, "127.0.0.1:PORT".
	Addr string
	pf   *portforward.PortForwarder
	stop chan struct{}
	once sync.Once
	done chan error
}

// Close stops forwarding and closes the local listener; it may be called more than once.
func (f *Forward) Close() {
	f.once.Do(func() {
		close(f.stop)
		<-f.done
	})
}

// Open starts forwarding a free loopback port to port of pod ns/pod through the API
// server and returns once the local port listens (or ctx ends, or the API server
// refuses, e.g. because the pod is not running).
func Open(ctx context.Context, cfg *rest.Config, ns, pod string, port int) (*Forward, error) {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	u := client.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name(pod).SubResource("portforward").URL()
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("port-forward transport: %w", err)
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	if ws, err := portforward.NewSPDYOverWebsocketDialer(u, cfg); err == nil {
		dialer = portforward.NewFallbackDialer(ws, dialer, func(err error) bool {
			return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
		})
	}
	stop, ready := make(chan struct{}), make(chan struct{})
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(port)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		return nil, fmt.Errorf("port-forward to pod %s/%s port %d: %w", ns, pod, port, err)
	}
	f := &Forward{pf: pf, stop: stop, done: make(chan error, 1)}
	go func() { f.done <- pf.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-f.done:
		if err == nil {
			err = errors.New("stopped before it was ready")
		}
		return nil, fmt.Errorf("port-forward to pod %s/%s port %d: %w", ns, pod, port, err)
	case <-ctx.Done():
		close(stop) // the forwarder's goroutine ends once its dial returns
		return nil, fmt.Errorf("port-forward to pod %s/%s port %d: %w", ns, pod, port, ctx.Err())
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) != 1 {
		f.Close()
		return nil, fmt.Errorf("port-forward to pod %s/%s port %d: no local port: %v", ns, pod, port, err)
	}
	f.Addr = "127.0.0.1:" + strconv.Itoa(int(ports[0].Local))
	return f, nil
}
