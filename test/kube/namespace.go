package kube

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
)

// NamespaceOption sets a property of a namespace made by Cluster.Namespace.
type NamespaceOption func(*corev1.Namespace)

// WithLabels adds labels to the namespace.
func WithLabels(labels map[string]string) NamespaceOption {
	return func(ns *corev1.Namespace) {
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		maps.Copy(ns.Labels, labels)
	}
}

// WithAnnotations adds annotations to the namespace.
func WithAnnotations(annotations map[string]string) NamespaceOption {
	return func(ns *corev1.Namespace) {
		if ns.Annotations == nil {
			ns.Annotations = map[string]string{}
		}
		maps.Copy(ns.Annotations, annotations)
	}
}

// cleanupTimeout bounds each cleanup step run after a test.
const cleanupTimeout = time.Minute

// Namespace creates a namespace for t, named after the test with a random suffix, holding
// the "default" service account (pod creation needs it) and the kube-root-ca.crt config map
// as in a real cluster (with the controller manager, its publisher adds the config map a
// moment later). It is deleted with everything in it
// when the test ends; pods go at once (grace period 0), since no kubelet would confirm a
// graceful deletion.
func (c *Cluster) Namespace(t testing.TB, opts ...NamespaceOption) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: uniqueName(t.Name(), 40)}}
	for _, o := range opts {
		o(ns)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	created, err := c.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kube: creating namespace %s: %v", ns.Name, err)
	}
	name := created.Name
	t.Cleanup(func() {
		if err := c.deleteNamespace(name); err != nil {
			t.Errorf("kube: deleting namespace %s: %v", name, err)
		}
	})
	// Created here even with the controller manager, so a pod can be made right away.
	if err := ensureServiceAccount(ctx, c.client, name, "default"); err != nil {
		t.Fatalf("kube: %v", err)
	}
	if c.opts.ControllerManager {
		return name // its service-account and root-CA publisher controllers fill the namespace
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: rootCAConfigMap, Namespace: name},
		Data:       map[string]string{"ca.crt": string(c.pki.ca.certPEM)},
	}
	if _, err := c.client.CoreV1().ConfigMaps(name).Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("kube: creating config map %s/%s: %v", name, rootCAConfigMap, err)
	}
	return name
}

// deleteNamespace removes a test namespace. With the controller manager its namespace
// controller empties it; without, this does the same job: delete every collection of
// namespaced resources, then finalize the namespace so it disappears, keeping the cluster
// clean for tests that list across namespaces.
func (c *Cluster) deleteNamespace(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	zero := int64(0)
	err := c.client.CoreV1().Pods(name).DeleteCollection(ctx,
		metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting pods: %w", err)
	}
	if !c.opts.ControllerManager {
		if err := c.deleteNamespacedCollections(ctx, name); err != nil {
			return err
		}
	}
	err = c.client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) || c.opts.ControllerManager {
		return ignoreNotFound(err)
	}
	if err != nil {
		return err
	}
	ns, err := c.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return ignoreNotFound(err)
	}
	ns.Spec.Finalizers = nil
	_, err = c.client.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{})
	return ignoreNotFound(err)
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// deleteNamespacedCollections deletes all objects of every namespaced resource in ns.
func (c *Cluster) deleteNamespacedCollections(ctx context.Context, ns string) error {
	// A partial result (an aggregated API that does not answer) is still worth using.
	lists, err := c.client.Discovery().ServerPreferredNamespacedResources()
	if len(lists) == 0 && err != nil {
		return fmt.Errorf("discovering namespaced resources: %w", err)
	}
	for _, list := range lists {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range list.APIResources {
			if strings.Contains(r.Name, "/") || !sets.New(r.Verbs...).Has("deletecollection") {
				continue
			}
			gvr := gv.WithResource(r.Name)
			err := c.dyn.Resource(gvr).Namespace(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsMethodNotSupported(err) {
				return fmt.Errorf("deleting %s in %s: %w", gvr, ns, err)
			}
		}
	}
	return nil
}

// uniqueName turns s (a test name) into a DNS label of at most maxLen characters plus a
// random 6-character suffix.
func uniqueName(s string, maxLen int) string {
	var b strings.Builder
	dash := true // no leading dash
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash:
			b.WriteByte('-')
			dash = true
		}
	}
	base := strings.Trim(b.String(), "-")
	if len(base) > maxLen {
		base = strings.TrimRight(base[:maxLen], "-")
	}
	if base == "" {
		base = "test"
	}
	return base + "-" + randomSuffix(6)
}

// randomSuffix returns n random characters from [a-z0-9].
func randomSuffix(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	for i, v := range buf {
		buf[i] = alphabet[int(v)%len(alphabet)]
	}
	return string(buf)
}
