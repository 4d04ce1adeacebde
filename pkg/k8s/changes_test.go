package k8s

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/test/kube"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// waitClosed fails t unless ch is closed within eventually.Timeout.
func waitClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(eventually.Timeout):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestChanges(t *testing.T) {
	c := NewChanges()
	pod := Key{Scope: "ns", Name: "web"}
	other := Key{Scope: "ns", Name: "db"}
	elsewhere := Key{Scope: "other", Name: "web"}

	web, db, far, anyCh := c.For(pod), c.For(other), c.For(elsewhere), c.Any()
	if c.For(pod) != web {
		t.Fatal("a key's watchers share one channel until a change")
	}
	c.Notify(pod)
	if !closed(web) || closed(db) || closed(far) {
		t.Fatalf("Notify(%v) closed web=%t db=%t other/web=%t, want only web", pod, closed(web), closed(db), closed(far))
	}
	if !closed(anyCh) {
		t.Error("Any is not closed by a change")
	}
	// Changes coalesce: the next watcher gets a fresh channel, which the earlier
	// notification does not close.
	web, anyCh = c.For(pod), c.Any()
	if closed(web) || closed(anyCh) {
		t.Error("a channel taken after a change is already closed")
	}
	c.Notify(Key{Scope: "ns"})
	if !closed(web) || !closed(db) || closed(far) {
		t.Errorf("Notify of scope ns closed web=%t db=%t other/web=%t, want web and db", closed(web), closed(db), closed(far))
	}
	c.Notify(Key{Scope: "nobody", Name: "watches"})
	if closed(far) {
		t.Error("a key nobody watches woke another")
	}
	web = c.For(pod)
	c.NotifyAll()
	if !closed(web) || !closed(far) {
		t.Error("NotifyAll left a watcher asleep")
	}
	if closed(c.For(pod)) || closed(c.For(elsewhere)) {
		t.Error("a channel taken after NotifyAll is already closed")
	}
}

// The handler wakes the keys of old and new objects, everything for objects it cannot
// attribute, and nobody for updates the filter rejects.
func TestChangesHandler(t *testing.T) {
	c := NewChanges()
	byLabel := func(obj any) ([]Key, bool) {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok {
			return nil, false
		}
		return []Key{{Scope: cm.Namespace, Name: cm.Labels["app"]}}, true
	}
	cm := func(app string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cm", Labels: map[string]string{"app": app}}}
	}
	h := c.Handler(byLabel)
	a, b := c.For(Key{"ns", "a"}), c.For(Key{"ns", "b"})
	h.OnUpdate(cm("a"), cm("b"))
	if !closed(a) || !closed(b) {
		t.Error("an update that moves an object between keys must wake both")
	}
	a = c.For(Key{"ns", "a"})
	h.OnDelete(cache.DeletedFinalStateUnknown{Key: "ns/cm", Obj: cm("a")})
	if !closed(a) {
		t.Error("a deletion learnt from a relist did not wake its key")
	}
	a = c.For(Key{"ns", "a"})
	h.OnAdd(&corev1.Secret{}, false)
	if !closed(a) {
		t.Error("an object the keys function does not know must wake everyone")
	}

	// KeysByName looks up the new object only; IfChanged drops updates that change
	// nothing.
	var looked []string
	h = c.Handler(func(obj any) ([]Key, bool) {
		looked = append(looked, obj.(*corev1.ConfigMap).Labels["app"])
		return byLabel(obj)
	}, KeysByName(), IfChanged(func(old, cur any) bool {
		return !maps.Equal(old.(*corev1.ConfigMap).Labels, cur.(*corev1.ConfigMap).Labels)
	}))
	a, b = c.For(Key{"ns", "a"}), c.For(Key{"ns", "b"})
	h.OnUpdate(cm("a"), cm("a"))
	if closed(a) || len(looked) != 0 {
		t.Errorf("an update IfChanged rejects woke a watcher (looked up %v)", looked)
	}
	h.OnUpdate(cm("a"), cm("b"))
	if closed(a) || !closed(b) || len(looked) != 1 {
		t.Errorf("KeysByName: woke a=%t b=%t after looking up %v, want b alone", closed(a), closed(b), looked)
	}
}

// Against the API server: an Informers set started with a bounded wait, a Changes
// handler on one of its informers waking only the watchers of what changed, and
// optional kinds picked by what the server serves.
func TestInformersWithChanges(t *testing.T) {
	cl := kube.Shared(t)
	ns := cl.Namespace(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	set := NewInformers(cl.Client(), cl.Dynamic())
	changes := NewChanges()
	cms := set.Kube.Core().V1().ConfigMaps()
	if _, err := cms.Informer().AddEventHandler(changes.Handler(func(obj any) ([]Key, bool) {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok {
			return nil, false
		}
		return []Key{{Scope: cm.Namespace, Name: cm.Name}}, true
	}, KeysByName())); err != nil {
		t.Fatal(err)
	}
	missing := schema.GroupVersionResource{Group: "example.l5d.test", Version: "v1", Resource: "widgets"}
	secrets := schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	inf, ok, err := set.Optional(missing, secrets)
	if err != nil || !ok || inf.Informer() != set.Dynamic.ForResource(secrets).Informer() {
		t.Fatalf("Optional(widgets, secrets) = %t, %v; want the secrets informer", ok, err)
	}
	if _, ok, err := set.Optional(missing); ok || err != nil {
		t.Errorf("Optional(widgets) = %t, %v; want not served", ok, err)
	}
	if err := set.Start(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := inf.Lister().ByNamespace(ns).List(labels.Everything()); err != nil {
		t.Errorf("the optional informer's cache: %v", err)
	}

	web, db := changes.For(Key{ns, "web"}), changes.For(Key{ns, "db"})
	cl.Apply(t, ns, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n")
	waitClosed(t, "the web ConfigMap's creation to wake its watcher", web)
	// Events of one informer arrive in order: once db's watcher is woken, web's creation
	// has been handled and did not wake it.
	if closed(db) {
		t.Fatal("creating web woke the watcher of db")
	}
	cl.Apply(t, ns, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: db}\n")
	waitClosed(t, "the db ConfigMap's creation to wake its watcher", db)
}
