package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
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
	path      string
	sa        string
	audience  string
	expiry    int64
	mode      os.FileMode
	refreshAt time.Time
}

// setupVolumes writes every volume of the pod under its directory. It fails when a
// ConfigMap or Secret that is not optional is missing (the caller retries) or a volume
// type is not supported.
func (w *podWorker) setupVolumes(ctx context.Context, pod *corev1.Pod) error {
	w.tokens = nil
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
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
		var err error
		switch {
		case v.EmptyDir != nil:
			err = os.Chmod(dir, 0o777)
		case v.Secret != nil:
			err = w.writeSecret(ctx, pod, dir, v.Secret.SecretName, v.Secret.Items, v.Secret.DefaultMode, v.Secret.Optional)
		case v.ConfigMap != nil:
			err = w.writeConfigMap(ctx, pod, dir, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.DefaultMode, v.ConfigMap.Optional)
		case v.DownwardAPI != nil:
			err = w.writeDownwardAPI(pod, dir, v.DownwardAPI.Items, v.DownwardAPI.DefaultMode)
		case v.Projected != nil:
			err = w.writeProjected(ctx, pod, dir, v.Projected)
		default:
			err = errors.New("this volume type is not supported by the test node agent")
		}
		if err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
	}
	return nil
}

func (w *podWorker) writeProjected(ctx context.Context, pod *corev1.Pod, dir string, p *corev1.ProjectedVolumeSource) error {
	for _, src := range p.Sources {
		var err error
		switch {
		case src.Secret != nil:
			err = w.writeSecret(ctx, pod, dir, src.Secret.Name, src.Secret.Items, p.DefaultMode, src.Secret.Optional)
		case src.ConfigMap != nil:
			err = w.writeConfigMap(ctx, pod, dir, src.ConfigMap.Name, src.ConfigMap.Items, p.DefaultMode, src.ConfigMap.Optional)
		case src.DownwardAPI != nil:
			err = w.writeDownwardAPI(pod, dir, src.DownwardAPI.Items, p.DefaultMode)
		case src.ServiceAccountToken != nil:
			t := src.ServiceAccountToken
			tf := &tokenFile{
				path:     filepath.Join(dir, t.Path),
				sa:       pod.Spec.ServiceAccountName,
				audience: t.Audience,
				expiry:   3600,
				mode:     fileMode(nil, p.DefaultMode),
			}
			if t.ExpirationSeconds != nil {
				tf.expiry = *t.ExpirationSeconds
			}
			if err := checkRelative(t.Path); err != nil {
				return err
			}
			if err := w.writeToken(ctx, pod, tf); err != nil {
				return err
			}
			w.tokens = append(w.tokens, tf)
		default:
			err = errors.New("a projected source of a kind the test node agent does not support")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// writeToken mints tf's token with the TokenRequest API, bound to the pod, writes it and
// schedules its refresh at 80% of its life.
func (w *podWorker) writeToken(ctx context.Context, pod *corev1.Pod, tf *tokenFile) error {
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
	tf.refreshAt = issued.Add(life * 8 / 10)
	return w.writeFile(pod, tf.path, []byte(got.Status.Token), tf.mode)
}

// refreshTokens re-mints tokens as they reach 80% of their life, until ctx ends.
func (w *podWorker) refreshTokens(ctx context.Context) {
	for {
		w.mu.Lock()
		pod := w.pod
		next := time.Now().Add(time.Hour)
		for _, tf := range w.tokens {
			if tf.refreshAt.Before(next) {
				next = tf.refreshAt
			}
		}
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
		for _, tf := range w.tokens {
			if time.Now().Before(tf.refreshAt) {
				continue
			}
			if err := w.writeToken(ctx, pod, tf); err != nil {
				w.log.Warn("refreshing a service-account token", "path", tf.path, "error", err)
				tf.refreshAt = time.Now().Add(10 * time.Second)
			}
		}
	}
}

func (w *podWorker) writeSecret(ctx context.Context, pod *corev1.Pod, dir, name string, items []corev1.KeyToPath, mode *int32, optional *bool) error {
	s, err := w.a.secret(ctx, pod.Namespace, name, optional)
	if err != nil || s == nil {
		return err
	}
	return w.writeKeys(pod, dir, s.Data, items, mode, optional, "Secret "+name)
}

func (w *podWorker) writeConfigMap(ctx context.Context, pod *corev1.Pod, dir, name string, items []corev1.KeyToPath, mode *int32, optional *bool) error {
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
	return w.writeKeys(pod, dir, data, items, mode, optional, "ConfigMap "+name)
}

// writeKeys writes every key (or only items, at their paths) as files.
func (w *podWorker) writeKeys(pod *corev1.Pod, dir string, data map[string][]byte, items []corev1.KeyToPath, mode *int32, optional *bool, what string) error {
	if len(items) == 0 {
		for k, v := range data {
			if err := w.writeFile(pod, filepath.Join(dir, k), v, fileMode(nil, mode)); err != nil {
				return err
			}
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
		if err := w.writeFile(pod, filepath.Join(dir, it.Path), v, fileMode(it.Mode, mode)); err != nil {
			return err
		}
	}
	return nil
}

func (w *podWorker) writeDownwardAPI(pod *corev1.Pod, dir string, items []corev1.DownwardAPIVolumeFile, mode *int32) error {
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
		if err := w.writeFile(pod, filepath.Join(dir, it.Path), []byte(v), fileMode(it.Mode, mode)); err != nil {
			return err
		}
	}
	return nil
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

// writeFile replaces path atomically with data and mode; with a pod fsGroup the file's
// group is the fsGroup and readable by it.
func (w *podWorker) writeFile(pod *corev1.Pod, path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if sc := pod.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
		if err := os.Chown(tmp.Name(), 0, int(*sc.FSGroup)); err != nil {
			return err
		}
		mode |= 0o040
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
