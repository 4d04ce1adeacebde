package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/l5d-go/l5d/test/node/internal/atomicdir"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// defaultFileMode is the mode of volume files when the pod names none (the API's 0644).
const defaultFileMode = 0o644

// volumeDir is where the agent keeps volume name of a pod.
func (w *podWorker) volumeDir(name string) string {
	return filepath.Join(w.dir, "volumes", name)
}

// tokenFile is a projected service-account token the agent keeps fresh.
type tokenFile struct {
	path      string // inside the volume
	sa        string
	audience  string
	expiry    int64
	mode      os.FileMode
	token     []byte
	refreshAt time.Time
}

// podVolume is a volume whose files the agent writes and keeps current: a Secret,
// ConfigMap, downward API or projected volume. Every write replaces the whole volume at
// once (package atomicdir), tokens included.
type podVolume struct {
	spec   corev1.Volume
	dir    string
	tokens map[int]*tokenFile // projected token sources by index
}

// objRef names a Secret or ConfigMap of the pod's namespace that a volume reads.
type objRef struct {
	kind string // "Secret" or "ConfigMap"
	name string
}

// volumeRefs are the Secrets and ConfigMaps the pod's volumes read.
func volumeRefs(pod *corev1.Pod) map[objRef]bool {
	refs := map[objRef]bool{}
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.Secret != nil:
			refs[objRef{"Secret", v.Secret.SecretName}] = true
		case v.ConfigMap != nil:
			refs[objRef{"ConfigMap", v.ConfigMap.Name}] = true
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.Secret != nil {
					refs[objRef{"Secret", src.Secret.Name}] = true
				}
				if src.ConfigMap != nil {
					refs[objRef{"ConfigMap", src.ConfigMap.Name}] = true
				}
			}
		}
	}
	return refs
}

// setupVolumes writes every volume of the pod under its directory. It fails when a
// ConfigMap or Secret that is not optional is missing (the caller retries) or a volume
// type is not supported.
func (w *podWorker) setupVolumes(ctx context.Context, pod *corev1.Pod) error {
	w.vols = nil
	for _, v := range pod.Spec.Volumes {
		if v.HostPath != nil {
			if t := v.HostPath.Type; t != nil && (*t == corev1.HostPathDirectoryOrCreate) {
				if err := os.MkdirAll(v.HostPath.Path, 0o755); err != nil {
					return fmt.Errorf("volume %s: %w", v.Name, err)
				}
			}
			continue
		}
		dir := w.volumeDir(v.Name)
		if v.EmptyDir != nil {
			if err := os.MkdirAll(dir, 0o777); err != nil {
				return fmt.Errorf("volume %s: %w", v.Name, err)
			}
			if err := os.Chmod(dir, 0o777); err != nil {
				return fmt.Errorf("volume %s: %w", v.Name, err)
			}
			continue
		}
		if v.Secret == nil && v.ConfigMap == nil && v.DownwardAPI == nil && v.Projected == nil {
			return fmt.Errorf("volume %s: this volume type is not supported by the test node agent", v.Name)
		}
		pv := &podVolume{spec: v, dir: dir, tokens: map[int]*tokenFile{}}
		if _, err := w.writeVolume(ctx, pod, pv); err != nil {
			return err
		}
		w.vols = append(w.vols, pv)
	}
	return nil
}

// kickVolumes asks keepVolumes to bring the volumes up to date.
func (w *podWorker) kickVolumes() {
	select {
	case w.volKick <- struct{}{}:
	default:
	}
}

// keepVolumes rewrites the volumes when kicked (a Secret or ConfigMap they read changed,
// or the pod's labels or annotations did) and when a token reaches 80% of its life, until
// ctx ends. A failed write is retried with backoff; a missing non-optional object is
// not retried (its creation kicks again) and the volume keeps its last content.
func (w *podWorker) keepVolumes(ctx context.Context) {
	var retryAt time.Time
	backoff := time.Second
	for {
		wake := time.Now().Add(time.Hour)
		for _, v := range w.vols {
			for _, tf := range v.tokens {
				if tf.refreshAt.Before(wake) {
					wake = tf.refreshAt
				}
			}
		}
		if !retryAt.IsZero() {
			wake = retryAt
		}
		timer := time.NewTimer(time.Until(wake))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-w.volKick:
		case <-timer.C:
		}
		timer.Stop()
		if w.syncVolumes(ctx) {
			retryAt = time.Now().Add(backoff)
			backoff = min(backoff*2, 30*time.Second)
		} else {
			retryAt, backoff = time.Time{}, time.Second
		}
	}
}

