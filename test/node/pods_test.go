package node_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/test/kube"
	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestDeploymentPodsBecomeReadyServeAndAppearInEndpointSlices(t *testing.T) {
	tn := startNode(t)
	ctx := context.Background()
	labels := map[string]string{"app": "web"}
	web := app("web", "serve:0.0.0.0:8080")
	web.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/code/204", Port: intstr.FromString("http")}},
		PeriodSeconds: 1,
	}
	web.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: tn.ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector:                  map[string]string{"kubernetes.io/hostname": tn.name},
					TerminationGracePeriodSeconds: ptr(int64(5)),
					Containers:                    []corev1.Container{web, app("idle", "sleep")},
				},
			},
		},
	}
	if _, err := tn.client.AppsV1().Deployments(tn.ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: tn.ns},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt(8080)}}},
	}
	if _, err := tn.client.CoreV1().Services(tn.ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var ready []corev1.Pod
	tn.eventually(t, "2 ready pods", func() (bool, string) {
		list, err := tn.client.CoreV1().Pods(tn.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err.Error()
		}
		ready = nil
		var states []string
		for _, p := range list.Items {
			if podReady(&p) {
				ready = append(ready, p)
			}
			states = append(states, fmt.Sprintf("%s %s %v", p.Name, p.Status.Phase, p.Status.ContainerStatuses))
		}
		return len(ready) == 2, strings.Join(states, "\n")
	})
	var ips []string
	for _, p := range ready {
		st := p.Status
		if st.Phase != corev1.PodRunning || st.HostIP != "10.244.0.1" || len(st.PodIPs) != 2 || st.PodIP != st.PodIPs[0].IP {
			t.Errorf("pod %s: phase %s, hostIP %s, podIP %s, podIPs %v; want Running on 10.244.0.1 with an IPv4 and an IPv6 address", p.Name, st.Phase, st.HostIP, st.PodIP, st.PodIPs)
			continue
		}
		v4, v6 := netip.MustParseAddr(st.PodIPs[0].IP), netip.MustParseAddr(st.PodIPs[1].IP)
		if !v4.Is4() || !v6.Is6() {
			t.Errorf("pod %s: podIPs %v, want IPv4 then IPv6", p.Name, st.PodIPs)
		}
		readyCount := 0
		for _, cs := range st.ContainerStatuses {
			if cs.Ready && cs.State.Running != nil && cs.Started != nil && *cs.Started {
				readyCount++
			}
		}
		if readyCount != 2 {
			t.Errorf("pod %s: %d/2 containers ready and running: %+v", p.Name, readyCount, st.ContainerStatuses)
		}
		ips = append(ips, st.PodIP)
		body, err := tn.get(ctx, "http://"+st.PodIP+":8080/")
		if want := "hello from " + p.Name + "\n"; err != nil || body != want {
			t.Errorf("GET the pod %s from the node: %q, %v; want %q (the pod's hostname)", p.Name, body, err, want)
		}
	}
	if kubectl, err := exec.LookPath(filepath.Join(kube.BinDir(), "kubectl")); err == nil || func() bool { kubectl, err = exec.LookPath("kubectl"); return err == nil }() {
		out, err := exec.Command(kubectl, "--kubeconfig", tn.c.Kubeconfig(), "get", "pods", "-n", tn.ns, "-l", "app=web", "--no-headers").CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err != nil || len(lines) != 2 {
			t.Errorf("kubectl get pods: %v\n%s", err, out)
		}
		for _, l := range lines {
			if f := strings.Fields(l); len(f) < 3 || f[1] != "2/2" || f[2] != "Running" {
				t.Errorf("kubectl get pods shows %q, want READY 2/2 and STATUS Running", l)
			}
		}
	} else {
		t.Log("no kubectl: not checking what kubectl get pods shows")
	}
	slices.Sort(ips)
	tn.eventually(t, "the EndpointSlice to list both ready pods", func() (bool, string) {
		slices_, err := tn.client.DiscoveryV1().EndpointSlices(tn.ns).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=web"})
		if err != nil {
			return false, err.Error()
		}
		var got []string
		for _, s := range slices_.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready != nil && *e.Conditions.Ready && e.NodeName != nil && *e.NodeName == tn.name {
					got = append(got, e.Addresses...)
				}
			}
		}
		slices.Sort(got)
		return slices.Equal(got, ips), fmt.Sprintf("ready addresses %v, want %v", got, ips)
	})
	lease, err := tn.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, tn.name, metav1.GetOptions{})
	if err != nil || lease.Spec.RenewTime == nil || *lease.Spec.HolderIdentity != tn.name {
		t.Errorf("node lease: %+v, %v", lease, err)
	}
}

