package multicluster

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/l5d-go/l5d/test/node"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// ns is the namespace of the tests' workloads, in both clusters.
	ns = "mc-demo"
	// gatewayID is east's gateway's identity (the one trust domain of both clusters).
	gatewayID = "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local"
)

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// identity is the mesh identity of ServiceAccount sa of namespace ns.
func identity(ns, sa string) string {
	return sa + "." + ns + ".serviceaccount.identity.linkerd.cluster.local"
}

// TestTwoClusters runs the multicluster walkthrough on the linked pair, in order: traffic
// through east's gateway over mTLS, check and gateways, a traffic split between a local
// and a mirrored Service, east's gateway going down, pod-to-pod mirroring with the
// gateway at zero replicas, and unexporting.
func TestTwoClusters(t *testing.T) {
	s := need(t)
	s.Namespace(t, "east", ns)
	s.Namespace(t, "west", ns)
	// catalog in east, exported through the gateway; ratings in east, exported pod to
	// pod; catalog in west too, for the split.
	s.Apply(t, "east", echoWorkload("catalog", "east", "mirror.linkerd.io/exported: \"true\""))
	s.Apply(t, "east", echoWorkload("ratings", "east", "mirror.linkerd.io/exported: remote-discovery"))
	s.Apply(t, "west", echoWorkload("catalog", "west", ""))
	eastCatalog := s.podOf(t, "east", "catalog")
	s.podOf(t, "east", "ratings")
	s.podOf(t, "west", "catalog")
	s.waitMirror(t, "catalog-east", true)

	t.Run("through the gateway over mTLS", func(t *testing.T) {
		res := s.runClient(t, "gw-client", "http://catalog-east."+ns+".svc.cluster.local:8080/", 10)
		if n := res.count(200, "east"); n != 10 {
			t.Fatalf("%d of 10 requests to catalog-east got 200 from east's catalog:\n%s", n, res.raw)
		}
		// East's gateway authenticated west's client by its identity (its inbound
		// connections carry it; its policy, mesh TLS from any identity of the trust
		// anchor, allowed the requests); east's catalog saw the gateway's, over mTLS too.
		gw := s.podOf(t, "east", "linkerd-gateway", "linkerd-multicluster")
		client := identity(ns, "gw-client")
		m, err := s.proxyMetrics("east", "linkerd-multicluster", gw)
		if err != nil {
			t.Fatal(err)
		}
		if n := sum(m, "tcp_open_total", map[string]string{"direction": "inbound", "tls": "true", "client_id": client}); n < 1 {
			t.Errorf("east's gateway counts %v inbound mTLS connections from %s, want at least 1", n, client)
		}
		if n := sum(m, "inbound_http_authz_allow_total", map[string]string{"authz_kind": "authorizationpolicy", "authz_name": "linkerd-gateway"}); n < 10 {
			t.Errorf("east's gateway's policy allowed %v requests, want 10", n)
		}
		m, err = s.proxyMetrics("east", ns, eastCatalog)
		if err != nil {
			t.Fatal(err)
		}
		if n := sum(m, "request_total", map[string]string{"direction": "inbound", "tls": "true", "client_id": gatewayID}); n < 10 {
			t.Errorf("east's catalog counts %v inbound mTLS requests from the gateway (%s), want 10", n, gatewayID)
		}
	})

	t.Run("check and gateways", func(t *testing.T) {
		// check reads the Link's credentials and reaches east's API server at the
		// Link's address: from west's node namespace.
		if out, err := s.RunOnNode(s.Linkerd(), "--context=west", "multicluster", "check"); err != nil {
			t.Errorf("multicluster check: %v", err)
		} else {
			t.Logf("multicluster check:\n%s", out)
		}
		s.Eventually(t, 2*time.Minute, "gateways: east alive with 1 service mirrored through it", func() string {
			out, err := s.Run(nil, s.Linkerd(), "--context=west", "multicluster", "gateways")
			if err != nil {
				return err.Error()
			}
			row := gatewayRow(out, "east")
			// CLUSTER ALIVE NUM_SVC LATENCY: catalog through the gateway (ratings, pod to
			// pod, does not use it).
			if len(row) != 4 || row[1] != "True" || row[2] != "1" || !strings.HasSuffix(row[3], "ms") && !strings.HasSuffix(row[3], "s") {
				return fmt.Sprintf("gateways printed:\n%s", out)
			}
			return ""
		})
	})

	t.Run("traffic split between local and mirrored", func(t *testing.T) {
		s.Apply(t, "west", fmt.Sprintf(`apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {name: catalog-split, namespace: %s}
spec:
  parentRefs:
  - {group: core, kind: Service, name: catalog, port: 8080}
  rules:
  - backendRefs:
    - {name: catalog, port: 8080, weight: 50}
    - {name: catalog-east, port: 8080, weight: 50}
`, ns))
		const n = 100
		var res clientResult
		// The client's proxy may start before the route reaches it: a run that went to
		// west only is repeated.
		for attempt := 1; ; attempt++ {
			res = s.runClient(t, fmt.Sprintf("split-%d", attempt), "http://catalog."+ns+".svc.cluster.local:8080/", n)
			if res.count(200, "east") > 0 || attempt == 3 {
				break
			}
		}
		east, west := res.count(200, "east"), res.count(200, "west")
		t.Logf("split: %d to east, %d to west", east, west)
		// 100 fair coin flips land within 25..75 but for odds of about 1 in 3.5 million.
		if east+west != n || east < 25 || west < 25 {
			t.Errorf("a 50/50 split sent %d requests to east and %d to west, of %d:\n%s", east, west, n, res.raw)
		}
		s.MustRun(t, nil, s.Kubectl(), "--context=west", "-n", ns, "delete", "httproute.policy.linkerd.io", "catalog-split")
	})

	t.Run("gateway down", func(t *testing.T) {
		s.MustRun(t, nil, s.Kubectl(), "--context=east", "-n", "linkerd-multicluster", "scale", "deploy/linkerd-gateway", "--replicas=0")
		s.Eventually(t, 2*time.Minute, "gateways: east down", func() string {
			out, err := s.Run(nil, s.Linkerd(), "--context=west", "multicluster", "gateways")
			if err != nil {
				return err.Error()
			}
			if row := gatewayRow(out, "east"); len(row) != 4 || row[1] != "False" {
				return fmt.Sprintf("gateways printed:\n%s", out)
			}
			return ""
		})
		start := time.Now()
		res := s.runClient(t, "down-client", "http://catalog-east."+ns+".svc.cluster.local:8080/", 3)
		t.Logf("3 requests to catalog-east with its gateway down: %v (job included)", time.Since(start).Round(time.Millisecond))
		// Each request got an answer from the client's own proxy (no request is left
		// hanging: the client would give up after 30s and fail the Job), an error status
		// naming why: the first after the proxy's failfast timeout, the next at once.
		for i := range 3 {
			st, perr := res.status[i], res.proxyError[i]
			if st < 500 || perr == "" {
				t.Errorf("request %d to catalog-east with east's gateway down: status %d, l5d-proxy-error %q; want a 5xx with the header:\n%s", i, st, perr, res.raw)
			}
		}
		t.Logf("l5d-proxy-error: %q", res.proxyError[0])
	})

	t.Run("pod to pod with the gateway at zero", func(t *testing.T) {
		// The gateway is still scaled to zero (the subtest above).
		gws, err := s.Client("east").AppsV1().Deployments("linkerd-multicluster").Get(s.Ctx, "linkerd-gateway", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if gws.Spec.Replicas == nil || *gws.Spec.Replicas != 0 {
			s.MustRun(t, nil, s.Kubectl(), "--context=east", "-n", "linkerd-multicluster", "scale", "deploy/linkerd-gateway", "--replicas=0")
		}
		mirror := s.waitMirror(t, "ratings-east", true)
		if mirror.Labels["mirror.linkerd.io/remote-discovery"] != "east" {
			t.Errorf("ratings-east is labelled %v, want mirror.linkerd.io/remote-discovery=east", mirror.Labels)
		}
		res := s.runClient(t, "p2p-client", "http://ratings-east."+ns+".svc.cluster.local:8080/", 10)
		if n := res.count(200, "east"); n != 10 {
			t.Fatalf("%d of 10 requests to ratings-east got 200 from east's ratings:\n%s", n, res.raw)
		}
		// No gateway in between: east's ratings saw west's client's own identity.
		ratings := s.podOf(t, "east", "ratings")
		m, err := s.proxyMetrics("east", ns, ratings)
		if err != nil {
			t.Fatal(err)
		}
		client := identity(ns, "p2p-client")
		if n := sum(m, "request_total", map[string]string{"direction": "inbound", "tls": "true", "client_id": client}); n < 10 {
			t.Errorf("east's ratings counts %v inbound mTLS requests from %s, want 10", n, client)
		}
	})

	t.Run("unexport removes the mirror", func(t *testing.T) {
		s.MustRun(t, nil, s.Kubectl(), "--context=east", "-n", ns, "label", "service/catalog", "mirror.linkerd.io/exported-")
		s.waitMirror(t, "catalog-east", false)
	})
}

// echoWorkload is a ServiceAccount, Service (with extra Service label line svcLabel)
// and Deployment of test/echo's server named name, answering with Cluster=cluster.
func echoWorkload(name, cluster, svcLabel string) string {
	labels := "app: " + name
	if svcLabel != "" {
		labels += ", " + svcLabel
	}
	return fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: %[2]s, namespace: %[1]s}
---
apiVersion: v1
kind: Service
metadata:
  name: %[2]s
  namespace: %[1]s
  labels: {%[4]s}
spec:
  selector: {app: %[2]s}
  ports:
  - {name: http, port: 8080, targetPort: 8080}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: %[2]s}}
  template:
    metadata: {labels: {app: %[2]s}}
    spec:
      serviceAccountName: %[2]s
      containers:
      - name: echo
        image: ghcr.io/l5d-go/echo-advanced:v1
        args: ["--port=8080", "--port=8081", "--cluster=%[3]s"]
        ports:
        - {name: http, containerPort: 8080}
        - {name: probe, containerPort: 8081}
        readinessProbe:
          httpGet: {path: /ready, port: 8081}
          periodSeconds: 1
