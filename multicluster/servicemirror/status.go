package servicemirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	mc "github.com/l5d-go/l5d/pkg/apis/multicluster"
)

// errMissingNamespace marks a mirror that cannot be made because its namespace does not
// exist in the local cluster.
var errMissingNamespace = errors.New("the namespace does not exist in this cluster")

// statusSet is the Link status of a Controller's mirrors: one entry per remote Service
// ("ns/name") it mirrors or failed to mirror.
type statusSet struct {
	mu      sync.Mutex
	byKey   map[string]mc.ServiceStatus
	changed chan struct{} // cap 1: a change not yet written
}

func (s *statusSet) init() {
	s.byKey = map[string]mc.ServiceStatus{}
	s.changed = make(chan struct{}, 1)
}

func (s *statusSet) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// setStatus records the outcome of reconciling remote Service ns/name: no entry when it
// is not mirrored (and that is in step), else a Mirrored condition, True on success and
// False with the error otherwise. The transition time moves only when the condition's
// status or reason changes.
func (c *Controller) setStatus(ns, name string, mode Mode, err error) {
	s := &c.status
	key := ns + "/" + name
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.byKey[key]
	if err == nil && mode == ModeNone {
		if had {
			delete(s.byKey, key)
			s.signal()
		}
		return
	}
	cond := mc.LinkCondition{
		Type: mc.ConditionMirrored, Status: metav1.ConditionTrue, Reason: mc.ReasonMirrored,
		LocalRef: mc.ObjectRef{Group: corev1.GroupName, Kind: "Service", Name: mc.MirrorName(name, c.Link.ClusterName), Namespace: ns},
	}
	switch {
	case errors.Is(err, errMissingNamespace):
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, mc.ReasonMissingNamespace, err.Error()
	case err != nil:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, mc.ReasonError, err.Error()
	}
	if had && len(old.Conditions) == 1 {
		prev := old.Conditions[0]
		if prev.Status == cond.Status && prev.Reason == cond.Reason && prev.Message == cond.Message {
			return // nothing new
		}
		if prev.Status == cond.Status && prev.Reason == cond.Reason {
			cond.LastTransitionTime = prev.LastTransitionTime
		}
	}
	if cond.LastTransitionTime.IsZero() {
		cond.LastTransitionTime = metav1.NewTime(time.Now().Truncate(time.Second))
	}
	s.byKey[key] = mc.ServiceStatus{
		Conditions:     []mc.LinkCondition{cond},
		ControllerName: mc.StatusControllerName,
		RemoteRef:      mc.ObjectRef{Group: corev1.GroupName, Kind: "Service", Name: name, Namespace: ns},
	}
	s.signal()
}

// Status is the Link status of the mirrors, ordered by remote namespace and name.
func (c *Controller) Status() mc.LinkStatus {
	c.init()
	s := &c.status
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.byKey))
	for k := range s.byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	st := mc.LinkStatus{MirrorServices: []mc.ServiceStatus{}}
	for _, k := range keys {
		st.MirrorServices = append(st.MirrorServices, s.byKey[k])
	}
	return st
}

// StatusChanged is signalled (capacity 1) when Status has changed since it was last
// received from.
func (c *Controller) StatusChanged() <-chan struct{} {
	c.init()
	return c.status.changed
}

// statusRetry is how soon a failed status write is tried again.
const statusRetry = 2 * time.Second

// writeStatus keeps the status subresource of Link ns/name in step with c's Status until
// ctx ends: after each change (several may give one write), a merge patch replacing
// status.mirrorServices. A failed write is logged and retried.
func writeStatus(ctx context.Context, dyn dynamic.Interface, ns, name string, c *Controller) {
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.StatusChanged():
		case <-retry:
		}
		retry = nil
		if err := patchStatus(ctx, dyn, ns, name, c.Status()); err != nil && ctx.Err() == nil {
			c.Log.Warn("writing the link's status; will retry", "err", err)
			retry = time.After(statusRetry)
		}
	}
}

// patchStatus replaces the Link's status.mirrorServices with st's.
func patchStatus(ctx context.Context, dyn dynamic.Interface, ns, name string, st mc.LinkStatus) error {
	body, err := json.Marshal(map[string]any{"status": map[string]any{"mirrorServices": st.MirrorServices}})
	if err != nil {
		return fmt.Errorf("encoding the status of link %s/%s: %w", ns, name, err)
	}
	if _, err := dyn.Resource(mc.Links).Namespace(ns).Patch(ctx, name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: "linkerd-service-mirror"}, "status"); err != nil {
		return fmt.Errorf("patching the status of link %s/%s: %w", ns, name, err)
	}
	return nil
}
