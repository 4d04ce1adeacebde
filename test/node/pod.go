package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/l5d-go/l5d/test/netns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// podWorker runs one pod: its network namespace, volumes, containers, probes and status.
type podWorker struct {
	a         *agent
	log       *slog.Logger
	uid       types.UID
	namespace string
	dir       string
	name      string // of its netns pod

	stopOnce sync.Once
	stopCh   chan struct{} // closed when the pod must stop
	killOnce sync.Once
	killCh   chan struct{} // closed when the pod must stop without grace
	grace    atomic.Int64  // seconds of grace the first stop asked for
	gone     atomic.Bool   // the API object is deleted
	dirty    chan struct{} // status changed

	mu          sync.Mutex
	pod         *corev1.Pod
	net         *netns.Pod
	ips         []netip.Addr
	startTime   metav1.Time
	ctrs        []*ctr
	initialized bool
	stopping    bool
	phase       corev1.PodPhase
	transitions map[corev1.PodConditionType]metav1.Time
	lastConds   map[corev1.PodConditionType]corev1.ConditionStatus
	vols        []*podVolume // written by prepare, then kept current by keepVolumes
	refs        map[objRef]bool
	volKick     chan struct{}
	resolvConf  string // the pod's resolv.conf, "" to keep the node's; set by prepare

	volMu    sync.Mutex
	volsGone bool // teardown removed the volumes: write no more
}

func newPodWorker(a *agent, pod *corev1.Pod) *podWorker {
	w := &podWorker{
		a:           a,
		log:         a.log.With("pod", pod.Namespace+"/"+pod.Name),
		uid:         pod.UID,
		namespace:   pod.Namespace,
		dir:         podDir(a.cfg.RunDir, pod.Namespace, pod.Name),
		name:        fmt.Sprintf("k%d", podSeq.Add(1)),
		stopCh:      make(chan struct{}),
		killCh:      make(chan struct{}),
		dirty:       make(chan struct{}, 1),
		volKick:     make(chan struct{}, 1),
		refs:        volumeRefs(pod),
		pod:         pod,
		startTime:   metav1.Now(),
		phase:       corev1.PodPending,
		transitions: map[corev1.PodConditionType]metav1.Time{},
		lastConds:   map[corev1.PodConditionType]corev1.ConditionStatus{},
	}
	for i := range pod.Spec.InitContainers {
		c := newCtr(w, pod.Spec.InitContainers[i], true)
		w.ctrs = append(w.ctrs, c)
	}
	for i := range pod.Spec.Containers {
		w.ctrs = append(w.ctrs, newCtr(w, pod.Spec.Containers[i], false))
	}
	return w
}

// update records the pod's latest state; a deletion stops the pod with its grace period,
// new labels or annotations refresh the downward API volumes.
func (w *podWorker) update(pod *corev1.Pod) {
	w.mu.Lock()
	old := w.pod
	w.pod = pod
	w.mu.Unlock()
	if !maps.Equal(old.Labels, pod.Labels) || !maps.Equal(old.Annotations, pod.Annotations) {
		w.kickVolumes()
	}
	if pod.DeletionTimestamp != nil {
		grace := int64(30)
		if pod.DeletionGracePeriodSeconds != nil {
			grace = *pod.DeletionGracePeriodSeconds
		} else if pod.Spec.TerminationGracePeriodSeconds != nil {
			grace = *pod.Spec.TerminationGracePeriodSeconds
		}
		w.stop(grace)
	}
}

// stop asks the pod to stop, giving its containers grace seconds after SIGTERM; a later
// call with 0 cuts the grace short.
func (w *podWorker) stop(grace int64) {
	w.stopOnce.Do(func() {
		w.grace.Store(grace)
		close(w.stopCh)
	})
	if grace <= 0 {
		w.killOnce.Do(func() { close(w.killCh) })
	}
}

func (w *podWorker) current() *corev1.Pod {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pod
}

// markDirty asks for a status update.
func (w *podWorker) markDirty() {
	select {
	case w.dirty <- struct{}{}:
	default:
	}
}