// syncVolumes rewrites every volume whose content changed and reports whether a write
// failed in a way worth retrying.
func (w *podWorker) syncVolumes(ctx context.Context) (retry bool) {
	pod := w.podWithIPs()
	for _, v := range w.vols {
		changed, err := w.writeVolume(ctx, pod, v)
		switch {
		case err != nil && ctx.Err() == nil:
			w.log.Warn("updating a volume, keeping its last content", "error", err)
			retry = retry || !apierrors.IsNotFound(err)
		case changed:
			w.log.Info("updated a volume", "volume", v.spec.Name)
		}
		for _, tf := range v.tokens {
			retry = retry || !time.Now().Before(tf.refreshAt) // its refresh failed
		}
	}
	return retry
}

// writeVolume computes v's files from the objects it reads (minting tokens that are due)
// and replaces the volume's content with them if they differ.
func (w *podWorker) writeVolume(ctx context.Context, pod *corev1.Pod, v *podVolume) (bool, error) {
	files := map[string]atomicdir.File{}
	var err error
	switch s := v.spec.VolumeSource; {
	case s.Secret != nil:
		err = w.addSecret(ctx, pod, files, s.Secret.SecretName, s.Secret.Items, s.Secret.DefaultMode, s.Secret.Optional)
	case s.ConfigMap != nil:
		err = w.addConfigMap(ctx, pod, files, s.ConfigMap.Name, s.ConfigMap.Items, s.ConfigMap.DefaultMode, s.ConfigMap.Optional)
	case s.DownwardAPI != nil:
		err = w.addDownwardAPI(pod, files, s.DownwardAPI.Items, s.DownwardAPI.DefaultMode)
	case s.Projected != nil:
		err = w.addProjected(ctx, pod, files, v)
	}
	if err != nil {
		return false, fmt.Errorf("volume %s: %w", v.spec.Name, err)
	}
	group := -1
	if sc := pod.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
		group = int(*sc.FSGroup)
	}
	w.volMu.Lock()
	defer w.volMu.Unlock()
	if w.volsGone {
		return false, nil
	}
	changed, err := atomicdir.Write(v.dir, files, group)
	if err != nil {
		return false, fmt.Errorf("volume %s: %w", v.spec.Name, err)
	}
	return changed, nil
}

