package node_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// versionDir is the name of a volume's timestamped version directory.
var versionDir = regexp.MustCompile(`^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d+$`)

// checkLayout checks that dir has the kubelet's atomic-writer layout: ..data links to the
// one timestamped version directory and each of keys is a link through ..data.
func checkLayout(t *testing.T, dir string, keys ...string) {
	t.Helper()
	ver, err := os.Readlink(filepath.Join(dir, "..data"))
	if err != nil || !versionDir.MatchString(ver) {
		t.Errorf("%s/..data links to %q (%v), want a timestamped version directory", dir, ver, err)
	}
	entries, _ := os.ReadDir(dir)
	var versions []string
	for _, e := range entries {
		if versionDir.MatchString(e.Name()) {
			versions = append(versions, e.Name())
		}
	}
	if len(versions) != 1 || versions[0] != ver {
		t.Errorf("%s holds version directories %v, want only %s", dir, versions, ver)
	}
	for _, k := range keys {
		top, _, _ := strings.Cut(k, "/")
		if got, err := os.Readlink(filepath.Join(dir, top)); err != nil || got != "..data/"+top {
			t.Errorf("%s/%s links to %q (%v), want ..data/%s", dir, top, got, err, top)
		}
		real, err := filepath.EvalSymlinks(filepath.Join(dir, k))
		if err != nil || real != filepath.Join(dir, ver, k) {
			t.Errorf("%s/%s resolves to %q (%v), want it inside %s", dir, k, real, err, ver)
		}
	}
}

// mixWatcher reads keys a and b of a volume through one resolution of ..data, again and
// again, and records any version whose a and b differ.
type mixWatcher struct {
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	mixes []string
	reads int
}

func watchForMixes(dir string) *mixWatcher {
	m := &mixWatcher{stop: make(chan struct{})}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			select {
			case <-m.stop:
				return
			case <-time.After(time.Millisecond):
			}
			ver, err := os.Readlink(filepath.Join(dir, "..data"))
			if err != nil {
				m.record("reading ..data: " + err.Error())
				continue
			}
			a, errA := os.ReadFile(filepath.Join(dir, ver, "a"))
			b, errB := os.ReadFile(filepath.Join(dir, ver, "b"))
			if errors.Is(errA, fs.ErrNotExist) || errors.Is(errB, fs.ErrNotExist) {
				continue // that version was just removed: resolve ..data again
			}
			m.mu.Lock()
			m.reads++
			m.mu.Unlock()
			if errA != nil || errB != nil || string(a) != string(b) {
				m.record(fmt.Sprintf("version %s reads a=%q (%v), b=%q (%v)", ver, a, errA, b, errB))
			}
		}
	}()
	return m
}

func (m *mixWatcher) record(s string) {
	m.mu.Lock()
	m.mixes = append(m.mixes, s)
	m.mu.Unlock()
}

// done stops the watcher and fails the test on any mix.
func (m *mixWatcher) done(t *testing.T) {
	t.Helper()
	close(m.stop)
	m.wg.Wait()
	for _, s := range m.mixes[:min(len(m.mixes), 10)] {
		t.Error(s)
	}
	if m.reads == 0 {
		t.Error("the volume was never read through ..data")
	}
}

// follows are the contents a container's follow step reported for path, in order.
func follows(log, path string) []string {
	var seen []string
	for _, l := range strings.Split(log, "\n") {
		if v, ok := strings.CutPrefix(l, "follow "+path+" "); ok {
			seen = append(seen, v)
		}
	}
	return seen
}

