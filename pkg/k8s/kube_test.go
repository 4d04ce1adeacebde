package k8s

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/test/kube"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

// clientAs returns a clientset authenticating as service account ns/sa.
func clientAs(t *testing.T, c *kube.Cluster, ns, sa string) kubernetes.Interface {
	t.Helper()
	c.CreateServiceAccount(t, ns, sa)
	cfg := &rest.Config{
		Host:            c.Host(),
		BearerToken:     c.Token(t, ns, sa, kube.TokenOptions{}),
		TLSClientConfig: rest.TLSClientConfig{CAData: c.CA()},
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func TestClientsFromKubeconfig(t *testing.T) {
	c := kube.Shared(t)
	ns := c.Namespace(t)
	cfg := &Config{Kubeconfig: c.Kubeconfig(), UserAgent: "l5d-test"}
	clients, err := cfg.Clients()
	if err != nil {
		t.Fatal(err)
	}
	if clients.Config.UserAgent != "l5d-test" || clients.Config.Host != c.Host() {
		t.Errorf("config host %q agent %q, want %q l5d-test", clients.Config.Host, clients.Config.UserAgent, c.Host())
	}
	ctx := context.Background()
	if _, err := clients.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		t.Errorf("typed client: %v", err)
	}
	got, err := clients.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Get(ctx, ns, metav1.GetOptions{})
	if err != nil || got.GetName() != ns {
		t.Errorf("dynamic client: %v", err)
	}
}

func TestStartAndSync(t *testing.T) {
	c := kube.Shared(t)
	ns := c.Namespace(t)
	c.Apply(t, ns, `
apiVersion: v1
kind: ConfigMap
metadata: {name: one}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: two}
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	factory := NewInformerFactory(c.Client(), time.Minute, informers.WithNamespace(ns))
	lister := factory.Core().V1().ConfigMaps().Lister()
	if err := StartAndSync(ctx, factory, time.Minute); err != nil {
		t.Fatalf("typed factory: %v", err)
	}
	cms, err := lister.ConfigMaps(ns).List(labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	if names := names(cms); names != "kube-root-ca.crt,one,two" {
		t.Errorf("synced cache holds %s, want kube-root-ca.crt,one,two", names)
	}

	gvr := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	dyn := dynamicinformer.NewFilteredDynamicSharedInformerFactory(c.Dynamic(), 0, ns, nil)
	dynLister := dyn.ForResource(gvr).Lister()
	if err := StartAndSync(ctx, dyn, time.Minute); err != nil {
		t.Fatalf("dynamic factory: %v", err)
	}
	if objs, err := dynLister.ByNamespace(ns).List(labels.Everything()); err != nil || len(objs) != 3 {
		t.Errorf("dynamic cache holds %d objects (%v), want 3", len(objs), err)
	}
}

func names(cms []*corev1.ConfigMap) string {
	var out []string
	for _, cm := range cms {
		out = append(out, cm.Name)
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// A component without permission to list what it watches must fail at start with an
// error naming the informers, not hang.
func TestStartAndSyncFailsClearly(t *testing.T) {
	c := kube.Shared(t)
	ns := c.Namespace(t)
	client := clientAs(t, c, ns, "no-rights")

	factory := NewInformerFactory(client, 0)
	factory.Core().V1().Pods().Informer()
	factory.Discovery().V1().EndpointSlices().Informer()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := StartAndSync(ctx, factory, 2*time.Second)
	if !errors.Is(err, ErrSyncTimeout) {
		t.Fatalf("err = %v, want ErrSyncTimeout", err)
	}
	for _, want := range []string{"not synced after 2s", "*v1.EndpointSlice, *v1.Pod", "list and watch"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}

	// A cancelled context ends the wait too, and says so.
	factory = NewInformerFactory(client, 0)
	factory.Core().V1().Services().Informer()
	stopped, stop := context.WithCancelCause(context.Background())
	stop(errors.New("shutting down"))
	err = StartAndSync(stopped, factory, time.Hour)
	if err == nil || !strings.Contains(err.Error(), "stopped before informer caches synced (*v1.Service): shutting down") {
		t.Errorf("cancelled wait: err = %v", err)
	}
}

func TestCheckPermissions(t *testing.T) {
	c := kube.Shared(t)
	ns := c.Namespace(t)
	client := clientAs(t, c, ns, "watcher")
	c.Apply(t, ns, fmt.Sprintf(`
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: watch-pods}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: watcher-watch-pods}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: watch-pods}
subjects:
- {kind: ServiceAccount, name: watcher, namespace: %s}
`, ns))

	granted := []Permission{
		{Verb: "list", Resource: "pods", Namespace: ns},
		{Verb: "watch", Resource: "pods", Namespace: ns},
		{Verb: "list", Group: "discovery.k8s.io", Resource: "endpointslices", Namespace: ns},
	}
	missing := []Permission{
		{Verb: "list", Resource: "pods"},
		{Verb: "watch", Group: "discovery.k8s.io", Resource: "endpointslices", Namespace: ns},
		{Verb: "create", Resource: "serviceaccounts/token", Namespace: ns},
	}
	ctx := context.Background()
	// The authorizer learns of new bindings through its own informers: poll until the
	// grant is visible.
	deadline := time.Now().Add(time.Minute)
	for {
		err := CheckPermissions(ctx, client, granted)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("granted permissions still refused: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	err := CheckPermissions(ctx, client, append(granted, missing...))
	want := "missing RBAC permissions: list pods in all namespaces; watch endpointslices.discovery.k8s.io in namespace " + ns +
		"; create serviceaccounts/token in namespace " + ns
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}

	// The cluster admin holds everything.
	if err := CheckPermissions(ctx, c.Client(), missing); err != nil {
		t.Errorf("admin: %v", err)
	}

	// A client the API server does not accept gets an error, not a list of "missing".
	bad, err := kubernetes.NewForConfig(&rest.Config{
		Host: c.Host(), BearerToken: "not-a-token", TLSClientConfig: rest.TLSClientConfig{CAData: c.CA()},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = CheckPermissions(ctx, bad, granted[:1])
	if err == nil || !strings.Contains(err.Error(), "checking RBAC permission to list pods") || !strings.Contains(err.Error(), "Unauthorized") {
		t.Errorf("unauthenticated client: err = %v", err)
	}
}