`, ns, name, cluster, labels)
}

// podOf waits for the one ready pod labelled app=name in namespace ns (default the
// tests' namespace) of the cluster of context ctxName and returns its name.
func (s *Suite) podOf(t *testing.T, ctxName, app string, namespace ...string) string {
	t.Helper()
	n := ns
	if len(namespace) > 0 {
		n = namespace[0]
	}
	var name string
	s.Eventually(t, 4*time.Minute, "a ready pod app="+app+" in "+ctxName, func() string {
		list, err := s.Client(ctxName).CoreV1().Pods(n).List(s.Ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			return err.Error()
		}
		var why []string
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil && podReady(&p) {
				name = p.Name
				return ""
			}
			why = append(why, p.Name+" "+string(p.Status.Phase))
		}
		return fmt.Sprintf("pods: %v", why)
	})
	return name
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitMirror waits for the mirror Service name to exist in west (or, with !present, to be
// gone) and returns it.
func (s *Suite) waitMirror(t *testing.T, name string, present bool) *corev1.Service {
	t.Helper()
	var svc *corev1.Service
	what := map[bool]string{true: "the mirror " + name + " in west", false: "the mirror " + name + " gone from west"}[present]
	s.Eventually(t, 2*time.Minute, what, func() string {
		got, err := s.Client("west").CoreV1().Services(ns).Get(s.Ctx, name, metav1.GetOptions{})
		switch {
		case present && err == nil:
			svc = got
			return ""
		case !present && apierrors.IsNotFound(err):
			return ""
		case err != nil:
			return err.Error()
		}
		return fmt.Sprintf("%s still exists (labels %v)", name, got.Labels)
	})
	return svc
}

// gatewayRow is the fields of the row of `multicluster gateways` output for cluster.
func gatewayRow(out, cluster string) []string {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == cluster {
			return f
		}
	}
	return nil
}

// clientResult is what test/echo's client printed for each request.
type clientResult struct {
	status     map[int]int    // request index -> status code
	cluster    map[int]string // request index -> Cluster of the echo that answered
	proxyError map[int]string // request index -> l5d-proxy-error header
	raw        string
}

// count is the number of requests answered with status by the echo of cluster.
func (r clientResult) count(status int, cluster string) int {
	n := 0
	for i, st := range r.status {
		if st == status && r.cluster[i] == cluster {
			n++
		}
	}
	return n
}

var jobSeq atomic.Int64

// runClient runs test/echo's client as a meshed Job in west under ServiceAccount sa (the
// Job's name), sending count GETs of url (each given up after 30s, which fails the Job),
// waits for it to complete and returns what it printed.
func (s *Suite) runClient(t *testing.T, sa, url string, count int) clientResult {
	t.Helper()
	job := fmt.Sprintf("%s-%d", sa, jobSeq.Add(1))
	s.Apply(t, "west", fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: %[2]s, namespace: %[1]s}
---
apiVersion: batch/v1
kind: Job
metadata: {name: %[3]s, namespace: %[1]s}
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations:
        config.beta.linkerd.io/proxy-enable-native-sidecar: "true"
    spec:
      serviceAccountName: %[2]s
      restartPolicy: Never
      containers:
      - name: client
        image: ghcr.io/l5d-go/echo-advanced:v1
        args: ["client", %[4]q, "--count=%[5]d", "--timeout=30s"]
`, ns, sa, job, url, count))
	var done *batchv1.Job
	s.Eventually(t, 4*time.Minute, "job "+job+" ends", func() string {
		j, err := s.Client("west").BatchV1().Jobs(ns).Get(s.Ctx, job, metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		for _, c := range j.Status.Conditions {
			if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
				done = j
				return ""
			}
		}
		return fmt.Sprintf("active %d, succeeded %d, failed %d", j.Status.Active, j.Status.Succeeded, j.Status.Failed)
	})
	pods, err := s.Client("west").CoreV1().Pods(ns).List(s.Ctx, metav1.ListOptions{LabelSelector: "job-name=" + job})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("the pod of job %s: %v (%d pods)", job, err, len(pods.Items))
	}
	b, err := os.ReadFile(node.LogPath(s.West.RunDir(), ns, pods.Items[0].Name, "client"))
	if err != nil {
		t.Fatal(err)
	}
	if done.Status.Succeeded != 1 {
		t.Fatalf("job %s failed; the client printed:\n%s", job, b)
	}
	return parseClient(string(b))
}