// run is the pod's whole life on the node.
func (w *podWorker) run(agentCtx context.Context) {
	ctx, cancel := context.WithCancel(agentCtx)
	defer cancel()
	go func() {
		select {
		case <-w.stopCh:
		case <-ctx.Done():
		}
		cancel()
	}()
	release := w.a.watchObjects(w.namespace, w.refs)
	defer release()
	statusDone := make(chan struct{})
	go w.statusLoop(ctx, statusDone)
	w.markDirty()

	ran := make(chan struct{})
	go func() {
		defer close(ran)
		if w.prepare(ctx) {
			go w.keepVolumes(ctx)
			w.runContainers(ctx)
		}
	}()
	select {
	case <-ran:
	case <-ctx.Done():
	}
	cancel() // no more restarts, probes or status updates while stopping
	w.teardown()
	<-ran
	<-statusDone

	if agentCtx.Err() != nil || w.gone.Load() {
		return
	}
	if w.current().DeletionTimestamp != nil {
		w.a.confirmDeletion(agentCtx, w.current())
		return
	}
	// A pod that ran to completion: post its final status.
	for i := 0; i < 10 && agentCtx.Err() == nil; i++ {
		if err := w.syncStatus(agentCtx); err == nil {
			return
		}
		time.Sleep(time.Second)
	}
}

// prepare makes the network namespace and the volumes, retrying what fails until ctx ends.
// It reports whether the pod is ready to start containers.
func (w *podWorker) prepare(ctx context.Context) bool {
	if err := os.MkdirAll(filepath.Join(w.dir, "logs"), 0o755); err != nil {
		w.log.Error("making the pod directory", "error", err)
	}
	resolv, err := w.writeResolvConf(w.current())
	if err != nil {
		w.log.Error("writing the pod's resolv.conf", "error", err)
		w.setWaiting("ContainerCreating", err.Error())
		return false
	}
	w.resolvConf = resolv
	p, ok := w.addNetwork(ctx)
	if !ok {
		return false
	}
	w.mu.Lock()
	if w.stopping {
		w.mu.Unlock()
		if err := w.removeNetwork(p); err != nil {
			w.log.Warn("removing the pod's network namespace", "error", err)
		}
		return false
	}
	w.net = p
	w.ips = nil
	for _, a := range []netip.Addr{p.IPv4, p.IPv6} {
		if a.IsValid() {
			w.ips = append(w.ips, a)
		}
	}
	w.mu.Unlock()
	w.markDirty()
	for delay := 500 * time.Millisecond; ; delay = min(delay*2, 10*time.Second) {
		err := w.setupVolumes(ctx, w.podWithIPs())
		if err == nil {
			return true
		}
		w.log.Warn("setting up volumes", "error", err)
		w.setWaiting("ContainerCreating", err.Error())
		select {
		case <-ctx.Done():
			return false
		case <-time.After(delay):
		}
	}
}

// podWithIPs is the latest pod object with the status fields the agent knows filled in,
// for the downward API.
func (w *podWorker) podWithIPs() *corev1.Pod {
	w.mu.Lock()
	defer w.mu.Unlock()
	pod := w.pod.DeepCopy()
	pod.Status.HostIP = w.a.nodeIP().String()
	pod.Status.HostIPs = []corev1.HostIP{{IP: w.a.nodeIP().String()}}
	if len(w.ips) > 0 {
		pod.Status.PodIP = w.ips[0].String()
		pod.Status.PodIPs = nil
		for _, ip := range w.ips {
			pod.Status.PodIPs = append(pod.Status.PodIPs, corev1.PodIP{IP: ip.String()})
		}
	}
	return pod
}

// setWaiting sets the waiting reason of every container that has not run yet.
func (w *podWorker) setWaiting(reason, message string) {
	w.mu.Lock()
	for _, c := range w.ctrs {
		if c.starts == 0 {
			c.state = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}}
		}
	}
	w.mu.Unlock()
	w.markDirty()
}