func TestSecretAndConfigMapUpdatesReachRunningPodsAtomically(t *testing.T) {
	tn := startNode(t)
	ctx := context.Background()
	secrets, configMaps := tn.client.CoreV1().Secrets(tn.ns), tn.client.CoreV1().ConfigMaps(tn.ns)
	sec, err := secrets.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "issuer"},
		Data:       map[string][]byte{"a": []byte("v1"), "b": []byte("v1")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm, err := configMaps.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "conf"},
		Data:       map[string]string{"x": "c1", "unused": "u"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	const (
		secPath    = "/var/run/l5dtest/issuer/a"
		cfgPath    = "/var/run/l5dtest/proj/cfg/x"
		laterPath  = "/var/run/l5dtest/proj/later"
		labelsPath = "/var/run/l5dtest/proj/labels"
	)
	c := app("app", "follow:"+secPath+":v2", "follow:"+cfgPath+":c2", "follow:"+laterPath+":L",
		"follow:"+labelsPath+`:tier="platinum"`, "sleep")
	c.VolumeMounts = []corev1.VolumeMount{
		{Name: "issuer", MountPath: "/var/run/l5dtest/issuer", ReadOnly: true},
		{Name: "proj", MountPath: "/var/run/l5dtest/proj", ReadOnly: true},
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "rotating", Labels: map[string]string{"tier": "gold"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr(int64(2)),
			SecurityContext:               &corev1.PodSecurityContext{FSGroup: ptr(int64(3000))},
			Containers:                    []corev1.Container{c},
			Volumes: []corev1.Volume{
				{Name: "issuer", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "issuer", DefaultMode: ptr(int32(0o400))}}},
				{Name: "proj", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{ConfigMap: &corev1.ConfigMapProjection{
						LocalObjectReference: corev1.LocalObjectReference{Name: "conf"},
						Items:                []corev1.KeyToPath{{Key: "x", Path: "cfg/x"}},
					}},
					{Secret: &corev1.SecretProjection{
						LocalObjectReference: corev1.LocalObjectReference{Name: "later"},
						Items:                []corev1.KeyToPath{{Key: "k", Path: "later"}},
						Optional:             ptr(true),
					}},
					{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
						{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
					}}},
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr(int64(3600))}},
				}}}},
			},
		},
	}
	tn.createPod(t, pod)
	tn.waitLog(t, "rotating", "app", "follow "+secPath+" v1")
	vols := filepath.Join(tn.runDir, "pods", tn.ns+"_rotating", "volumes")
	secDir, projDir := filepath.Join(vols, "issuer"), filepath.Join(vols, "proj")
	checkLayout(t, secDir, "a", "b")
	checkLayout(t, projDir, "cfg/x", "labels", "token")
	if info, err := os.Stat(filepath.Join(secDir, "a")); err != nil || info.Mode().Perm() != 0o440 {
		t.Errorf("the Secret's file: %v, %v; want mode 0440 (defaultMode 0400, readable by the fsGroup)", info, err)
	}
	token, err := os.ReadFile(filepath.Join(projDir, "token"))
	if err != nil || len(token) == 0 {
		t.Fatalf("the projected token: %q, %v", token, err)
	}

	// A Secret update: the container sees the new value at the same path, never a mix.
	mixes := watchForMixes(secDir)
	sec.Data = map[string][]byte{"a": []byte("v2"), "b": []byte("v2")}
	updated := time.Now()
	if _, err := secrets.Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := tn.waitLog(t, "rotating", "app", "follow "+secPath+" v2")
	t.Logf("the Secret update reached the container in %v", time.Since(updated).Round(time.Millisecond))
	mixes.done(t)
	if seen := follows(got, secPath); strings.Join(seen, ",") != "v1,v2" {
		t.Errorf("the container read %s as %q, want v1 then v2", secPath, seen)
	}
	checkLayout(t, secDir, "a", "b")

	// A ConfigMap update reaches the projected volume, which keeps its other files.
	tn.waitLog(t, "rotating", "app", "follow "+cfgPath+" c1")
	cm.Data["x"] = "c2"
	updated = time.Now()
	if _, err := configMaps.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	got = tn.waitLog(t, "rotating", "app", "follow "+cfgPath+" c2")
	t.Logf("the ConfigMap update reached the container in %v", time.Since(updated).Round(time.Millisecond))
	if seen := follows(got, cfgPath); strings.Join(seen, ",") != "c1,c2" {
		t.Errorf("the container read %s as %q, want c1 then c2", cfgPath, seen)
	}
	checkLayout(t, projDir, "cfg/x", "labels", "token")
	if again, err := os.ReadFile(filepath.Join(projDir, "token")); err != nil || string(again) != string(token) {
		t.Errorf("after the ConfigMap update the token reads %d bytes (%v), want the same token", len(again), err)
	}

	// A missing optional Secret appears once created.
	tn.waitLog(t, "rotating", "app", "follow "+laterPath+" absent")
	if _, err := secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "later"}, Data: map[string][]byte{"k": []byte("L")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tn.waitLog(t, "rotating", "app", "follow "+laterPath+" L")
	checkLayout(t, projDir, "cfg/x", "labels", "later", "token")

	// New labels reach the downward API file.
	tn.waitLog(t, "rotating", "app", "follow "+labelsPath+` tier="gold"`)
	patch := []byte(`{"metadata":{"labels":{"tier":"platinum"}}}`)
	if _, err := tn.client.CoreV1().Pods(tn.ns).Patch(ctx, "rotating", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	tn.waitLog(t, "rotating", "app", "follow "+labelsPath+` tier="platinum"`)

	// Deleting a Secret a volume needs keeps the volume's last content; deleting the
	// optional one removes its file.
	if err := secrets.Delete(ctx, "issuer", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := secrets.Delete(ctx, "later", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	tn.eventually(t, "the deleted optional Secret's file to go", func() (bool, string) {
		_, err := os.Lstat(filepath.Join(projDir, "later"))
		return errors.Is(err, fs.ErrNotExist), fmt.Sprintf("lstat: %v", err)
	})
	checkLayout(t, projDir, "cfg/x", "labels", "token")
	if b, err := os.ReadFile(filepath.Join(secDir, "a")); err != nil || string(b) != "v2" {
		t.Errorf("after its Secret was deleted the volume reads %q, %v; want its last content v2", b, err)
	}
}