// parseClient reads test/echo's client output: "[i] StatusCode=200", "[i]
// ResponseHeader=Name:value" and "[i body] Key=Value" lines.
func parseClient(out string) clientResult {
	r := clientResult{status: map[int]int{}, cluster: map[int]string{}, proxyError: map[int]string{}, raw: out}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "[") {
			continue
		}
		tag, kv, ok := strings.Cut(l[1:], "] ")
		if !ok {
			continue
		}
		idx, isBody := strings.CutSuffix(tag, " body")
		i, err := strconv.Atoi(idx)
		if err != nil {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case !isBody && k == "StatusCode":
			r.status[i], _ = strconv.Atoi(v)
		case !isBody && k == "ResponseHeader":
			if name, val, ok := strings.Cut(v, ":"); ok && strings.EqualFold(name, "l5d-proxy-error") {
				r.proxyError[i] = val
			}
		case isBody && k == "Cluster":
			r.cluster[i] = v
		}
	}
	return r
}

// proxyMetrics returns the parsed metrics of a meshed pod's proxy (admin port 4191),
// through the API server's pod proxy of the cluster of context ctxName.
func (s *Suite) proxyMetrics(ctxName, namespace, pod string) (map[string]*dto.MetricFamily, error) {
	b, err := s.Client(ctxName).CoreV1().RESTClient().Get().
		AbsPath("/api/v1/namespaces", namespace, "pods", pod+":4191", "proxy", "metrics").DoRaw(s.Ctx)
	if err != nil {
		return nil, fmt.Errorf("metrics of %s/%s in %s: %w", namespace, pod, ctxName, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		return nil, fmt.Errorf("metrics of %s/%s in %s: %w", namespace, pod, ctxName, err)
	}
	return fams, nil
}

// sum adds up the counters of family name whose labels include want.
func sum(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	var total float64
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if got[k] != v {
				match = false
				break
			}
		}
		if match && m.GetCounter() != nil {
			total += m.GetCounter().GetValue()
		}
	}
	return total
}
