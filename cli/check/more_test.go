package check

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/test/kube"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// find returns the result of one check ("category/name"), or a zero Result.
func find(rep Report, key string) Result {
	for _, c := range rep.Categories {
		for _, r := range c.Checks {
			if c.Name+"/"+r.Name == key {
				return r
			}
		}
	}
	return Result{}
}

// expect checks one result and, for a failure, that its error and hint say what is wrong.
func expect(t *testing.T, rep Report, key, result, errPart, hint string) {
	t.Helper()
	r := find(rep, key)
	if r.Result != result {
		var b bytes.Buffer
		WriteTable(&b, rep)
		t.Errorf("%s: %q, want %q\n%s", key, r.Result, result, b.String())
		return
	}
	if errPart != "" && !strings.Contains(r.Error, errPart) {
		t.Errorf("%s: error %q lacks %q", key, r.Error, errPart)
	}
	if hint != "" && r.Hint != hintBase+hint {
		t.Errorf("%s: hint %q, want %s%s", key, r.Hint, hintBase, hint)
	}
}

// TestLinkerdCategories runs the categories Linkerd's check has beyond the basic ones
// against a real API server, green and then red with Linkerd's hint: linkerd-version and
// the up-to-date checks (--expected-version), linkerd-ha-checks (an HA install whose
// kube-system is not exempt and whose components have one replica),
// linkerd-control-plane-proxy, linkerd-identity-data-plane (a proxy with old trust anchors),
// data plane up-to-date, pod labels and Service annotations, linkerd-opaque-ports-definition,
// cluster networks, linkerd-extension-checks, --crds, and --pre's CronJob permission and
// clock skew (a node whose heartbeat is an hour away).
func TestLinkerdCategories(t *testing.T) {
	c := kube.Shared(t)
	ctx := context.Background()
	kc := c.Client()
	ns := "l5d-check-cats"
	installReady(t, c, ns)
	// The HA checks follow linkerd-config's webhookFailurePolicy. The webhook itself stays
	// Ignore: the API server shares one cluster-wide webhook configuration between tests,
	// and no injector runs to answer it.
	cm, err := kc.CoreV1().ConfigMaps(ns).Get(ctx, "linkerd-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cm.Data["values"], "webhookFailurePolicy: Ignore") {
		t.Fatalf("linkerd-config values lack webhookFailurePolicy: Ignore:\n%s", cm.Data["values"])
	}
	cm.Data["values"] = strings.Replace(cm.Data["values"], "webhookFailurePolicy: Ignore", "webhookFailurePolicy: Fail", 1)
	if _, err := kc.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	app := c.Namespace(t)
	web := meshedPod("web", app, map[string]string{"app": "web"})
	web.Annotations["config.linkerd.io/opaque-ports"] = "3306"
	web.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", Value: "old anchors"}}
	c.CreatePod(t, web)
	c.SetPodStatus(t, app, "web", kube.PodStatus{Ready: true, IPs: []string{"10.244.8.2"}})
	if _, err := kc.CoreV1().Services(app).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: app},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Port: 3306, TargetPort: intstr.FromInt32(3306)}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	o := Options{Namespace: ns, Proxy: true, DataPlaneNamespace: app, CLIVersion: "dev", ExpectedVersion: "dev"}
	rep := Run(ctx, kc, c.Dynamic(), o)
	for _, k := range []string{
		"linkerd-version/can determine the latest version", "linkerd-version/cli is up-to-date",
		"control-plane-version/control plane is up-to-date",
		"linkerd-control-plane-proxy/control plane proxies are healthy",
		"linkerd-control-plane-proxy/control plane proxies are up-to-date",
		"linkerd-control-plane-proxy/control plane proxies and cli versions match",
		"linkerd-data-plane/data plane is up-to-date", "linkerd-data-plane/data plane pod labels are configured correctly",
		"linkerd-data-plane/data plane service annotations are configured correctly",
		"linkerd-existence/cluster networks contains all pods", "linkerd-existence/cluster networks contains all services",
		"linkerd-config/control plane CustomResourceDefinitions exist",
		"linkerd-extension-checks/namespace configuration for extensions",
	} {
		expect(t, rep, k, "success", "", "")
	}
	expect(t, rep, "linkerd-ha-checks/pod injection disabled on kube-system", "warning", "config.linkerd.io/admission-webhooks", "l5d-injection-disabled")
	expect(t, rep, "linkerd-ha-checks/multiple replicas of control plane pods", "warning", "not enough replicas available", "l5d-control-plane-replicas")
	expect(t, rep, "linkerd-identity-data-plane/data plane proxies certificate match CA", "warning", app+"/web", "l5d-identity-data-plane-proxies-certs-match-ca")
	expect(t, rep, "linkerd-opaque-ports-definition/opaque ports are properly annotated", "warning", "add 3306 to its config.linkerd.io/opaque-ports", "linkerd-opaque-ports-definition")

	// Without --expected-version the latest version is unknown: a warning, and the
	// up-to-date checks are left out.
	rep = Run(ctx, kc, c.Dynamic(), Options{Namespace: ns, CLIVersion: "dev"})
	expect(t, rep, "linkerd-version/can determine the latest version", "warning", "--expected-version", "l5d-version-latest")
	if r := find(rep, "control-plane-version/control plane is up-to-date"); r.Result != "" {
		t.Errorf("control plane is up-to-date run without --expected-version: %+v", r)
	}

	// Old proxies, misplaced configuration, an outside pod IP, a duplicated extension.
	o.ExpectedVersion = "v2"
	web2 := meshedPod("web2", app, map[string]string{"config.linkerd.io/proxy-cpu-limit": "1"})
	c.CreatePod(t, web2)
	c.SetPodStatus(t, app, "web2", kube.PodStatus{Ready: true, IPs: []string{"203.0.113.9"}})
	if _, err := kc.CoreV1().Services(app).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "misplaced", Namespace: app, Annotations: map[string]string{"config.linkerd.io/skip-inbound-ports": "80"}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		c.Namespace(t, kube.WithLabels(map[string]string{"linkerd.io/extension": "l5d-check-ext"}))
	}
	rep = Run(ctx, kc, c.Dynamic(), o)
	expect(t, rep, "linkerd-version/cli is up-to-date", "warning", "is running version dev but the latest version is v2", "l5d-version-cli")
	expect(t, rep, "control-plane-version/control plane is up-to-date", "warning", "latest version is v2", "l5d-version-control")
	expect(t, rep, "linkerd-control-plane-proxy/control plane proxies are up-to-date", "warning", "linkerd-identity-0 (dev)", "l5d-cp-proxy-version")
	expect(t, rep, "linkerd-data-plane/data plane is up-to-date", "warning", "web (dev)", "l5d-data-plane-version")
	expect(t, rep, "linkerd-data-plane/data plane pod labels are configured correctly", "warning", "config.linkerd.io/proxy-cpu-limit", "l5d-data-plane-pod-labels")
	expect(t, rep, "linkerd-data-plane/data plane service annotations are configured correctly", "warning", "config.linkerd.io/skip-inbound-ports", "l5d-data-plane-services-annotations")
	expect(t, rep, "linkerd-existence/cluster networks contains all pods", "warning", "203.0.113.9", "l5d-cluster-networks-pods")
	expect(t, rep, "linkerd-extension-checks/namespace configuration for extensions", "warning", "l5d-check-ext", "l5d-extension-namespaces")

	// A control-plane proxy that is not ready is an error.
	c.SetPodStatus(t, ns, "linkerd-destination-0", kube.PodStatus{Ready: false, IPs: []string{"10.244.9.1"}})
	rep = Run(ctx, kc, c.Dynamic(), o)
	expect(t, rep, "linkerd-control-plane-proxy/control plane proxies are healthy", "error", "linkerd-destination-0", "l5d-cp-proxy-healthy")
	if rep.Success {
		t.Error("report succeeds with a control-plane proxy not ready")
	}

	// The HA checks pass once kube-system is exempt and every component has replicas.
	ks, err := kc.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ks.Labels == nil {
		ks.Labels = map[string]string{}
	}
	ks.Labels["config.linkerd.io/admission-webhooks"] = "disabled"
	if _, err := kc.CoreV1().Namespaces().Update(ctx, ks, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ks, err := kc.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
		if err == nil {
			delete(ks.Labels, "config.linkerd.io/admission-webhooks")
			_, _ = kc.CoreV1().Namespaces().Update(ctx, ks, metav1.UpdateOptions{})
		}
	})
	for _, d := range controlPlaneComponents {
		dep, err := kc.AppsV1().Deployments(ns).Get(ctx, d, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		dep.Status.Replicas, dep.Status.AvailableReplicas, dep.Status.ReadyReplicas = 3, 3, 3
		if _, err := kc.AppsV1().Deployments(ns).UpdateStatus(ctx, dep, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	rep = Run(ctx, kc, c.Dynamic(), o)
	expect(t, rep, "linkerd-ha-checks/pod injection disabled on kube-system", "success", "", "")
	expect(t, rep, "linkerd-ha-checks/multiple replicas of control plane pods", "success", "", "")

	// --crds runs the API and CRD checks only.
	rep = Run(ctx, kc, c.Dynamic(), Options{CRDs: true, Namespace: ns})
	expect(t, rep, "linkerd-crd/control plane CustomResourceDefinitions exist", "success", "", "")
	if n := len(rep.Categories); n != 3 {
		t.Errorf("--crds ran %d categories, want kubernetes-api, kubernetes-version and linkerd-crd", n)
	}

	// --pre: CronJob permission, and a node whose last heartbeat is an hour from now.
	pre := Run(ctx, kc, c.Dynamic(), Options{Pre: true, Namespace: "l5d-check-cats-pre"})
	expect(t, pre, "pre-kubernetes-setup/can create CronJobs", "success", "", "")
	expect(t, pre, "pre-kubernetes-setup/no clock skew detected", "success", "", "")
	node, err := kc.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "l5d-check-skewed"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kc.CoreV1().Nodes().Delete(ctx, node.Name, metav1.DeleteOptions{}) })
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
		LastHeartbeatTime: metav1.NewTime(time.Now().Add(time.Hour))}}
	if _, err := kc.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pre = Run(ctx, kc, c.Dynamic(), Options{Pre: true, Namespace: "l5d-check-cats-pre"})
	expect(t, pre, "pre-kubernetes-setup/no clock skew detected", "warning", "l5d-check-skewed", "pre-k8s-clock-skew")

	var b bytes.Buffer
	WriteShort(&b, pre)
	if s := b.String(); !strings.HasSuffix(s, "Status check results are √\n") || !strings.Contains(s, "‼ no clock skew detected") || strings.Contains(s, "can create CronJobs") {
		t.Errorf("short output:\n%s", s)
	}
}