// restartPolicy is the pod's restart policy.
func (w *podWorker) restartPolicy() corev1.RestartPolicy {
	if p := w.current().Spec.RestartPolicy; p != "" {
		return p
	}
	return corev1.RestartPolicyAlways
}

// runContainers runs the init containers in order (sidecars left running), then the
// regular containers; for a pod that does not restart them, it waits for them to end and
// sets the pod's final phase. It returns early when ctx ends.
func (w *podWorker) runContainers(ctx context.Context) {
	var regular []*ctr
	for _, c := range w.ctrs {
		if !c.init {
			regular = append(regular, c)
			continue
		}
		if c.sidecar {
			go c.loop(ctx)
			select {
			case <-c.startedCh:
			case <-ctx.Done():
				return
			}
			continue
		}
		for delay := time.Second; ; delay = min(delay*2, 30*time.Second) {
			code, ran := c.runOnce(ctx)
			if ctx.Err() != nil {
				return
			}
			if ran && code == 0 {
				break
			}
			if ran && w.restartPolicy() == corev1.RestartPolicyNever {
				w.finish(corev1.PodFailed)
				return
			}
			c.backingOff()
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
		}
	}
	w.mu.Lock()
	w.initialized = true
	for _, c := range regular {
		c.state = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
	}
	w.mu.Unlock()
	w.markDirty()
	for _, c := range regular {
		go c.loop(ctx)
		select {
		case <-c.postStartCh:
		case <-c.finished:
		case <-ctx.Done():
			return
		}
	}
	if w.restartPolicy() == corev1.RestartPolicyAlways {
		<-ctx.Done()
		return
	}
	for _, c := range regular {
		select {
		case <-c.finished:
		case <-ctx.Done():
			return
		}
	}
	phase := corev1.PodSucceeded
	w.mu.Lock()
	for _, c := range regular {
		if t := c.state.Terminated; t == nil || t.ExitCode != 0 {
			phase = corev1.PodFailed
		}
	}
	w.mu.Unlock()
	w.finish(phase)
}

// finish records a terminal phase; the worker then stops what still runs (sidecars).
func (w *podWorker) finish(phase corev1.PodPhase) {
	w.mu.Lock()
	w.phase = phase
	w.mu.Unlock()
	w.markDirty()
}

// teardown stops every container like the kubelet: preStop hooks and SIGTERM to the
// regular containers, then to the sidecars (last started first), SIGKILL when the grace
// period is over; then it removes the network namespace and the volumes.
func (w *podWorker) teardown() {
	w.mu.Lock()
	w.stopping = true
	hasNet := w.net != nil
	var regular, sidecars []*ctr
	for _, c := range w.ctrs {
		if c.init {
			sidecars = append([]*ctr{c}, sidecars...)
		} else {
			regular = append(regular, c)
		}
	}
	w.mu.Unlock()
	grace := time.Duration(w.grace.Load()) * time.Second
	select {
	case <-w.stopCh:
	default:
		grace = 2 * time.Second // a finished pod's sidecars
	}
	deadline := time.Now().Add(grace)
	w.stopGroup(regular, deadline)
	w.stopGroup(sidecars, deadline)
	if hasNet {
		w.mu.Lock()
		p := w.net
		w.mu.Unlock()
		if err := w.removeNetwork(p); err != nil {
			w.log.Warn("removing the pod's network namespace", "error", err)
		}
	}
	for _, c := range w.ctrs {
		if c.looping.Load() {
			<-c.finished
		}
	}
	w.volMu.Lock()
	w.volsGone = true
	if err := os.RemoveAll(filepath.Join(w.dir, "volumes")); err != nil {
		w.log.Warn("removing the pod's volumes", "error", err)
	}
	w.volMu.Unlock()
	w.mu.Lock()
	w.net = nil
	w.mu.Unlock()
	w.markDirty()
}

