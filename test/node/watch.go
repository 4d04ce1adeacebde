package node

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// objWatch is an informer over one kind (Secret or ConfigMap) in one namespace, shared by
// the running pods whose volumes read objects of that kind there.
type objWatch struct {
	users int
	stop  chan struct{}
}

type watchKey struct{ namespace, kind string }

// watchObjects makes sure the Secrets and ConfigMaps of namespace named in refs are
// watched: every change (creation, update, deletion) of a referenced object kicks the
// volumes of the pods that read it. Each kind is watched once per namespace, for as long
// as some pod needs it; release (to call once) ends this caller's interest.
func (a *agent) watchObjects(namespace string, refs map[objRef]bool) (release func()) {
	kinds := map[string]bool{}
	for r := range refs {
		kinds[r.kind] = true
	}
	a.watchMu.Lock()
	defer a.watchMu.Unlock()
	var keys []watchKey
	for kind := range kinds {
		key := watchKey{namespace, kind}
		keys = append(keys, key)
		if ow := a.watches[key]; ow != nil {
			ow.users++
			continue
		}
		a.watches[key] = a.startWatch(key)
	}
	return func() {
		a.watchMu.Lock()
		defer a.watchMu.Unlock()
		for _, key := range keys {
			ow := a.watches[key]
			ow.users--
			if ow.users == 0 {
				close(ow.stop)
				delete(a.watches, key)
			}
		}
	}
}

// startWatch starts the informer of key; it runs until ow.stop is closed, and Run waits
// for its end.
func (a *agent) startWatch(key watchKey) *objWatch {
	ow := &objWatch{users: 1, stop: make(chan struct{})}
	factory := informers.NewSharedInformerFactoryWithOptions(a.cfg.Client, 0, informers.WithNamespace(key.namespace))
	var informer cache.SharedIndexInformer
	if key.kind == "Secret" {
		informer = factory.Core().V1().Secrets().Informer()
	} else {
		informer = factory.Core().V1().ConfigMaps().Informer()
	}
	changed := func(obj any) {
		ns, name, err := cache.SplitMetaNamespaceKey(keyOf(obj))
		if err == nil {
			a.objectChanged(ns, objRef{key.kind, name})
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: changed,
		UpdateFunc: func(old, obj any) {
			if o, n := metaOf(old), metaOf(obj); o == nil || n == nil || o.GetResourceVersion() != n.GetResourceVersion() {
				changed(obj)
			}
		},
		DeleteFunc: changed,
	}); err != nil {
		a.log.Error("watching objects for volumes", "namespace", key.namespace, "kind", key.kind, "error", err)
	}
	factory.Start(ow.stop)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		<-ow.stop
		factory.Shutdown()
	}()
	return ow
}

// objectChanged kicks the volumes of the pods of namespace that read ref.
func (a *agent) objectChanged(namespace string, ref objRef) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, w := range a.workers {
		if w.refs[ref] && w.namespace == namespace {
			w.kickVolumes()
		}
	}
}

// keyOf is namespace/name of an informer's object or tombstone.
func keyOf(obj any) string {
	k, _ := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	return k
}

// metaOf is an object's metadata, nil for anything else.
func metaOf(obj any) metav1.Object {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil
	}
	return m
}
