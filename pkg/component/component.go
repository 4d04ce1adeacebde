// Package component is the one skeleton of a control-plane component's main: the process
// lifetime (a context cancelled on SIGINT or SIGTERM, the error printed as "<name>: ..." with
// exit status 1), the flags every component shares (-admin-addr, -enable-pprof, the
// Kubernetes client flags and the logging flags), and what they build: a logger (with
// client-go's klog routed to it), a Prometheus registry with the Go and process collectors,
// the admin server (/metrics, /ready, /live and optionally /debug/pprof/) and Kubernetes
// clients that name the component in their user agent.
//
// A main reads:
//
//	func main() { component.Main("destination", run) }
//
//	func run(ctx context.Context, args []string) error {
//		fs := flag.NewFlagSet("destination", flag.ContinueOnError)
//		addr := fs.String("addr", ":8086", "...")
//		common := component.Register(fs, "linkerd-destination", ":9996")
//		if err := fs.Parse(args); err != nil {
//			return err
//		}
//		c, err := common.Start()
//		...
//		g.Go(func() error { return c.ServeAdmin(gctx) })
package component

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/l5d-go/l5d/pkg/admin"
	"github.com/l5d-go/l5d/pkg/k8s"
	"github.com/l5d-go/l5d/pkg/logging"
)

// Main runs run with a context cancelled on SIGINT or SIGTERM and the process arguments, and
// exits with status 1 after printing "name: error" when it fails.
func Main(name string, run func(ctx context.Context, args []string) error) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// Flags are the flags every component shares, registered on its flag set by Register.
type Flags struct {
	userAgent string
	adminAddr *string
	pprof     *bool
	kube      *k8s.Config
	logging   *logging.Config
}

// Register adds the shared flags to fs: -admin-addr (defaulting to defaultAdminAddr),
// -enable-pprof, the Kubernetes client flags (pkg/k8s) and the logging flags (pkg/logging).
// userAgent names the component to the API server ("linkerd-destination").
func Register(fs *flag.FlagSet, userAgent, defaultAdminAddr string) *Flags {
	return &Flags{
		userAgent: userAgent,
		adminAddr: fs.String("admin-addr", defaultAdminAddr, "address of the admin server (/metrics, /ready, /live)"),
		pprof:     fs.Bool("enable-pprof", false, "serve /debug/pprof/ on the admin server"),
		kube:      k8s.RegisterFlags(fs),
		logging:   logging.RegisterFlags(fs),
	}
}

// Component is what the shared flags build, once they are parsed.
type Component struct {
	// Log is the component's logger, built from the logging flags.
	Log *slog.Logger
	// Registry holds the component's metrics, with the Go and process collectors; the admin
	// server exposes it on /metrics.
	Registry *prometheus.Registry
	// Admin is the admin server; checks and ready flags are added to it before ServeAdmin.
	Admin *admin.Server
	// AdminAddr is the -admin-addr flag.
	AdminAddr string

	flags *Flags
}

// Start builds the logger, the registry and the admin server from the parsed flags. A bad
// logging flag is an error naming it.
func (f *Flags) Start() (*Component, error) {
	log, err := f.logging.Logger()
	if err != nil {
		return nil, err
	}
	k8s.LogToSlog(log)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Component{
		Log:       log,
		Registry:  reg,
		Admin:     admin.New(admin.Options{Gatherer: reg, EnablePprof: *f.pprof, Logger: log}),
		AdminAddr: *f.adminAddr,
		flags:     f,
	}, nil
}

// Kube returns the Kubernetes client configuration the flags describe, with the component's
// user agent.
func (c *Component) Kube() *k8s.Config {
	c.flags.kube.UserAgent = c.flags.userAgent
	return c.flags.kube
}

// Clients returns Kubernetes clients from the flags, naming the component in their user agent.
func (c *Component) Clients() (*k8s.Clients, error) {
	clients, err := c.Kube().Clients()
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return clients, nil
}

// ServeAdmin serves the admin server on -admin-addr until ctx ends.
func (c *Component) ServeAdmin(ctx context.Context) error { return c.Admin.Serve(ctx, c.AdminAddr) }