func TestContainersGetEnvVolumesAndARealToken(t *testing.T) {
	tn := startNode(t)
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"color": "blue", "size": "L"}}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec"}, Data: map[string][]byte{"password": []byte("hunter2")}}
	if _, err := tn.client.CoreV1().ConfigMaps(tn.ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := tn.client.CoreV1().Secrets(tn.ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	backend := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "back-end"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "grpc", Port: 9090}}},
	}
	backend, err := tn.client.CoreV1().Services(tn.ns).Create(ctx, backend, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const audience = "l5d-node-test"
	c := app("app", "id", "env",
		"cat:/var/run/l5dtest/cfg/color-file", "cat:/var/run/l5dtest/sec/password", "cat:/var/run/l5dtest/info/labels", "cat:/var/run/l5dtest/info/cpu",
		"cat:/var/run/l5dtest/tok/token", "cat:/etc/hosts", "cat:/etc/resolv.conf",
		"cat:/var/run/secrets/kubernetes.io/serviceaccount/namespace",
		"write:/var/run/l5dtest/cfg/new:x", "write:/var/run/l5dtest/scratch/new:x", "cat:/var/run/l5dtest/scratch/new", "sleep")
	c.Env = []corev1.EnvVar{
		{Name: "GREETING", Value: "hi"},
		{Name: "COMBINED", Value: "$(GREETING)-$(POD_NAME)-$(MISSING)-$$(GREETING)"},
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "LATE", Value: "$(POD_NAME)"},
		{Name: "POD_NS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		{Name: "POD_UID", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.uid"}}},
		{Name: "TIER", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['tier']"}}},
		{Name: "NOTE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['note']"}}},
		{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
		{Name: "SA", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.serviceAccountName"}}},
		{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		{Name: "POD_IPS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIPs"}}},
		{Name: "HOST_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.hostIP"}}},
		{Name: "MEM_MI", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
		{Name: "CPU_REQ_M", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "requests.cpu", Divisor: resource.MustParse("1m")}}},
		{Name: "COLOR", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "color"}}},
		{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "password"}}},
		{Name: "ABSENT", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "x", Optional: ptr(true)}}},
	}
	c.EnvFrom = []corev1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}
	c.Resources = corev1.ResourceRequirements{
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi"), corev1.ResourceCPU: resource.MustParse("2")},
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
	}
	c.VolumeMounts = []corev1.VolumeMount{
		{Name: "cfg", MountPath: "/var/run/l5dtest/cfg", ReadOnly: true},
		{Name: "sec", MountPath: "/var/run/l5dtest/sec", ReadOnly: true},
		{Name: "info", MountPath: "/var/run/l5dtest/info"},
		{Name: "tok", MountPath: "/var/run/l5dtest/tok", ReadOnly: true},
		{Name: "scratch", MountPath: "/var/run/l5dtest/scratch"},
	}
	c.SecurityContext = &corev1.SecurityContext{RunAsUser: ptr(int64(2102)), RunAsGroup: ptr(int64(2103))}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "envy", Labels: map[string]string{"tier": "gold"}, Annotations: map[string]string{"note": "n1"}},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{FSGroup: ptr(int64(3000))},
			Containers:      []corev1.Container{c},
			Volumes: []corev1.Volume{
				{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"},
					Items:                []corev1.KeyToPath{{Key: "color", Path: "color-file"}},
				}}},
				{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec", DefaultMode: ptr(int32(0o440))}}},
				{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
					{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
					{Path: "cpu", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "app", Resource: "limits.cpu"}},
				}}}},
				{Name: "tok", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{
					ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: audience, ExpirationSeconds: ptr(int64(600)), Path: "token"},
				}}}}},
				{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			},
		},
	}
	pod = tn.createPod(t, pod)
	got := tn.waitLog(t, "envy", "app", "cat /var/run/l5dtest/scratch/new x\\n")
	running := tn.waitReady(t, "envy")
	ip := running.Status.PodIP
	for _, want := range []string{
		"id uid=2102 gid=2103 groups=3000 hostname=envy",
		"env GREETING=hi",
		"env COMBINED=hi-$(POD_NAME)-$(MISSING)-$(GREETING)", // POD_NAME is defined later
		"env LATE=envy",
		"env POD_NAME=envy",
		"env POD_NS=" + tn.ns,
		"env POD_UID=" + string(pod.UID),
		"env TIER=gold",
		"env NOTE=n1",
		"env NODE=" + tn.name,
		"env SA=default",
		"env POD_IP=" + ip,
		"env POD_IPS=" + ip + "," + running.Status.PodIPs[1].IP,
		"env HOST_IP=10.244.0.1",
		"env MEM_MI=64",
		"env CPU_REQ_M=250",
		"env COLOR=blue",
		"env PASSWORD=hunter2",
		"env CFG_color=blue",
		"env CFG_size=L",
		"env BACK_END_SERVICE_HOST=" + backend.Spec.ClusterIP,
		"env BACK_END_SERVICE_PORT=9090",
		"env BACK_END_SERVICE_PORT_GRPC=9090",
		"env BACK_END_PORT=tcp://" + backend.Spec.ClusterIP + ":9090",
		"env BACK_END_PORT_9090_TCP_ADDR=" + backend.Spec.ClusterIP,
		"env KUBERNETES_SERVICE_PORT=443",
		"cat /var/run/l5dtest/cfg/color-file blue",
		"cat /var/run/l5dtest/sec/password hunter2",
		`cat /var/run/l5dtest/info/labels tier="gold"`,
		"cat /var/run/l5dtest/info/cpu 2",
		"cat /var/run/secrets/kubernetes.io/serviceaccount/namespace " + tn.ns,
		"cat /var/run/l5dtest/scratch/new x\\n",
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("the container's output lacks %q", want)
		}
	}
	if strings.Contains(got, "env ABSENT=") {
		t.Error("an optional reference to a missing ConfigMap set a variable")
	}
	if !strings.Contains(got, "env KUBERNETES_SERVICE_HOST=") {
		t.Error("KUBERNETES_SERVICE_HOST is not set")
	}
	if !strings.Contains(got, `cat /etc/hosts 127.0.0.1 localhost\n`+hostsLine) {
		t.Errorf("/etc/hosts is not the node's hosts file:\n%s", got)
	}
	// dnsPolicy ClusterFirst (the default): the kubelet's resolv.conf for the namespace.
	wantResolv := `cat /etc/resolv.conf nameserver 10.96.0.10\nsearch ` + tn.ns + `.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n` + "\n"
	if !strings.Contains(got, wantResolv) {
		t.Errorf("/etc/resolv.conf is not the ClusterFirst file %q:\n%s", wantResolv, got)
	}
	if !strings.Contains(tn.log("envy", "app"), "read-only file system") {
		t.Errorf("writing into a readOnly mount did not fail with EROFS:\n%s", got)
	}

	var token string
	for _, l := range strings.Split(got, "\n") {
		if v, ok := strings.CutPrefix(l, "cat /var/run/l5dtest/tok/token "); ok {
			token = v
		}
	}
	if token == "" {
		t.Fatalf("no token in the container's output:\n%s", got)
	}
	review := func(aud string) *authnv1.TokenReviewStatus {
		r, err := tn.client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
			Spec: authnv1.TokenReviewSpec{Token: token, Audiences: []string{aud}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return &r.Status
	}
	st := review(audience)
	if !st.Authenticated || st.User.Username != "system:serviceaccount:"+tn.ns+":default" || !slices.Equal(st.User.Extra["authentication.kubernetes.io/pod-name"], authnv1.ExtraValue{"envy"}) {
		t.Errorf("TokenReview for audience %s: %+v, want the default service account, bound to pod envy", audience, st)
	}
	if st := review(kube.ServiceAccountIssuer); st.Authenticated {
		t.Errorf("the token is accepted for the API server's audience too: %+v", st)
	}
}

