package webhook

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/pkg/inject"
	"github.com/l5d-go/l5d/test/kube"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{ControllerManager: true}) }

func testValues(t testing.TB) *inject.Values {
	t.Helper()
	pem, err := os.ReadFile("../../pkg/inject/testdata/seed-anchors.pem")
	if err != nil {
		t.Fatal(err)
	}
	v := inject.DefaultValues()
	v.IdentityTrustAnchorsPEM = string(pem)
	return &v
}

// injector is a running webhook registered with the shared API server for some namespaces.
type injector struct {
	srv     *kube.HTTPSServer
	metrics *Metrics
}

func startInjector(t *testing.T, c *kube.Cluster, namespaces ...string) *injector {
	t.Helper()
	values := testValues(t)
	return startInjectorWith(t, c, func() *inject.Values { return values }, namespaces...)
}

func startInjectorWith(t *testing.T, c *kube.Cluster, values func() *inject.Values, namespaces ...string) *injector {
	t.Helper()
	metrics := NewMetrics()
	if err := metrics.Register(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	bc := record.NewBroadcaster()
	bc.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.Client().CoreV1().Events("")})
	t.Cleanup(bc.Shutdown)
	h := &Handler{
		Values:  values,
		Cluster: &KubeCluster{Client: c.Client()},
		Metrics: metrics,
		Events:  bc.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "linkerd-proxy-injector"}),
	}
	srv := kube.ServeHTTPS(t, h)
	c.RegisterMutatingWebhook(t, kube.Webhook{
		Name: "linkerd-proxy-injector.linkerd.io", URL: srv.URL, CABundle: srv.CABundle,
		Namespaces: namespaces,
		NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: inject.LabelAdmissionWebhooks, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"disabled"},
		}}},
		ReinvocationPolicy: admissionregistrationv1.IfNeededReinvocationPolicy,
	})
	return &injector{srv: srv, metrics: metrics}
}

func container(list []corev1.Container, name string) *corev1.Container {
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}

func env(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// assertNative checks the stored pod runs linkerd-init then the proxy as a native sidecar.
func assertNative(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	if len(pod.Spec.InitContainers) < 2 || pod.Spec.InitContainers[0].Name != inject.InitContainerName || pod.Spec.InitContainers[1].Name != inject.ProxyContainerName {
		t.Fatalf("init containers = %v, want linkerd-init then linkerd-proxy", names(pod.Spec.InitContainers))
	}
	proxy := &pod.Spec.InitContainers[1]
	if proxy.RestartPolicy == nil || *proxy.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Error("proxy is not a restartable (native sidecar) init container")
	}
	if container(pod.Spec.Containers, inject.ProxyContainerName) != nil {
		t.Error("proxy also present among containers")
	}
	if got := env(proxy, "LINKERD2_PROXY_DESTINATION_SVC_ADDR"); got != "linkerd-dst-headless.linkerd.svc.cluster.local.:8086" {
		t.Errorf("destination addr = %q", got)
	}
	if proxy.SecurityContext == nil || proxy.SecurityContext.RunAsUser == nil || *proxy.SecurityContext.RunAsUser != 2102 {
		t.Error("proxy does not run as uid 2102")
	}
	if pod.Annotations[inject.AnnotationTrustRootSHA256] == "" || pod.Labels[inject.LabelWorkloadNS] != pod.Namespace ||
		pod.Labels[inject.LabelControlPlaneNS] != "linkerd" {
		t.Errorf("injected metadata missing: annotations %v labels %v", pod.Annotations, pod.Labels)
	}
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func plainPod(ns, name string, ann map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: ann},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "example/app:1", Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
		}}},
	}
}