// stopGroup runs preStop hooks and sends SIGTERM to the running containers of cs, waits
// until they end or deadline passes (or the pod is killed), then sends SIGKILL.
func (w *podWorker) stopGroup(cs []*ctr, deadline time.Time) {
	var procs []*netns.Process
	var wg sync.WaitGroup
	for _, c := range cs {
		w.mu.Lock()
		p := c.proc
		w.mu.Unlock()
		if p == nil {
			continue
		}
		procs = append(procs, p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if lc := c.spec.Lifecycle; lc != nil && lc.PreStop != nil {
				ctx, cancel := context.WithDeadline(context.Background(), deadline)
				go func() {
					select {
					case <-w.killCh:
						cancel()
					case <-ctx.Done():
					}
				}()
				if err := c.runHandler(ctx, lc.PreStop); err != nil {
					w.log.Info("preStop hook failed", "container", c.spec.Name, "error", err)
				}
				cancel()
			}
			_ = p.Signal(syscall.SIGTERM)
		}()
	}
	wg.Wait()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for _, p := range procs {
		select {
		case <-p.Done():
		case <-timer.C:
			timer.Reset(0)
		case <-w.killCh:
		}
	}
	for _, p := range procs {
		_ = p.Kill()
	}
}

// statusLoop posts the pod's status whenever it changes, until ctx ends.
func (w *podWorker) statusLoop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.dirty:
		}
		if err := w.syncStatus(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("updating the pod status", "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
				w.markDirty()
			}
		}
	}
}

// syncStatus patches the pod's status with what the worker knows.
func (w *podWorker) syncStatus(ctx context.Context) error {
	w.mu.Lock()
	st := w.statusLocked()
	pod := w.pod
	w.mu.Unlock()
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": pod.UID},
		"status":   st,
	})
	if err != nil {
		return fmt.Errorf("encoding the status: %w", err)
	}
	_, err = w.a.cfg.Client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("patching the status of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// statusLocked computes the pod status; w.mu is held.
func (w *podWorker) statusLocked() corev1.PodStatus {
	pod := w.pod
	st := corev1.PodStatus{
		Phase:     w.phase,
		HostIP:    w.a.nodeIP().String(),
		HostIPs:   []corev1.HostIP{{IP: w.a.nodeIP().String()}},
		StartTime: &w.startTime,
	}
	for _, ip := range w.ips {
		if st.PodIP == "" {
			st.PodIP = ip.String()
		}
		st.PodIPs = append(st.PodIPs, corev1.PodIP{IP: ip.String()})
	}
	var unready []string
	anyRunning := false
	for _, c := range w.ctrs {
		cs := c.statusLocked()
		if c.init {
			st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
		} else {
			st.ContainerStatuses = append(st.ContainerStatuses, cs)
			if cs.State.Running != nil || (cs.State.Terminated != nil && c.looping.Load() && !c.isFinished()) {
				anyRunning = true
			}
		}
		if (!c.init || c.sidecar) && !cs.Ready {
			unready = append(unready, c.spec.Name)
		}
	}
	terminal := w.phase == corev1.PodSucceeded || w.phase == corev1.PodFailed
	if !terminal {
		st.Phase = corev1.PodPending
		if w.initialized && anyRunning {
			st.Phase = corev1.PodRunning
		}
	}
	cond := func(t corev1.PodConditionType, ok bool, reason, message string) {
		s := corev1.ConditionFalse
		if ok {
			s, reason, message = corev1.ConditionTrue, "", ""
		}
		if w.lastConds[t] != s {
			w.lastConds[t] = s
			w.transitions[t] = metav1.Now()
		}
		st.Conditions = append(st.Conditions, corev1.PodCondition{
			Type: t, Status: s, Reason: reason, Message: message, LastTransitionTime: w.transitions[t],
		})
	}
	cond(corev1.PodReadyToStartContainers, w.net != nil, "", "")
	cond(corev1.PodInitialized, w.initialized || terminal && w.phase == corev1.PodSucceeded, "ContainersNotInitialized",
		"containers with incomplete status: "+fmt.Sprint(w.incompleteInits()))
	containersReady := len(unready) == 0 && !terminal
	reason, msg := "ContainersNotReady", fmt.Sprintf("containers with unready status: %v", unready)
	if terminal {
		reason, msg = "PodCompleted", ""
	}
	cond(corev1.ContainersReady, containersReady, reason, msg)
	ready := containersReady
	for _, g := range pod.Spec.ReadinessGates {
		found := false
		for _, c := range pod.Status.Conditions {
			if c.Type == g.ConditionType && c.Status == corev1.ConditionTrue {
				found = true
			}
		}
		if !found {
			ready, reason, msg = false, "ReadinessGatesNotReady", fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist or is false", g.ConditionType)
		}
	}
	cond(corev1.PodReady, ready, reason, msg)
	cond(corev1.PodScheduled, true, "", "")
	// Keep the conditions other components own (readiness gates, disruption targets...).
	for _, c := range pod.Status.Conditions {
		switch c.Type {
		case corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady, corev1.PodScheduled:
		default:
			st.Conditions = append(st.Conditions, c)
		}
	}
	return st
}

// incompleteInits names the init containers that are not done (or started, for sidecars).
func (w *podWorker) incompleteInits() []string {
	var names []string
	for _, c := range w.ctrs {
		if !c.init {
			continue
		}
		done := c.sidecar && c.started || !c.sidecar && c.state.Terminated != nil && c.state.Terminated.ExitCode == 0
		if !done {
			names = append(names, c.spec.Name)
		}
	}
	return names
}

// ctr is one container of a pod and its runs.
type ctr struct {
	w       *podWorker
	spec    corev1.Container
	init    bool // an init container
	sidecar bool // an init container with restartPolicy Always

	startedCh     chan struct{} // closed once the container first counts as started
	startedOnce   sync.Once
	postStartCh   chan struct{} // closed once the first postStart hook has run
	postStartOnce sync.Once
	finished      chan struct{} // closed when loop returns
	looping       atomic.Bool

	// Guarded by w.mu.
	state, last corev1.ContainerState
	starts      int32
	started     bool
	ready       bool
	proc        *netns.Process
	imageID     string
}

func newCtr(w *podWorker, spec corev1.Container, init bool) *ctr {
	c := &ctr{
		w: w, spec: spec, init: init,
		sidecar:     init && spec.RestartPolicy != nil && *spec.RestartPolicy == corev1.ContainerRestartPolicyAlways,
		startedCh:   make(chan struct{}),
		postStartCh: make(chan struct{}),
		finished:    make(chan struct{}),
		state:       corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}},
	}
	return c
}