func TestInitContainersRunInOrderAndAFailingOneBlocksTheApp(t *testing.T) {
	tn := startNode(t)
	work := corev1.VolumeMount{Name: "work", MountPath: "/var/run/l5dtest/work"}
	withWork := func(c corev1.Container) corev1.Container {
		c.VolumeMounts = []corev1.VolumeMount{work}
		return c
	}
	first := withWork(app("main", "sleep"))
	first.Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
		Command: []string{"/usr/lib/test/testapp", "append:/var/run/l5dtest/work/order:poststart-of-main"},
	}}}
	tn.createPod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "ordered"},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{
				withWork(app("one", "append:/var/run/l5dtest/work/order:one")),
				withWork(app("two", "append:/var/run/l5dtest/work/order:two")),
			},
			Containers: []corev1.Container{first, withWork(app("second", "cat:/var/run/l5dtest/work/order", "sleep"))},
			Volumes:    []corev1.Volume{{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		},
	})
	tn.waitLog(t, "ordered", "second", `cat /var/run/l5dtest/work/order one\ntwo\npoststart-of-main\n`)
	p := tn.waitReady(t, "ordered")
	for _, cs := range p.Status.InitContainerStatuses {
		if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 || cs.State.Terminated.Reason != "Completed" {
			t.Errorf("init container %s: state %+v, want terminated Completed", cs.Name, cs.State)
		}
	}

	tn.createPod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "blocked"},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{app("fails", "exit:3")},
			Containers:     []corev1.Container{app("main", "id", "sleep")},
		},
	})
	tn.eventually(t, "the failing init container to be restarted", func() (bool, string) {
		p := tn.pod(t, "blocked")
		if len(p.Status.InitContainerStatuses) != 1 {
			return false, fmt.Sprint(p.Status)
		}
		ic := p.Status.InitContainerStatuses[0]
		last := ic.LastTerminationState.Terminated
		return ic.RestartCount >= 1 && last != nil && last.ExitCode == 3, fmt.Sprintf("%+v", ic)
	})
	p = tn.pod(t, "blocked")
	if p.Status.Phase != corev1.PodPending || podReady(p) {
		t.Errorf("pod with a failing init container: phase %s ready %v, want Pending and not ready", p.Status.Phase, podReady(p))
	}
	if cs := p.Status.ContainerStatuses; len(cs) != 1 || cs[0].State.Waiting == nil || cs[0].State.Waiting.Reason != "PodInitializing" {
		t.Errorf("app container status %+v, want waiting PodInitializing", cs)
	}
	if out := tn.log("blocked", "main"); out != "" {
		t.Errorf("the app ran although its init container fails: %q", out)
	}
}

