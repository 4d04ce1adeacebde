package node

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// envAgent is an agent whose API objects come from a fake clientset: containerEnv is pure
// translation from objects to variables.
func envAgent(t *testing.T, objs ...*corev1.Service) *agent {
	t.Helper()
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, o := range objs {
		if err := idx.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	client := fake.NewClientset(
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "ns"}, Data: map[string]string{"a": "1", "b": "2"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec", Namespace: "ns"}, Data: map[string][]byte{"k": []byte("s3cret")}},
	)
	return &agent{cfg: Config{Client: client}, services: corelisters.NewServiceLister(idx)}
}

func svc(ns, name, ip string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: corev1.ServiceSpec{ClusterIP: ip, Ports: ports}}
}

func TestContainerEnvLikeTheKubelet(t *testing.T) {
	a := envAgent(t,
		svc("default", "kubernetes", "10.96.0.1", corev1.ServicePort{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP}),
		svc("default", "elsewhere", "10.96.0.9", corev1.ServicePort{Port: 1}),
		svc("ns", "back-end", "10.96.0.5", corev1.ServicePort{Name: "grpc-api", Port: 9090, Protocol: corev1.ProtocolTCP}, corev1.ServicePort{Name: "m", Port: 9091, Protocol: corev1.ProtocolUDP}),
		svc("ns", "headless", "None", corev1.ServicePort{Port: 80}),
	)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}}
	c := &corev1.Container{
		Name:    "c",
		EnvFrom: []corev1.EnvFromSource{{Prefix: "CM_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
		Env: []corev1.EnvVar{
			{Name: "CM_a", Value: "overridden"},
			{Name: "ADDR", Value: "$(BACK_END_SERVICE_HOST):$(BACK_END_SERVICE_PORT_GRPC_API)"},
			{Name: "S", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "k"}}},
			{Name: "GONE", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "nope", Optional: ptrTo(true)}}},
		},
	}
	env, err := a.containerEnv(context.Background(), pod, c)
	if err != nil {
		t.Fatal(err)
	}
	got := "\n" + strings.Join(env, "\n") + "\n"
	for _, want := range []string{
		"CM_a=overridden", "CM_b=2", "ADDR=10.96.0.5:9090", "S=s3cret",
		"BACK_END_SERVICE_HOST=10.96.0.5", "BACK_END_SERVICE_PORT=9090", "BACK_END_SERVICE_PORT_GRPC_API=9090",
		"BACK_END_SERVICE_PORT_M=9091", "BACK_END_PORT=tcp://10.96.0.5:9090",
		"BACK_END_PORT_9091_UDP=udp://10.96.0.5:9091", "BACK_END_PORT_9091_UDP_PROTO=udp",
		"BACK_END_PORT_9091_UDP_PORT=9091", "BACK_END_PORT_9091_UDP_ADDR=10.96.0.5",
		"KUBERNETES_SERVICE_HOST=10.96.0.1", "KUBERNETES_SERVICE_PORT=443", "KUBERNETES_SERVICE_PORT_HTTPS=443",
	} {
		if !strings.Contains(got, "\n"+want+"\n") {
			t.Errorf("env lacks %s:%s", want, got)
		}
	}
	for _, absent := range []string{"GONE=", "HEADLESS_", "ELSEWHERE_"} {
		if strings.Contains(got, "\n"+absent) {
			t.Errorf("env has %s...:%s", absent, got)
		}
	}
	if strings.Index(got, "CM_b=") > strings.Index(got, "ADDR=") || strings.Index(got, "ADDR=") > strings.Index(got, "BACK_END_SERVICE_HOST=") {
		t.Errorf("want envFrom, then env, then service variables:%s", got)
	}

	pod.Spec.EnableServiceLinks = ptrTo(false)
	env, err = a.containerEnv(context.Background(), pod, &corev1.Container{Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	got = strings.Join(env, "\n")
	if strings.Contains(got, "BACK_END") || !strings.Contains(got, "KUBERNETES_SERVICE_HOST=10.96.0.1") {
		t.Errorf("with enableServiceLinks false, want only the kubernetes Service's variables, got:\n%s", got)
	}

	_, err = a.containerEnv(context.Background(), pod, &corev1.Container{Name: "c", Env: []corev1.EnvVar{
		{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}, Key: "k"}}},
	}})
	if err == nil || !strings.Contains(err.Error(), "env X") || !strings.Contains(err.Error(), "ns/missing") {
		t.Errorf("a required reference to a missing ConfigMap: error %v, want one naming the variable and the ConfigMap", err)
	}
}

func TestDownwardAPIValues(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1", Labels: map[string]string{"b": "2", "a": `q"uote`}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}},
	}
	for path, want := range map[string]string{
		"metadata.labels":      `a="q\"uote"` + "\nb=\"2\"",
		"metadata.labels['b']": "2",
		"metadata.uid":         "u1",
	} {
		if got, err := fieldValue(pod, path); err != nil || got != want {
			t.Errorf("fieldValue(%s) = %q, %v; want %q", path, got, err, want)
		}
	}
	if _, err := fieldValue(pod, "spec.nope"); err == nil || !strings.Contains(err.Error(), "spec.nope") {
		t.Errorf("an unknown field path: error %v, want one naming it", err)
	}
	got, err := resourceValue(pod, "c", &corev1.ResourceFieldSelector{Resource: "limits.cpu"}, Capacity)
	if err != nil || got != "16" {
		t.Errorf("limits.cpu without a limit = %q, %v; want the node's 16", got, err)
	}
	if _, err := resourceValue(pod, "c", &corev1.ResourceFieldSelector{Resource: "bogus"}, Capacity); err == nil {
		t.Error("a bogus resource worked")
	}
}

func ptrTo[T any](v T) *T { return &v }