func (c *ctr) isFinished() bool {
	select {
	case <-c.finished:
		return true
	default:
		return false
	}
}

// statusLocked is the container's status; w.mu is held.
func (c *ctr) statusLocked() corev1.ContainerStatus {
	started := c.started
	cs := corev1.ContainerStatus{
		Name:                 c.spec.Name,
		State:                c.state,
		LastTerminationState: c.last,
		Ready:                c.ready,
		RestartCount:         max(c.starts-1, 0),
		Image:                c.spec.Image,
		ImageID:              c.imageID,
		Started:              &started,
	}
	if c.starts > 0 {
		cs.ContainerID = fmt.Sprintf("l5d-node://%s-%s-%d", c.w.uid, c.spec.Name, c.starts)
	}
	return cs
}

// restarts reports whether the container runs again after ending with code.
func (c *ctr) restarts(code int) bool {
	if c.sidecar {
		return true
	}
	switch c.w.restartPolicy() {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return code != 0
	}
	return true
}

// backingOff shows the container waiting to be restarted.
func (c *ctr) backingOff() {
	c.w.mu.Lock()
	if c.state.Terminated != nil {
		c.last = c.state
	}
	c.state = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
		Reason: "CrashLoopBackOff", Message: "back-off restarting failed container " + c.spec.Name,
	}}
	c.w.mu.Unlock()
	c.w.markDirty()
}