func TestAdmissionThroughAPIServer(t *testing.T) {
	c := kube.Shared(t)
	ctx := context.Background()
	enabled := c.Namespace(t, kube.WithAnnotations(map[string]string{inject.AnnotationInject: "enabled"}))
	plain := c.Namespace(t)
	classic := c.Namespace(t, kube.WithAnnotations(map[string]string{
		inject.AnnotationInject: "enabled", inject.AnnotationNativeSidecarAlpha: "false",
		inject.AnnotationSkipOutboundPorts: "443",
	}))
	exempt := c.Namespace(t, kube.WithAnnotations(map[string]string{inject.AnnotationInject: "enabled"}),
		kube.WithLabels(map[string]string{inject.LabelAdmissionWebhooks: "disabled"}))
	inj := startInjector(t, c, enabled, plain, classic, exempt)

	t.Run("pod in annotated namespace is injected", func(t *testing.T) {
		pod := c.CreatePod(t, plainPod(enabled, "web", nil))
		assertNative(t, pod)
		if got := env(&pod.Spec.InitContainers[1], "LINKERD2_PROXY_INBOUND_PORTS"); got != "8080" {
			t.Errorf("inbound ports = %q, want 8080", got)
		}
		if pod.Annotations[inject.AnnotationInject] != "enabled" {
			t.Errorf("linkerd.io/inject annotation = %q", pod.Annotations[inject.AnnotationInject])
		}
	})
	t.Run("pod in un-annotated namespace is untouched", func(t *testing.T) {
		pod := c.CreatePod(t, plainPod(plain, "web", nil))
		if len(pod.Spec.InitContainers) != 0 || len(pod.Spec.Containers) != 1 || pod.Annotations[inject.AnnotationCreatedBy] != "" {
			t.Errorf("pod changed: init %v containers %v", names(pod.Spec.InitContainers), names(pod.Spec.Containers))
		}
	})
	t.Run("pod annotation enables injection in plain namespace", func(t *testing.T) {
		pod := c.CreatePod(t, plainPod(plain, "opted-in", map[string]string{inject.AnnotationInject: "enabled"}))
		assertNative(t, pod)
	})
	t.Run("inject disabled on the pod is respected", func(t *testing.T) {
		pod := c.CreatePod(t, plainPod(enabled, "opted-out", map[string]string{inject.AnnotationInject: "disabled"}))
		if len(pod.Spec.InitContainers) != 0 || len(pod.Spec.Containers) != 1 {
			t.Errorf("disabled pod injected: init %v containers %v", names(pod.Spec.InitContainers), names(pod.Spec.Containers))
		}
	})
	t.Run("namespace labelled admission-webhooks disabled is untouched", func(t *testing.T) {
		pod := c.CreatePod(t, plainPod(exempt, "web", nil))
		if len(pod.Spec.InitContainers) != 0 || len(pod.Spec.Containers) != 1 {
			t.Errorf("exempt pod injected: %v", names(pod.Spec.Containers))
		}
	})
	t.Run("classic sidecar from namespace config", func(t *testing.T) {
		pod := c.CreatePod(t, plainPod(classic, "web", nil))
		if len(pod.Spec.Containers) != 2 || pod.Spec.Containers[0].Name != inject.ProxyContainerName {
			t.Fatalf("containers = %v, want linkerd-proxy first", names(pod.Spec.Containers))
		}
		if pod.Spec.Containers[0].Lifecycle == nil || pod.Spec.Containers[0].Lifecycle.PostStart == nil {
			t.Error("classic proxy lacks the linkerd-await postStart hook")
		}
		args := strings.Join(pod.Spec.InitContainers[0].Args, " ")
		if !strings.Contains(args, "--outbound-ports-to-ignore 443") {
			t.Errorf("linkerd-init args %q lack the namespace's skip-outbound-ports", args)
		}
	})
	t.Run("bad annotation is refused naming it", func(t *testing.T) {
		pod := plainPod(enabled, "bad", map[string]string{inject.AnnotationSkipInboundPorts: "80,http"})
		_, err := c.Client().CoreV1().Pods(enabled).Create(ctx, pod, metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), inject.AnnotationSkipInboundPorts) {
			t.Fatalf("create err = %v, want a refusal naming %s", err, inject.AnnotationSkipInboundPorts)
		}
	})
	t.Run("deployment pods are injected and labelled with the deployment", func(t *testing.T) {
		one := int32(1)
		dep := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: enabled},
			Spec: appsv1.DeploymentSpec{
				Replicas: &one,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "shop"}},
					Spec:       plainPod("", "", nil).Spec,
				},
			},
		}
		if _, err := c.Client().AppsV1().Deployments(enabled).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pod := waitPod(t, c, enabled, "app=shop")
		assertNative(t, pod)
		if got := pod.Labels["linkerd.io/proxy-deployment"]; got != "shop" {
			t.Errorf("linkerd.io/proxy-deployment = %q, want shop (labels %v)", got, pod.Labels)
		}
		eventually.True(t, "an Injected event on the deployment", func() bool {
			evs, err := c.Client().CoreV1().Events(enabled).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Deployment,involvedObject.name=shop"})
			if err != nil {
				return false
			}
			for _, e := range evs.Items {
				if e.Reason == "Injected" {
					return true
				}
			}
			return false
		})
	})
	t.Run("job pods get the native sidecar so the job can finish", func(t *testing.T) {
		job := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "report", Namespace: enabled},
			Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "report"}},
				Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{Name: "report", Image: "example/report:1"}}},
			}},
		}
		if _, err := c.Client().BatchV1().Jobs(enabled).Create(ctx, job, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pod := waitPod(t, c, enabled, "app=report")
		assertNative(t, pod)
		if got := pod.Labels["linkerd.io/proxy-job"]; got != "report" {
			t.Errorf("linkerd.io/proxy-job = %q, want report", got)
		}
	})
	t.Run("statefulset pods are labelled with the statefulset", func(t *testing.T) {
		one := int32(1)
		sts := &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: enabled},
			Spec: appsv1.StatefulSetSpec{
				Replicas: &one, ServiceName: "db",
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}},
					Spec:       plainPod("", "", nil).Spec,
				},
			},
		}
		if _, err := c.Client().AppsV1().StatefulSets(enabled).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pod := waitPod(t, c, enabled, "app=db")
		assertNative(t, pod)
		if got := pod.Labels["linkerd.io/proxy-statefulset"]; got != "db" {
			t.Errorf("linkerd.io/proxy-statefulset = %q, want db", got)
		}
	})
	t.Run("pods of a cronjob's job are labelled with the cronjob", func(t *testing.T) {
		cron := &batchv1.CronJob{
			ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: enabled},
			Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{Name: "backup", Image: "example/backup:1"}}}},
			}}},
		}
		created, err := c.Client().BatchV1().CronJobs(enabled).Create(ctx, cron, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// The cronjob controller does not run here; create the Job it would create.
		yes := true
		job := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "nightly-29000000", Namespace: enabled,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: created.Name, UID: created.UID, Controller: &yes}}},
			Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "nightly"}},
				Spec:       cron.Spec.JobTemplate.Spec.Template.Spec,
			}},
		}
		if _, err := c.Client().BatchV1().Jobs(enabled).Create(ctx, job, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pod := waitPod(t, c, enabled, "app=nightly")
		assertNative(t, pod)
		if got := pod.Labels["linkerd.io/proxy-cronjob"]; got != "nightly" {
			t.Errorf("linkerd.io/proxy-cronjob = %q, want nightly (labels %v)", got, pod.Labels)
		}
	})

	if got := testutil.ToFloat64(inj.metrics.Responses.WithLabelValues(ResultRefused, "annotation")); got < 1 {
		t.Errorf("refused responses = %v, want >= 1", got)
	}
	if got := testutil.ToFloat64(inj.metrics.Responses.WithLabelValues(ResultInjected, string(inject.ReasonInjected))); got < 4 {
		t.Errorf("injected responses = %v, want >= 4", got)
	}
}