func TestNativeSidecarRunsBesideTheJobAndStopsWhenItCompletes(t *testing.T) {
	tn := startNode(t)
	ctx := context.Background()
	shared := corev1.VolumeMount{Name: "shared", MountPath: "/var/run/l5dtest/shared"}
	sidecar := app("sidecar", "write:/var/run/l5dtest/shared/sidecar:up", "serve:0.0.0.0:4191")
	sidecar.RestartPolicy = ptr(corev1.ContainerRestartPolicyAlways)
	sidecar.VolumeMounts = []corev1.VolumeMount{shared}
	sidecar.StartupProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt(4191)}},
		PeriodSeconds: 1, FailureThreshold: 30,
	}
	main := app("main", "cat:/var/run/l5dtest/shared/sidecar", "exit:0")
	main.VolumeMounts = []corev1.VolumeMount{shared}
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "once", Namespace: tn.ns},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr(int32(0)),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy:                 corev1.RestartPolicyNever,
				NodeSelector:                  map[string]string{"kubernetes.io/hostname": tn.name},
				TerminationGracePeriodSeconds: ptr(int64(5)),
				InitContainers:                []corev1.Container{sidecar},
				Containers:                    []corev1.Container{main},
				Volumes:                       []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			}},
		},
	}
	if _, err := tn.client.BatchV1().Jobs(tn.ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tn.eventually(t, "the job to complete", func() (bool, string) {
		j, err := tn.client.BatchV1().Jobs(tn.ns).Get(ctx, "once", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, c := range j.Status.Conditions {
			if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", j.Status)
	})
	pods, err := tn.client.CoreV1().Pods(tn.ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=once"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("job pods: %v, %v", pods, err)
	}
	p := pods.Items[0]
	if out := tn.log(p.Name, "main"); out != "cat /var/run/l5dtest/shared/sidecar up\\n\n" {
		t.Errorf("main printed %q, want the file the sidecar wrote before it counted as started", out)
	}
	tn.waitLog(t, p.Name, "sidecar", "terminated")
	tn.eventually(t, "the pod to be Succeeded with its sidecar stopped", func() (bool, string) {
		p := tn.pod(t, p.Name)
		sc := p.Status.InitContainerStatuses
		return p.Status.Phase == corev1.PodSucceeded && len(sc) == 1 && sc[0].State.Terminated != nil, fmt.Sprintf("%s %+v", p.Status.Phase, sc)
	})
}

func TestProbesDriveReadinessAndRestarts(t *testing.T) {
	tn := startNode(t)
	unready := app("app", "serve:0.0.0.0:8080")
	unready.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/code/500", Port: intstr.FromInt(8080)}},
		PeriodSeconds: 1,
	}
	tn.createPod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "unready"}, Spec: corev1.PodSpec{Containers: []corev1.Container{unready}}})
	dying := app("app", "serve:0.0.0.0:8080")
	dying.LivenessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"testapp", "exit:1"}}},
		PeriodSeconds: 1, FailureThreshold: 2, TerminationGracePeriodSeconds: ptr(int64(1)),
	}
	tn.createPod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "dying"}, Spec: corev1.PodSpec{Containers: []corev1.Container{dying}}})

	tn.eventually(t, "the liveness probe to restart the container", func() (bool, string) {
		p := tn.pod(t, "dying")
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].RestartCount >= 1, fmt.Sprintf("%+v", cs)
	})
	if out := tn.log("dying", "app"); !strings.Contains(out, "terminated\n") {
		t.Errorf("the container killed by its liveness probe got no SIGTERM first:\n%s", out)
	}
	// The readiness probe has failed several times by now (every second since the start).
	p := tn.pod(t, "unready")
	cs := p.Status.ContainerStatuses
	if p.Status.Phase != corev1.PodRunning || podReady(p) || len(cs) != 1 || cs[0].Ready || cs[0].State.Running == nil {
		t.Errorf("pod whose readiness probe fails: phase %s, ready %v, containers %+v; want Running, unready", p.Status.Phase, podReady(p), cs)
	}
}