// pullBackingOff turns an ErrImagePull state into ImagePullBackOff while the start is
// retried, keeping the failure in the message as the kubelet does (`Back-off pulling image
// "nginx:latest": ErrImagePull: ...`); other start failures (CreateContainerConfigError)
// keep their state.
func (c *ctr) pullBackingOff() {
	c.w.mu.Lock()
	w := c.state.Waiting
	changed := w != nil && w.Reason == "ErrImagePull"
	if changed {
		c.state = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
			Reason:  "ImagePullBackOff",
			Message: fmt.Sprintf("Back-off pulling image %q: ErrImagePull: %s", c.spec.Image, w.Message),
		}}
	}
	c.w.mu.Unlock()
	if changed {
		c.w.markDirty()
	}
}

// loop runs the container, restarting it as its restart policy says with a growing delay,
// until it should not restart or ctx ends.
func (c *ctr) loop(ctx context.Context) {
	c.looping.Store(true)
	defer close(c.finished)
	for delay := time.Second; ; delay = min(delay*2, 30*time.Second) {
		code, ran := c.runOnce(ctx)
		if ctx.Err() != nil || (ran && !c.restarts(code)) {
			return
		}
		if ran {
			c.backingOff()
		} else {
			c.pullBackingOff()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// runOnce starts the container, runs its postStart hook and probes, and waits for it to
// end. ran is false when it could not be started (its state then says why).
func (c *ctr) runOnce(ctx context.Context) (code int, ran bool) {
	w := c.w
	proc, err := c.start(ctx)
	if err != nil {
		reason := "CreateContainerConfigError"
		var ie imageError
		if errors.As(err, &ie) {
			reason = "ErrImagePull"
		}
		w.log.Warn("starting a container", "container", c.spec.Name, "error", err)
		w.mu.Lock()
		c.state = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: err.Error()}}
		w.mu.Unlock()
		w.markDirty()
		return 0, false
	}
	startedAt := metav1.Now()
	w.mu.Lock()
	if c.state.Terminated != nil {
		c.last = c.state
	}
	c.state = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: startedAt}}
	c.started, c.ready = false, false
	w.mu.Unlock()
	w.markDirty()

	pctx, pcancel := context.WithCancel(ctx)
	if lc := c.spec.Lifecycle; lc != nil && lc.PostStart != nil {
		hctx, hcancel := context.WithCancel(pctx)
		go func() {
			select {
			case <-proc.Done():
			case <-hctx.Done():
			}
			hcancel()
		}()
		if err := c.runHandler(hctx, lc.PostStart); err != nil {
			w.log.Info("postStart hook failed; killing the container", "container", c.spec.Name, "error", err)
			_ = proc.Signal(syscall.SIGKILL)
		}
		hcancel()
	}
	c.postStartOnce.Do(func() { close(c.postStartCh) })
	probesDone := make(chan struct{})
	go func() {
		defer close(probesDone)
		c.probe(pctx, proc)
	}()
	<-proc.Done()
	pcancel()
	<-probesDone
	code = exitCode(proc.Wait())
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	w.mu.Lock()
	c.proc = nil
	c.started = false
	c.ready = c.init && !c.sidecar && code == 0
	c.state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: int32(code), Reason: reason, StartedAt: startedAt, FinishedAt: metav1.Now(),
		ContainerID: fmt.Sprintf("l5d-node://%s-%s-%d", w.uid, c.spec.Name, c.starts),
	}}
	w.mu.Unlock()
	w.markDirty()
	return code, true
}

// setStarted marks the container started (its startup probe passed, or it has none).
func (c *ctr) setStarted() {
	c.w.mu.Lock()
	c.started = true
	if c.spec.ReadinessProbe == nil && (!c.init || c.sidecar) {
		c.ready = true
	}
	c.w.mu.Unlock()
	c.startedOnce.Do(func() { close(c.startedCh) })
	c.w.markDirty()
}

// setReady records a readiness result.
func (c *ctr) setReady(ready bool) {
	c.w.mu.Lock()
	changed := c.ready != ready && c.proc != nil
	if changed {
		c.ready = ready
	}
	c.w.mu.Unlock()
	if changed {
		c.w.markDirty()
	}
}

