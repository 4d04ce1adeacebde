package k8s

import (
	"sync"

	"k8s.io/client-go/tools/cache"
)

// Key names something answers depend on, for Changes. Keys with the same Scope form a
// group that one notification can wake at once (for example every pod of a namespace).
type Key struct {
	Scope string
	// Name is one key of the scope; empty in a notification to wake every key of Scope.
	Name string
}

// Changes hands out channels that are closed at the next change of what a key names, so
// that each watcher recomputes its answer on its own goroutine and only when it may
// differ. Changes coalesce: a key has one channel at a time, closed once however many
// changes happen before its watcher asks for the next one. Take the channel before
// reading the caches, then wait on it after answering, so that no change is missed.
//
// The zero value is not usable; use NewChanges. Changes is safe for concurrent use.
type Changes struct {
	mu sync.Mutex
	// any is closed at the next change of anything; nil until Any asks for it.
	any chan struct{}
	// keyed holds, by scope and name, the channels For handed out that no change has
	// closed yet.
	keyed map[string]map[string]chan struct{}
}

// NewChanges returns a Changes with no watchers.
func NewChanges() *Changes {
	return &Changes{keyed: map[string]map[string]chan struct{}{}}
}

// For returns a channel closed at the next notification of k, of k's whole scope, or of
// everything. k.Name must not be empty.
func (c *Changes) For(k Key) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := c.keyed[k.Scope]
	if names == nil {
		names = map[string]chan struct{}{}
		c.keyed[k.Scope] = names
	}
	ch := names[k.Name]
	if ch == nil {
		ch = make(chan struct{})
		names[k.Name] = ch
	}
	return ch
}

// Any returns a channel closed at the next notification of any key.
func (c *Changes) Any() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.any == nil {
		c.any = make(chan struct{})
	}
	return c.any
}

// Notify wakes the watchers of keys (a key with an empty Name wakes its whole scope)
// and those waiting on Any. Notifying a key nobody watches costs a map lookup.
func (c *Changes) Notify(keys ...Key) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wakeAny()
	for _, k := range keys {
		names := c.keyed[k.Scope]
		if k.Name == "" {
			for _, ch := range names {
				close(ch)
			}
			delete(c.keyed, k.Scope)
			continue
		}
		if ch, ok := names[k.Name]; ok {
			close(ch)
			delete(names, k.Name)
		}
	}
}

// NotifyAll wakes every watcher: for a change that cannot be attributed to keys.
func (c *Changes) NotifyAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wakeAny()
	for _, names := range c.keyed {
		for _, ch := range names {
			close(ch)
		}
	}
	clear(c.keyed)
}

func (c *Changes) wakeAny() {
	if c.any != nil {
		close(c.any)
		c.any = nil
	}
}

// KeysFunc returns the keys an informer's object affects. It reports false for an
// object it cannot attribute (an unexpected type, or when the cache it consults fails);
// then every watcher is woken, so that none misses a change.
type KeysFunc func(obj any) (keys []Key, known bool)

// HandlerOption adjusts a Changes event handler.
type HandlerOption func(*handlerOptions)

type handlerOptions struct {
	changed func(old, cur any) bool
	byName  bool
}

// IfChanged filters updates: one for which changed reports false (status churn, a
// resync) wakes nobody.
func IfChanged(changed func(old, cur any) bool) HandlerOption {
	return func(o *handlerOptions) { o.changed = changed }
}

// KeysByName says the keys of an object depend only on its namespace and name, which an
// update never changes: an update then looks up the keys of the new object only, instead
// of those of both the old and the new.
func KeysByName() HandlerOption {
	return func(o *handlerOptions) { o.byName = true }
}

// Handler returns informer event handlers that notify the keys of each added, updated
// (old and new object) and deleted object, including objects whose deletion the
// informer only learnt of by relisting (cache.DeletedFinalStateUnknown).
func (c *Changes) Handler(keys KeysFunc, opts ...HandlerOption) cache.ResourceEventHandler {
	var o handlerOptions
	for _, opt := range opts {
		opt(&o)
	}
	notify := func(objs ...any) {
		var all []Key
		for _, obj := range objs {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			k, ok := keys(obj)
			if !ok {
				c.NotifyAll()
				return
			}
			all = append(all, k...)
		}
		c.Notify(all...)
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { notify(obj) },
		UpdateFunc: func(old, cur any) {
			switch {
			case o.changed != nil && !o.changed(old, cur):
			case o.byName:
				notify(cur)
			default:
				notify(old, cur)
			}
		},
		DeleteFunc: func(obj any) { notify(obj) },
	}
}
