package inject

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FuzzAnnotations injects a pod carrying arbitrary values of the config annotations: the
// result is either a refusal naming an annotation (pod untouched) or a pod whose proxy
// environment the l5d proxy accepts and whose linkerd-init lists proxy-init parses.
func FuzzAnnotations(f *testing.F) {
	f.Add("80,8000-9000", "443", "10.0.0.0/8", "25,db", "100m", "1", "64Mi", "deny", "100ms", "false")
	f.Add("http", "", "x", "", "-1", "lots", "1Zi", "open", "soon", "maybe")
	f.Add("0", "65536", "::/0", "1-", "0.5", "1e3", "1Mi", "all-authenticated", "1h", "true")
	keys := []string{AnnotationSkipInboundPorts, AnnotationSkipOutboundPorts, AnnotationSkipSubnets, AnnotationOpaquePorts,
		AnnotationProxyCPURequest, AnnotationProxyCPULimit, AnnotationProxyMemoryLimit, AnnotationDefaultInboundPolicy,
		AnnotationOutboundConnectTimeout, AnnotationNativeSidecarBeta}
	v := testValues(f)
	f.Fuzz(func(t *testing.T, skipIn, skipOut, subnetList, opaque, cpuReq, cpuLim, memLim, policy, timeout, native string) {
		ann := map[string]string{AnnotationInject: "enabled"}
		for i, val := range []string{skipIn, skipOut, subnetList, opaque, cpuReq, cpuLim, memLim, policy, timeout, native} {
			if val != "" {
				ann[keys[i]] = val
			}
		}
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "n", Annotations: ann},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app",
				Ports: []corev1.ContainerPort{{Name: "db", ContainerPort: 5432}}}}},
		}
		out, _, err := v.InjectPod(Namespace{Name: "n"}, Owner{}, pod)
		if err != nil {
			var ae *AnnotationError
			if !errors.As(err, &ae) && len(err.Error()) == 0 {
				t.Fatalf("refusal without a reason: %v", err)
			}
			if HasProxy(&pod.Spec) || out != nil {
				t.Fatal("refused pod was changed")
			}
			return
		}
		checkProxyAcceptsEnv(t, &out.Spec)
		checkInitArgsParse(t, &out.Spec)
	})
}