func TestDeletingAPodStopsItsProcessesAndFreesItsNamespace(t *testing.T) {
	tn := startNode(t)
	ctx := context.Background()
	before := len(tn.net.Pods())
	server := app("app", "serve:0.0.0.0:8080")
	server.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt(8080)}},
		PeriodSeconds: 1,
	}
	tn.createPod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "doomed"},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr(int64(20)),
			Containers:                    []corev1.Container{server},
		},
	})
	p := tn.waitReady(t, "doomed")
	if got := len(tn.net.Pods()); got != before+1 {
		t.Fatalf("the network has %d pods, want %d", got, before+1)
	}
	if _, err := tn.get(ctx, "http://"+p.Status.PodIP+":8080/"); err != nil {
		t.Fatalf("the pod does not serve: %v", err)
	}
	start := time.Now()
	if err := tn.client.CoreV1().Pods(tn.ns).Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	tn.eventually(t, "the pod object to be gone", func() (bool, string) {
		_, err := tn.client.CoreV1().Pods(tn.ns).Get(ctx, "doomed", metav1.GetOptions{})
		return isNotFound(err), fmt.Sprint(err)
	})
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("deletion took %s: the process did not end on SIGTERM", d)
	}
	tn.waitLog(t, "doomed", "app", "terminated")
	if got := len(tn.net.Pods()); got != before {
		t.Errorf("the network has %d pods after the deletion, want %d", got, before)
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := tn.get(cctx, "http://"+p.Status.PodIP+":8080/"); err == nil {
		t.Error("the deleted pod's address still answers")
	}
	if _, err := os.Stat(tn.runDir + "/pods/" + tn.ns + "_doomed/volumes"); !os.IsNotExist(err) {
		t.Errorf("the pod's volumes are still on disk: %v", err)
	}
}

// TestImageWithoutProgramReportsErrImagePull: an image no local program stands for (the
// seed walkthrough's nginx:latest) leaves the container waiting with ErrImagePull, then
// ImagePullBackOff while retried, both naming the image and why, never CrashLoopBackOff.
func TestImageWithoutProgramReportsErrImagePull(t *testing.T) {
	tn := startNode(t)
	ctr := app("web", "serve:0.0.0.0:8080")
	ctr.Image = "nginx:latest"
	tn.createPod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "nginx"}, Spec: corev1.PodSpec{Containers: []corev1.Container{ctr}}})
	seen := map[string]bool{}
	tn.eventually(t, "ErrImagePull, then ImagePullBackOff, naming the image", func() (bool, string) {
		cs := tn.pod(t, "nginx").Status.ContainerStatuses
		if len(cs) != 1 || cs[0].State.Waiting == nil {
			return false, fmt.Sprintf("%+v", cs)
		}
		w := cs[0].State.Waiting
		switch {
		case w.Reason == "CrashLoopBackOff":
			t.Fatalf("a container whose image has no program is in CrashLoopBackOff: %+v", w)
		case (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff") && strings.Contains(w.Message, `"nginx:latest"`) && strings.Contains(w.Message, "no local binary"):
			seen[w.Reason] = true
		}
		return seen["ImagePullBackOff"], fmt.Sprintf("%+v", w)
	})
}