func (w *podWorker) addProjected(ctx context.Context, pod *corev1.Pod, files map[string]atomicdir.File, v *podVolume) error {
	p := v.spec.Projected
	for i, src := range p.Sources {
		var err error
		switch {
		case src.Secret != nil:
			err = w.addSecret(ctx, pod, files, src.Secret.Name, src.Secret.Items, p.DefaultMode, src.Secret.Optional)
		case src.ConfigMap != nil:
			err = w.addConfigMap(ctx, pod, files, src.ConfigMap.Name, src.ConfigMap.Items, p.DefaultMode, src.ConfigMap.Optional)
		case src.DownwardAPI != nil:
			err = w.addDownwardAPI(pod, files, src.DownwardAPI.Items, p.DefaultMode)
		case src.ServiceAccountToken != nil:
			tf := v.tokens[i]
			if tf == nil {
				t := src.ServiceAccountToken
				if err := checkRelative(t.Path); err != nil {
					return err
				}
				tf = &tokenFile{path: t.Path, sa: pod.Spec.ServiceAccountName, audience: t.Audience, expiry: 3600, mode: fileMode(nil, p.DefaultMode)}
				if t.ExpirationSeconds != nil {
					tf.expiry = *t.ExpirationSeconds
				}
				v.tokens[i] = tf
			}
			if tf.token == nil || !time.Now().Before(tf.refreshAt) {
				err = w.mintToken(ctx, pod, tf)
			}
			if err == nil {
				put(pod, files, tf.path, tf.token, tf.mode)
			}
		default:
			err = errors.New("a projected source of a kind the test node agent does not support")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// mintToken mints tf's token with the TokenRequest API, bound to the pod, and schedules
// its refresh at 80% of its life.
func (w *podWorker) mintToken(ctx context.Context, pod *corev1.Pod, tf *tokenFile) error {
	sa := tf.sa
	if sa == "" {
		sa = "default"
	}
	req := &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{
		ExpirationSeconds: &tf.expiry,
		BoundObjectRef:    &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if tf.audience != "" {
		req.Spec.Audiences = []string{tf.audience}
	}
	issued := time.Now()
	got, err := w.a.cfg.Client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("requesting a token for service account %s/%s: %w", pod.Namespace, sa, err)
	}
	life := got.Status.ExpirationTimestamp.Sub(issued)
	if life <= 0 {
		life = time.Duration(tf.expiry) * time.Second
	}
	tf.token = []byte(got.Status.Token)
	tf.refreshAt = issued.Add(life * 8 / 10)
	return nil
}

func (w *podWorker) addSecret(ctx context.Context, pod *corev1.Pod, files map[string]atomicdir.File, name string, items []corev1.KeyToPath, mode *int32, optional *bool) error {
	s, err := w.a.secret(ctx, pod.Namespace, name, optional)
	if err != nil || s == nil {
		return err
	}
	return addKeys(pod, files, s.Data, items, mode, optional, "Secret "+name)
}

func (w *podWorker) addConfigMap(ctx context.Context, pod *corev1.Pod, files map[string]atomicdir.File, name string, items []corev1.KeyToPath, mode *int32, optional *bool) error {
	cm, err := w.a.configMap(ctx, pod.Namespace, name, optional)
	if err != nil || cm == nil {
		return err
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return addKeys(pod, files, data, items, mode, optional, "ConfigMap "+name)
}

// addKeys adds every key (or only items, at their paths) as files.
func addKeys(pod *corev1.Pod, files map[string]atomicdir.File, data map[string][]byte, items []corev1.KeyToPath, mode *int32, optional *bool, what string) error {
	if len(items) == 0 {
		for k, v := range data {
			if err := checkRelative(k); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			put(pod, files, k, v, fileMode(nil, mode))
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional != nil && *optional {
				continue
			}
			return fmt.Errorf("%s has no key %q", what, it.Key)
		}
		if err := checkRelative(it.Path); err != nil {
			return err
		}
		put(pod, files, it.Path, v, fileMode(it.Mode, mode))
	}
	return nil
}

func (w *podWorker) addDownwardAPI(pod *corev1.Pod, files map[string]atomicdir.File, items []corev1.DownwardAPIVolumeFile, mode *int32) error {
	for _, it := range items {
		if err := checkRelative(it.Path); err != nil {
			return err
		}
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = fieldValue(pod, it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			v, err = resourceValue(pod, "", it.ResourceFieldRef, w.a.allocatable())
		default:
			err = fmt.Errorf("downward API item %s has no source", it.Path)
		}
		if err != nil {
			return err
		}
		put(pod, files, it.Path, []byte(v), fileMode(it.Mode, mode))
	}
	return nil
}

// put adds a file; with a pod fsGroup it is readable by that group (which owns it).
func put(pod *corev1.Pod, files map[string]atomicdir.File, path string, data []byte, mode os.FileMode) {
	if sc := pod.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
		mode |= 0o040
	}
	files[filepath.Clean(path)] = atomicdir.File{Data: data, Mode: mode}
}

// fileMode is an item's mode, else the volume's default, else 0644.
func fileMode(item, def *int32) os.FileMode {
	switch {
	case item != nil:
		return os.FileMode(*item) & os.ModePerm
	case def != nil:
		return os.FileMode(*def) & os.ModePerm
	}
	return defaultFileMode
}

// checkRelative refuses item paths that would escape the volume.
func checkRelative(p string) error {
	if p == "" || filepath.IsAbs(p) || strings.HasPrefix(filepath.Clean(p), "..") {
		return fmt.Errorf("volume item path %q: want a relative path inside the volume", p)
	}
	return nil
}