// exitCode turns a Wait error into an exit status, 128+n for a death by signal n.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return 255
}

// imageError marks a container whose program could not be found.
type imageError struct{ err error }

func (e imageError) Error() string { return e.err.Error() }
func (e imageError) Unwrap() error { return e.err }

// defaultPath is PATH for containers that do not set one, as images commonly do.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// process builds the shim command running argv (expanded, argv[0] still unresolved) as
// the container would: its env, mounts, ids, hostname and log.
func (c *ctr) process(ctx context.Context, argv []string, resolve func(string) (string, error), log string) (*exec.Cmd, error) {
	cmd, _, err := c.processBin(ctx, argv, resolve, log)
	return cmd, err
}

// processBin is process that also returns the resolved program.
func (c *ctr) processBin(ctx context.Context, argv []string, resolve func(string) (string, error), log string) (*exec.Cmd, string, error) {
	w := c.w
	pod := w.podWithIPs()
	env, err := w.a.containerEnv(ctx, pod, &c.spec)
	if err != nil {
		return nil, "", err
	}
	hostname := pod.Spec.Hostname
	if hostname == "" {
		hostname = pod.Name
	}
	if len(hostname) > 63 {
		hostname = hostname[:63]
	}
	env = append([]string{"HOSTNAME=" + hostname}, env...)
	hasPath := false
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			hasPath = true
		}
	}
	if !hasPath {
		env = append([]string{"PATH=" + defaultPath}, env...)
	}
	lookup := envLookup(env)
	for i := range argv {
		argv[i] = expand(argv[i], lookup)
	}
	if len(argv) == 0 {
		return nil, "", errors.New("no command and no image to run")
	}
	bin, err := resolve(argv[0])
	if err != nil {
		return nil, "", imageError{fmt.Errorf("resolving %q to a local program: %w", argv[0], err)}
	}
	argv[0] = bin
	mounts, err := w.mounts(pod, &c.spec)
	if err != nil {
		return nil, "", err
	}
	uid, gid, groups := ids(pod, &c.spec)
	caps, err := addedCapabilities(&c.spec)
	if err != nil {
		return nil, "", err
	}
	spec, err := json.Marshal(shimSpec{
		Argv: argv, Dir: c.spec.WorkingDir, UID: uid, GID: gid, Groups: groups,
		Hostname: hostname, Mounts: mounts, Caps: caps,
	})
	if err != nil {
		return nil, "", err
	}
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, "", fmt.Errorf("opening the container log: %w", err)
	}
	cmd := &exec.Cmd{
		Path:        "/proc/self/exe",
		Args:        []string{shimArg0, string(spec)},
		Env:         env,
		Stdout:      f,
		Stderr:      f,
		SysProcAttr: &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS},
	}
	return cmd, bin, nil
}

// start starts one run of the container in the pod's namespaces.
func (c *ctr) start(ctx context.Context) (*netns.Process, error) {
	w := c.w
	var argv []string
	resolve := w.a.cfg.Images
	if len(c.spec.Command) > 0 {
		argv = append(append(argv, c.spec.Command...), c.spec.Args...)
	} else {
		argv = append([]string{c.spec.Image}, c.spec.Args...)
	}
	pod := w.current()
	cmd, bin, err := c.processBin(ctx, argv, resolve, LogPath(w.a.cfg.RunDir, pod.Namespace, pod.Name, c.spec.Name))
	if err != nil {
		return nil, err
	}
	defer cmd.Stdout.(*os.File).Close()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopping || w.net == nil {
		return nil, errors.New("the pod is stopping")
	}
	p, err := w.net.Start(cmd)
	if err != nil {
		return nil, err
	}
	c.proc = p
	c.starts++
	c.imageID = "l5d-node://" + bin
	return p, nil
}

