package e2e

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestJobWithNativeSidecarCompletes runs a meshed Job whose pod sends 20 requests to a
// meshed front end and exits 0. The proxy is injected as a native sidecar (an init
// container with restartPolicy Always), so it does not keep the pod running: the Job
// completes, and the front end's proxy counted the Job's 20 requests over mTLS with the
// Job's identity.
func TestJobWithNativeSidecarCompletes(t *testing.T) {
	s := need(t)
	const ns, job, requests = "e2e-job", "job-client", 20
	s.Namespace(t, ns, map[string]string{"linkerd.io/inject": "enabled"})
	s.Apply(t, demoWorkload{NS: ns, Name: "web", Image: "demo-web"}.YAML())
	web := s.podOf(t, ns, "web")

	s.Apply(t, meshedJob{NS: ns, Name: job, Container: "traffic", Image: "ghcr.io/l5d-go/demo-traffic:v1",
		Args: []string{"-count", strconv.Itoa(requests)}, Env: map[string]string{
			"TARGET": "http://web." + ns + ".svc.cluster.local:8080", "REQUEST_PATH": "/ready", "RATE": "10"}}.YAML())

	j := s.waitJobComplete(t, ns, job)
	if j.Status.Succeeded != 1 {
		t.Errorf("job %s: %d pods succeeded, want 1", job, j.Status.Succeeded)
	}

	pods, err := s.Cluster.Client().CoreV1().Pods(ns).List(s.Ctx, metav1.ListOptions{LabelSelector: "job-name=" + job})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 {
		t.Fatalf("job %s has %d pods, want 1", job, len(pods.Items))
	}
	p := pods.Items[0]
	if !hasNativeProxy(&p) {
		t.Errorf("job pod %s: linkerd-proxy is not an init container with restartPolicy Always: init %v, containers %v",
			p.Name, containerNames(p.Spec.InitContainers), containerNames(p.Spec.Containers))
	}
	if p.Status.Phase != corev1.PodSucceeded {
		t.Errorf("job pod %s is %s, want Succeeded", p.Name, p.Status.Phase)
	}

	id := identity(ns, job)
	m, err := s.ProxyMetrics(ns, web)
	if err != nil {
		t.Fatal(err)
	}
	if n := metricSum(m, "request_total", `direction="inbound"`, `tls="true"`, `client_id="`+id+`"`); n != requests {
		t.Errorf("web's proxy counts %v inbound mTLS requests from %s, want %d:\n%s", n, id, requests, grepLines(m, "request_total"))
	}
}

func containerNames(cs []corev1.Container) []string {
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	return names
}

// waitJobComplete waits for Job job to complete and returns it; it fails t at once when
// the Job fails.
func (s *Suite) waitJobComplete(t *testing.T, ns, job string) *batchv1.Job {
	t.Helper()
	var j *batchv1.Job
	s.Eventually(t, 4*time.Minute, "job "+job+" completes", func() string {
		var err error
		if j, err = s.Cluster.Client().BatchV1().Jobs(ns).Get(s.Ctx, job, metav1.GetOptions{}); err != nil {
			return err.Error()
		}
		for _, c := range j.Status.Conditions {
			if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
				t.Fatalf("job %s failed: %s: %s", job, c.Reason, c.Message)
			}
			if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
				return ""
			}
		}
		return fmt.Sprintf("active %d, succeeded %d, failed %d", j.Status.Active, j.Status.Succeeded, j.Status.Failed)
	})
	return j
}

// meshedJob is a Job of one pod (never restarted) under a ServiceAccount of the Job's
// name, its proxy injected as a native sidecar so that the Job completes.
type meshedJob struct {
	NS, Name string
	// Container is the name of the one container, Image its image reference.
	Container, Image string
	Args             []string
	Env              map[string]string
	// BackoffLimit is the number of pods that may fail before the Job does.
	BackoffLimit int
}

// YAML renders the ServiceAccount and the Job.
func (j meshedJob) YAML() string {
	return fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: %[2]s, namespace: %[1]s}
---
apiVersion: batch/v1
kind: Job
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  backoffLimit: %[3]d
  template:
    metadata:
      annotations:
        config.beta.linkerd.io/proxy-enable-native-sidecar: "true"
    spec:
      serviceAccountName: %[2]s
      restartPolicy: Never
      containers:
      - name: %[4]s
        image: %[5]s
%[6]s%[7]s`, j.NS, j.Name, j.BackoffLimit, j.Container, j.Image,
		containerArgs(j.Args, "        "), containerEnvAndPorts(j.Env, nil, "        "))
}