func waitPod(t *testing.T, c *kube.Cluster, ns, selector string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	eventually.True(t, "a pod with "+selector, func() bool {
		pods, err := c.Client().CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
		if err != nil || len(pods.Items) == 0 {
			return false
		}
		pod = &pods.Items[0]
		return true
	})
	return pod
}

func TestMalformedReviews(t *testing.T) {
	c := kube.Shared(t)
	inj := startInjector(t, c, c.Namespace(t))
	cases := []struct{ name, body, want string }{
		{"empty", "", "empty body"},
		{"not json", "{{{", "invalid AdmissionReview"},
		{"wrong kind", `{"apiVersion":"v1","kind":"Pod"}`, "want admission.k8s.io/v1 AdmissionReview"},
		{"no request", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, "no request"},
		{"no uid", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}`, "without uid"},
		{"request not an object", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":7}`, "invalid AdmissionReview"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := inj.srv.Client().Post(inj.srv.URL, "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), tc.want) {
				t.Errorf("status %d body %q, want 400 mentioning %q", resp.StatusCode, body, tc.want)
			}
		})
	}
	t.Run("pod that does not decode is denied with a reason", func(t *testing.T) {
		body := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"x","object":{"spec":{"containers":"nope"}}}}`
		resp, err := inj.srv.Client().Post(inj.srv.URL, "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(out), `"allowed":false`) || !strings.Contains(string(out), "cannot decode the pod") || !strings.Contains(string(out), `"uid":"u1"`) {
			t.Errorf("status %d body %s, want a denial for u1 explaining the pod does not decode", resp.StatusCode, out)
		}
	})
	if got := testutil.ToFloat64(inj.metrics.BadRequests); got != float64(len(cases)) {
		t.Errorf("bad request count = %v, want %d", got, len(cases))
	}
}

// TestTrustAnchorRotation changes the trust-roots ConfigMap and checks that pods created
// afterwards carry the new anchors, while a broken update is ignored.
func TestTrustAnchorRotation(t *testing.T) {
	c := kube.Shared(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cp := c.Namespace(t)
	first := testValues(t)
	cmYAML := func(pem string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: linkerd-identity-trust-roots\ndata:\n  ca-bundle.crt: |\n    " +
			strings.ReplaceAll(strings.TrimSpace(pem), "\n", "\n    ") + "\n"
	}
	c.Apply(t, cp, cmYAML(first.IdentityTrustAnchorsPEM))
	store := NewValuesStore(*first)
	if err := store.WatchAnchors(ctx, c.Client(), cp, "linkerd-identity-trust-roots", "ca-bundle.crt", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	ns := c.Namespace(t, kube.WithAnnotations(map[string]string{inject.AnnotationInject: "enabled"}))
	inj := startInjectorWith(t, c, store.Current, ns)

	before := c.CreatePod(t, plainPod(ns, "before", nil)).Annotations[inject.AnnotationTrustRootSHA256]
	if before != first.TrustRootSHA256() {
		t.Fatalf("sha before rotation = %s, want %s", before, first.TrustRootSHA256())
	}
	// Any other PEM certificate serves as the new anchors.
	second := strings.TrimSpace(string(inj.srv.CABundle)) + "\n"
	c.Apply(t, cp, cmYAML(second))
	want := store.Current().TrustRootSHA256()
	eventually.True(t, "the new anchors", func() bool {
		want = store.Current().TrustRootSHA256()
		return want != before
	})
	pod := c.CreatePod(t, plainPod(ns, "after", nil))
	if got := pod.Annotations[inject.AnnotationTrustRootSHA256]; got != want {
		t.Errorf("sha after rotation = %s, want %s", got, want)
	}
	proxy := container(pod.Spec.InitContainers, inject.ProxyContainerName)
	if proxy == nil || env(proxy, "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS") != second {
		t.Error("injected proxy does not carry the rotated anchors")
	}
	if err := store.SetAnchors("not a certificate"); err == nil || store.Current().TrustRootSHA256() != want {
		t.Errorf("broken anchors accepted (err %v)", err)
	}
}

// TestSetGCPercent: the injector's collector target applies unless GOGC is set.
func TestSetGCPercent(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	t.Setenv("GOGC", "100")
	if SetGCPercent() {
		t.Error("SetGCPercent applied its target although GOGC is set")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC set: collector target %d, want 100 (untouched)", got)
	}
	os.Unsetenv("GOGC") // t.Setenv restores it at the end
	if !SetGCPercent() {
		t.Error("SetGCPercent did not apply its target without GOGC")
	}
	if got := debug.SetGCPercent(100); got != GCPercent {
		t.Errorf("collector target %d, want %d", got, GCPercent)
	}
}
