package servicemirror

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/l5d-go/l5d/multicluster/gatewayprobe"
	mc "github.com/l5d-go/l5d/pkg/apis/multicluster"
)

// LinkRunner runs the service mirror of one Link, named Name in Namespace: it reads the
// Link and its credentials Secret, runs a Controller against the linked cluster and a
// gatewayprobe.Prober against its gateway, restarts both when the Link's spec changes,
// and deletes the Link's mirrors (Cleanup) when the Link is deleted.
type LinkRunner struct {
	Name, Namespace string
	Local           kubernetes.Interface
	Dynamic         dynamic.Interface
	Log             *slog.Logger
	Metrics         *Metrics
	ProbeMetrics    *gatewayprobe.Metrics
	// ProbeClient does the gateway probes (gatewayprobe.Prober's default when nil).
	ProbeClient *http.Client

	running atomic.Bool
}

// Running reports whether a Link is loaded and its controller has listed the linked
// cluster's Services.
func (r *LinkRunner) Running() bool { return r.running.Load() }

// Run serves the Link until ctx ends.
func (r *LinkRunner) Run(ctx context.Context) error {
	if r.Log == nil {
		r.Log = slog.Default()
	}
	f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(r.Dynamic, 0, r.Namespace, func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", r.Name).String()
	})
	inf := f.ForResource(mc.Links)
	changed := make(chan struct{}, 1)
	notify := func(any) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: notify, UpdateFunc: func(_, o any) { notify(o) }, DeleteFunc: notify,
	}); err != nil {
		return fmt.Errorf("watching link %s/%s: %w", r.Namespace, r.Name, err)
	}
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
		return nil
	}
	var current *mc.Link
	stop := func() {}
	defer func() { stop() }()
	for {
		obj, err := inf.Lister().ByNamespace(r.Namespace).Get(r.Name)
		var link *mc.Link
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return fmt.Errorf("reading link %s/%s: %w", r.Namespace, r.Name, err)
		default:
			link = &mc.Link{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.(*unstructured.Unstructured).Object, link); err != nil {
				r.Log.Error("link cannot be read", "link", r.Name, "err", err)
				link = nil
			}
		}
		switch {
		case link == nil && current != nil:
			stop()
			stop = func() {}
			deleted, err := Cleanup(ctx, r.Local, current.Spec.TargetClusterName)
			r.Log.Info("link deleted; mirrors removed", "link", r.Name, "deleted", deleted, "err", err)
			current = nil
		case link != nil && (current == nil || !reflect.DeepEqual(link.Spec, current.Spec)):
			stop()
			current = link
			stop = r.start(ctx, link)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// start runs serve in the background; the function it returns stops it and waits.
func (r *LinkRunner) start(ctx context.Context, link *mc.Link) func() {
	gctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.serve(gctx, link); err != nil && gctx.Err() == nil {
			r.Log.Error("service mirror stopped; waiting for the link to change", "link", r.Name, "err", err)
		}
	}()
	return func() {
		cancel()
		<-done
		r.running.Store(false)
	}
}

// serve runs the controller and the prober for one version of the Link.
func (r *LinkRunner) serve(ctx context.Context, link *mc.Link) error {
	cfg, err := mc.Parse(link)
	if err != nil {
		return err
	}
	// The credentials may be applied after the Link: wait for them.
	var remote kubernetes.Interface
	for remote == nil {
		secret, err := r.Local.CoreV1().Secrets(link.Namespace).Get(ctx, cfg.Secret, metav1.GetOptions{})
		if err == nil {
			rc, err := mc.RemoteConfig(secret)
			if err != nil {
				return err
			}
			rc.UserAgent = "linkerd-service-mirror"
			if remote, err = kubernetes.NewForConfig(rc); err != nil {
				return fmt.Errorf("link %s: client of the linked cluster: %w", link.Name, err)
			}
			break
		}
		r.Log.Warn("credentials of the linked cluster not readable yet", "secret", link.Namespace+"/"+cfg.Secret, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Second): // retry interval
		}
	}
	c := &Controller{Link: cfg, Local: r.Local, Remote: remote, Log: r.Log, Metrics: r.Metrics}
	if cfg.Gateway {
		p := &gatewayprobe.Prober{
			Cluster:          cfg.ClusterName,
			URL:              "http://" + net.JoinHostPort(cfg.GatewayAddress, strconv.Itoa(cfg.Probe.Port)) + cfg.Probe.Path,
			Period:           cfg.Probe.Period,
			Timeout:          cfg.Probe.Timeout,
			FailureThreshold: cfg.Probe.FailureThreshold,
			OnChange:         c.SetGatewayAlive,
			Metrics:          r.ProbeMetrics,
			Log:              r.Log,
			Client:           r.ProbeClient,
		}
		go p.Run(ctx)
	}
	go writeStatus(ctx, r.Dynamic, link.Namespace, link.Name, c)
	go func() {
		for !c.Synced() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond): // polling interval
			}
		}
		r.running.Store(true)
	}()
	return c.Run(ctx)
}
