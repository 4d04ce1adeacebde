package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/l5d-go/l5d/test/netns"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probe runs the container's startup probe until it passes (marking the container
// started), then its readiness and liveness probes, until ctx ends. A failed startup or
// liveness probe kills the container's process.
func (c *ctr) probe(ctx context.Context, proc *netns.Process) {
	if sp := c.spec.StartupProbe; sp != nil {
		passed := false
		c.probeLoop(ctx, sp, func(ok bool, successes, failures int) bool {
			if ok && successes >= threshold(sp.SuccessThreshold) {
				passed = true
				return true
			}
			if !ok && failures >= threshold(sp.FailureThreshold) {
				c.w.log.Info("startup probe failed; killing the container", "container", c.spec.Name)
				c.kill(proc, sp.TerminationGracePeriodSeconds)
				return true
			}
			return false
		})
		if !passed {
			return
		}
	}
	c.setStarted()
	done := make(chan struct{})
	if rp := c.spec.ReadinessProbe; rp != nil {
		go func() {
			defer func() { done <- struct{}{} }()
			c.probeLoop(ctx, rp, func(ok bool, successes, failures int) bool {
				if ok && successes >= threshold(rp.SuccessThreshold) {
					c.setReady(true)
				}
				if !ok && failures >= threshold(rp.FailureThreshold) {
					c.setReady(false)
				}
				return false
			})
		}()
	} else {
		go func() { done <- struct{}{} }()
	}
	if lp := c.spec.LivenessProbe; lp != nil {
		c.probeLoop(ctx, lp, func(ok bool, _, failures int) bool {
			if !ok && failures >= threshold(lp.FailureThreshold) {
				c.w.log.Info("liveness probe failed; killing the container", "container", c.spec.Name)
				c.kill(proc, lp.TerminationGracePeriodSeconds)
				return true
			}
			return false
		})
	}
	<-done
}

// threshold is a probe threshold, at least 1.
func threshold(n int32) int {
	return max(int(n), 1)
}

// probeLoop runs p after its initial delay and then every period, passing each result and
// the counts of consecutive successes and failures to f, until f returns true or ctx ends.
func (c *ctr) probeLoop(ctx context.Context, p *corev1.Probe, f func(ok bool, successes, failures int) bool) {
	if !sleep(ctx, time.Duration(p.InitialDelaySeconds)*time.Second) {
		return
	}
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	successes, failures := 0, 0
	for {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := c.runProbe(pctx, p.ProbeHandler)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
		}
		if f(err == nil, successes, failures) {
			return
		}
		if !sleep(ctx, period) {
			return
		}
	}
}

// sleep waits d or until ctx ends, reporting whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// kill stops a container's process as a failed probe does: SIGTERM, then SIGKILL after the
// probe's (or the pod's) grace period.
func (c *ctr) kill(proc *netns.Process, probeGrace *int64) {
	grace := int64(30)
	if g := c.w.current().Spec.TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	if probeGrace != nil {
		grace = *probeGrace
	}
	_ = proc.Signal(syscall.SIGTERM)
	select {
	case <-proc.Done():
	case <-time.After(time.Duration(grace) * time.Second):
		_ = proc.Kill()
	}
}

// runProbe runs one probe check; nil means success.
func (c *ctr) runProbe(ctx context.Context, h corev1.ProbeHandler) error {
	switch {
	case h.Exec != nil:
		return c.exec(ctx, h.Exec.Command)
	case h.HTTPGet != nil:
		return c.httpGet(ctx, h.HTTPGet)
	case h.TCPSocket != nil:
		host := h.TCPSocket.Host
		if host == "" {
			host = c.w.podIP()
		}
		port, err := c.port(h.TCPSocket.Port)
		if err != nil {
			return err
		}
		conn, err := c.w.a.cfg.Network.Node.Dial(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		return conn.Close()
	case h.GRPC != nil:
		return errors.New("gRPC probes are not supported by the test node agent")
	}
	return errors.New("probe without a handler")
}

// runHandler runs a lifecycle hook (postStart or preStop).
func (c *ctr) runHandler(ctx context.Context, h *corev1.LifecycleHandler) error {
	switch {
	case h.Exec != nil:
		return c.exec(ctx, h.Exec.Command)
	case h.HTTPGet != nil:
		return c.httpGet(ctx, h.HTTPGet)
	case h.Sleep != nil:
		if !sleep(ctx, time.Duration(h.Sleep.Seconds)*time.Second) {
			return ctx.Err()
		}
		return nil
	case h.TCPSocket != nil:
		return errors.New("tcpSocket lifecycle hooks are deprecated and not supported")
	}
	return errors.New("lifecycle hook without a handler")
}

// podIP is the pod's IPv4 address ("" before it has one).
func (w *podWorker) podIP() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.ips) == 0 {
		return ""
	}
	return w.ips[0].String()
}

// port resolves a probe's port: a number, or the name of one of the container's ports.
func (c *ctr) port(p intstr.IntOrString) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range c.spec.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("container %s has no port named %q", c.spec.Name, p.StrVal)
}

// httpGet makes a probe's HTTP request from the node's namespace; 2xx and 3xx pass.
func (c *ctr) httpGet(ctx context.Context, g *corev1.HTTPGetAction) error {
	host := g.Host
	if host == "" {
		host = c.w.podIP()
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() {
		host = "[" + host + "]"
	}
	port, err := c.port(g.Port)
	if err != nil {
		return err
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s:%d%s", scheme, host, port, path), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kube-probe/1.34")
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	node := c.w.a.cfg.Network.Node
	client := &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return node.Dial(ctx, network, addr)
			},
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // kubelet probes do not verify
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("HTTP probe got status %d", resp.StatusCode)
	}
	return nil
}
