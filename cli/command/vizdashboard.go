package command

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/l5d-go/l5d/cli/svcrelay"
)

// webService is the dashboard's Service in the viz namespace and its port's name.
const (
	webService  = "web"
	webPortName = "http"
)

func vizDashboardCmd(g *globals) *cobra.Command {
	var (
		f     relayFlags
		vizNS string
	)
	c := &cobra.Command{
		Use:   "dashboard [--port PORT] [--show linkerd|url]",
		Short: "Open the viz dashboard in a web browser",
		Long: "dashboard serves a local address that relays to the viz extension's web component\n" +
			"(Service web, port http) through the Kubernetes API server's service proxy, prints\n" +
			"it and opens it in the default browser (--show url only prints it). It runs until\n" +
			"interrupted. The dashboard only answers requests addressed to localhost, 127.0.0.1\n" +
			"or [::1] (the chart's dashboard.enforcedHostRegexp): keep --address one of those.\n\n" +
			"  linkerd viz dashboard\n" +
			"  linkerd viz dashboard --port 8080 --show url",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return f.serve(c, g, relayTarget{ns: vizNS, service: webService, port: webPortName, title: "Linkerd dashboard",
				ready: func(ctx context.Context, kube kubernetes.Interface) error {
					return waitWebReady(ctx, kube, vizNS, f.wait)
				}})
		},
	}
	f.register(c, 50750, "the dashboard")
	c.Flags().StringVar(&vizNS, "viz-namespace", DefaultVizNamespace, "namespace of the viz extension")
	return c
}

// relayFlags are the flags of a dashboard command.
type relayFlags struct {
	address, show string
	port          int
	wait          time.Duration
}

func (f *relayFlags) register(c *cobra.Command, port int, what string) {
	c.Flags().StringVar(&f.address, "address", "localhost", "address the local relay listens on")
	c.Flags().IntVarP(&f.port, "port", "p", port, "port the local relay listens on (0: any free port)")
	c.Flags().StringVar(&f.show, "show", "linkerd", "linkerd: print the address and open it in the browser; url: only print it")
	c.Flags().DurationVar(&f.wait, "wait", 5*time.Minute, "how long to wait for "+what+" to be available")
}

// relayTarget is what a dashboard command relays to: port (a name) of Service service in
// ns, once ready says so; its address is printed with path under title.
type relayTarget struct {
	ns, service, port, path, title string
	ready                          func(context.Context, kubernetes.Interface) error
}

// serve checks the flags, waits for the target, then relays a local port to it through
// the API server's service proxy (cli/svcrelay), printing the address and opening it in
// the browser unless --show url, until the command's context ends.
func (f *relayFlags) serve(c *cobra.Command, g *globals, t relayTarget) error {
	if f.show != "linkerd" && f.show != "url" {
		return fmt.Errorf("--show %q: want linkerd (open the browser) or url (print the address only)", f.show)
	}
	if f.port < 0 || f.port > 65535 {
		return fmt.Errorf("--port %d: want 0 (any free port) to 65535", f.port)
	}
	cfg, err := g.restConfig()
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx := c.Context()
	if err := t.ready(ctx, kube); err != nil {
		return err
	}
	relay, err := svcrelay.Handler(cfg, t.ns, t.service, t.port, nil)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(f.address, strconv.Itoa(f.port)))
	if err != nil {
		return fmt.Errorf("listening on %s:%d (choose another with --port): %w", f.address, f.port, err)
	}
	url := "http://" + ln.Addr().String()
	if f.address == "localhost" {
		url = "http://localhost:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	}
	url += t.path
	out := c.OutOrStdout()
	fmt.Fprintf(out, "%s available at:\n%s\n", t.title, url)
	if f.show == "linkerd" {
		fmt.Fprintf(out, "Opening %s in the default browser\n", t.title)
		if err := openBrowser(url); err != nil {
			fmt.Fprintf(c.ErrOrStderr(), "Failed to open the dashboard automatically (%v)\nVisit %s in your browser to view the dashboard\n", err, url)
		}
	}
	hs := &http.Server{Handler: relay, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving %s: %w", url, err)
	}
	return nil
}

// waitWebReady waits up to wait for Deployment web in ns to have an available replica.
func waitWebReady(ctx context.Context, kube kubernetes.Interface, ns string, wait time.Duration) error {
	return waitAvailable(ctx, kube, ns, webService, "the viz dashboard", wait,
		fmt.Errorf("the viz dashboard is not installed in namespace %s (deployment %s not found): run `linkerd viz install | kubectl apply -f -`", ns, webService))
}

// waitAvailable waits up to wait for Deployment name in ns (what, in errors) to have an
// available replica; notInstalled is the error when there is no such Deployment.
func waitAvailable(ctx context.Context, kube kubernetes.Interface, ns, name, what string, wait time.Duration, notInstalled error) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last error
	for {
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return notInstalled
		case err != nil:
			last = err
		case available(d):
			return nil
		default:
			last = fmt.Errorf("deployment %s/%s has no available replica", ns, name)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting %v for %s: %w", wait, what, last)
		case <-tick.C:
		}
	}
}

func available(d *appsv1.Deployment) bool { return d.Status.AvailableReplicas > 0 }

// openBrowser opens url in the desktop's default browser.
func openBrowser(url string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", url)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		cmd = exec.Command("xdg-open", url)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	return nil
}
