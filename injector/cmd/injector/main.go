// Command injector is the l5d proxy injector: the mutating admission webhook that adds the
// linkerd-init and linkerd-proxy containers to pods. It serves AdmissionReview v1 over HTTPS
// on -addr (certificate and key from files, reloaded when they change) and its admin server
// (/metrics, /ready, /live) on -admin-addr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/record"

	"github.com/l5d-go/l5d/injector/webhook"
	"github.com/l5d-go/l5d/pkg/component"
	"github.com/l5d-go/l5d/pkg/inject"
	"github.com/l5d-go/l5d/pkg/k8s"
	pkgwebhook "github.com/l5d-go/l5d/pkg/webhook"
)

func main() { component.Main("injector", run) }

// options are the injector's command-line settings besides the injection values.
type options struct {
	addr, certFile, keyFile         string
	anchorsFile, anchorsMap, native string
	common                          *component.Flags
}

// parseFlags parses the injector's command line: the injection values (the chart passes
// every proxy.* and proxyInit.* Helm value that reaches injected pods as a flag) and the
// other options.
func parseFlags(args []string) (inject.Values, *options, error) {
	d := inject.DefaultValues()
	o := &options{}
	fs := flag.NewFlagSet("injector", flag.ContinueOnError)
	fs.StringVar(&o.addr, "addr", ":8443", "address to serve the admission webhook (HTTPS) on")
	fs.StringVar(&o.certFile, "tls-cert-file", "/var/run/linkerd/tls/tls.crt", "webhook serving certificate (PEM), reloaded when it changes")
	fs.StringVar(&o.keyFile, "tls-key-file", "/var/run/linkerd/tls/tls.key", "webhook serving key (PEM), reloaded when it changes")
	fs.StringVar(&o.anchorsFile, "identity-trust-anchors-file", "", "PEM trust anchors, read once; when empty they come from -identity-trust-roots-configmap and follow its changes")
	fs.StringVar(&o.anchorsMap, "identity-trust-roots-configmap", "linkerd-identity-trust-roots", "ConfigMap (in -controller-namespace) holding the trust anchors under ca-bundle.crt")
	fs.StringVar(&o.native, "native-sidecar", "auto", "inject the proxy as a native sidecar: auto (when the API server is Kubernetes >= 1.29), true or false")
	d.RegisterFlags(fs)
	o.common = component.Register(fs, "linkerd-proxy-injector", ":9995")
	if err := fs.Parse(args); err != nil {
		return d, nil, err
	}
	return d, o, nil
}

// run serves until ctx ends or something fails.
func run(ctx context.Context, args []string) error {
	d, o, err := parseFlags(args)
	if err != nil {
		return err
	}
	addr, certFile, keyFile := &o.addr, &o.certFile, &o.keyFile
	anchorsFile, anchorsMap, native := &o.anchorsFile, &o.anchorsMap, &o.native
	comp, err := o.common.Start()
	if err != nil {
		return err
	}
	log := comp.Log
	if webhook.SetGCPercent() {
		log.Debug("garbage collector target set (GOGC in the environment overrides it)", "gogc", webhook.GCPercent)
	}
	clients, err := comp.Clients()
	if err != nil {
		return err
	}
	srv, err := pkgwebhook.NewServer(*addr, *certFile, *keyFile)
	if err != nil {
		return err
	}

	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := k8s.CheckPermissions(startCtx, clients.Kube, webhook.Permissions(d.ControlPlaneNamespace)); err != nil {
		return fmt.Errorf("RBAC: %w", err)
	}
	switch *native {
	case "true", "false":
		d.NativeSidecar = *native == "true"
	case "auto":
		ok, version, err := webhook.SupportsNativeSidecars(clients.Kube.Discovery())
		if err != nil {
			return fmt.Errorf("-native-sidecar=auto: %w", err)
		}
		d.NativeSidecar = ok
		log.Info("native sidecars", "enabled", ok, "kubernetes", version)
	default:
		return fmt.Errorf("-native-sidecar: %q is not auto, true or false", *native)
	}
	if *anchorsFile != "" {
		pem, err := os.ReadFile(*anchorsFile)
		if err != nil {
			return fmt.Errorf("-identity-trust-anchors-file: %w", err)
		}
		d.IdentityTrustAnchorsPEM = string(pem)
	} else if d.IdentityTrustAnchorsPEM, err = webhook.TrustAnchorsFromConfigMap(startCtx, clients.Kube, d.ControlPlaneNamespace, *anchorsMap, "ca-bundle.crt"); err != nil {
		return err
	}
	if err := d.Validate(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	values := webhook.NewValuesStore(d)
	values.Log = log

	reg := comp.Registry
	metrics := webhook.NewMetrics()
	if err := metrics.Register(reg); err != nil {
		return err
	}
	adm := comp.Admin
	ready := adm.NewReadyFlag("informer-caches")
	adm.AddCheck("serving-certificate", srv.Err)

	factory := k8s.NewInformerFactory(clients.Kube, 0)
	nsLister := factory.Core().V1().Namespaces().Lister()
	meta, err := metadata.NewForConfig(clients.Config)
	if err != nil {
		return fmt.Errorf("kubernetes metadata client: %w", err)
	}
	metaFactory := metadatainformer.NewSharedInformerFactory(meta, 0)
	owners := webhook.NewOwnerCache(metaFactory)
	// The informers stop with gctx (cancelled once g.Wait returns); run returns only
	// after they have, so nothing of this run still reads process-wide state (klog's
	// logger) that another run in the same process sets.
	defer factory.Shutdown()
	defer metaFactory.Shutdown()
	broadcaster := record.NewBroadcaster()
	defer broadcaster.Shutdown()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: clients.Kube.CoreV1().Events("")})
	h := &webhook.Handler{
		Values:  values.Current,
		Cluster: &webhook.KubeCluster{Client: clients.Kube, Lister: nsLister, Owners: owners},
		Metrics: metrics,
		Events:  broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "linkerd-proxy-injector"}),
		Log:     log,
	}
	mux := http.NewServeMux()
	mux.Handle("/", h)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return comp.ServeAdmin(gctx) })
	g.Go(func() error {
		if err := k8s.StartAndSync(gctx, factory, time.Minute); err != nil {
			return err
		}
		if err := k8s.StartAndSync(gctx, metaFactory, time.Minute); err != nil {
			return err
		}
		if *anchorsFile == "" {
			// Rotated anchors reach pods created from now on.
			if err := values.WatchAnchors(gctx, clients.Kube, d.ControlPlaneNamespace, *anchorsMap, "ca-bundle.crt", time.Minute); err != nil {
				return err
			}
		}
		ready.Set(true)
		return nil
	})
	g.Go(func() error { return srv.Serve(gctx, mux, log) })
	log.Info("proxy injector starting", "addr", *addr, "admin", comp.AdminAddr, "namespace", d.ControlPlaneNamespace,
		"native_sidecar", d.NativeSidecar, "proxy_image", d.ProxyImage+":"+d.ProxyVersion)
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