// exec runs command (argv[0] resolved by Images, else on the host's PATH) in a fresh copy of
// the container's environment and mounts, in the pod's network namespace, until it ends or
// ctx ends; output goes to the container's exec log.
func (c *ctr) exec(ctx context.Context, command []string) error {
	w := c.w
	pod := w.current()
	resolve := func(name string) (string, error) {
		if p, err := w.a.cfg.Images(name); err == nil {
			return p, nil
		}
		return exec.LookPath(name)
	}
	log := strings.TrimSuffix(LogPath(w.a.cfg.RunDir, pod.Namespace, pod.Name, c.spec.Name), ".log") + ".exec.log"
	cmd, err := c.process(ctx, append([]string(nil), command...), resolve, log)
	if err != nil {
		return err
	}
	defer cmd.Stdout.(*os.File).Close()
	w.mu.Lock()
	n := w.net
	w.mu.Unlock()
	if n == nil {
		return errors.New("the pod has no network namespace")
	}
	p, err := n.Start(cmd)
	if err != nil {
		return err
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		_ = p.Kill()
		return fmt.Errorf("command %q: %w", command, ctx.Err())
	}
	if code := exitCode(p.Wait()); code != 0 {
		return fmt.Errorf("command %q exited with %d", command, code)
	}
	return nil
}

// envLookup finds a variable in an environment list.
func envLookup(env []string) func(string) (string, bool) {
	m := map[string]string{}
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		m[k] = v
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// mounts are the container's volume mounts (and the hosts file and resolv.conf) as shim
// bind mounts.
func (w *podWorker) mounts(pod *corev1.Pod, c *corev1.Container) ([]shimMount, error) {
	var ms []shimMount
	hasHosts, hasResolv := false, false
	for _, vm := range c.VolumeMounts {
		var vol *corev1.Volume
		for i := range pod.Spec.Volumes {
			if pod.Spec.Volumes[i].Name == vm.Name {
				vol = &pod.Spec.Volumes[i]
			}
		}
		if vol == nil {
			return nil, fmt.Errorf("volume mount %s: the pod has no such volume", vm.Name)
		}
		src := w.volumeDir(vm.Name)
		if vol.HostPath != nil {
			src = vol.HostPath.Path
		}
		if vm.SubPath != "" {
			if err := checkRelative(vm.SubPath); err != nil {
				return nil, err
			}
			src = filepath.Join(src, vm.SubPath)
			if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
				if err := os.MkdirAll(src, 0o777); err != nil {
					return nil, err
				}
			}
		}
		switch filepath.Clean(vm.MountPath) {
		case "/etc/hosts":
			hasHosts = true
		case "/etc/resolv.conf":
			hasResolv = true
		}
		ms = append(ms, shimMount{Source: src, Target: vm.MountPath, ReadOnly: vm.ReadOnly})
	}
	if w.a.cfg.HostsFile != "" && !hasHosts {
		ms = append(ms, shimMount{Source: w.a.cfg.HostsFile, Target: "/etc/hosts", ReadOnly: true})
	}
	if w.resolvConf != "" && !hasResolv {
		ms = append(ms, shimMount{Source: w.resolvConf, Target: "/etc/resolv.conf", ReadOnly: true})
	}
	return ms, nil
}

// ids are the container's uid, gid and supplementary groups: the container's security
// context over the pod's, root by default.
func ids(pod *corev1.Pod, c *corev1.Container) (uid, gid uint32, groups []uint32) {
	if psc := pod.Spec.SecurityContext; psc != nil {
		if psc.RunAsUser != nil {
			uid = uint32(*psc.RunAsUser)
		}
		if psc.RunAsGroup != nil {
			gid = uint32(*psc.RunAsGroup)
		}
		if psc.FSGroup != nil {
			groups = append(groups, uint32(*psc.FSGroup))
		}
		for _, g := range psc.SupplementalGroups {
			groups = append(groups, uint32(g))
		}
	}
	if csc := c.SecurityContext; csc != nil {
		if csc.RunAsUser != nil {
			uid = uint32(*csc.RunAsUser)
		}
		if csc.RunAsGroup != nil {
			gid = uint32(*csc.RunAsGroup)
		}
	}
	return uid, gid, groups
}
