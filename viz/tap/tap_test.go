package tap_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/pkg/inject"
	"github.com/l5d-go/l5d/pkg/vizapi"
	"github.com/l5d-go/l5d/proto/gen/httptypes"
	pbnet "github.com/l5d-go/l5d/proto/gen/net"
	pbtap "github.com/l5d-go/l5d/proto/gen/tap"
	"github.com/l5d-go/l5d/proto/netconv"
	"github.com/l5d-go/l5d/test/kube"
	"github.com/l5d-go/l5d/viz/metricsapi/cluster"
	"github.com/l5d-go/l5d/viz/tap"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

// tapIdentity is the identity the proxies' LINKERD2_PROXY_TAP_SVC_NAME names in a default
// install.
const tapIdentity = "tap.linkerd-viz.serviceaccount.identity.linkerd.cluster.local"

// observer is a proxy's tap server speaking the real Tap service over mTLS: it refuses
// clients other than tapIdentity and answers each Observe with limit requests from src
// to dst, then ends the stream.
type observer struct {
	pbtap.UnimplementedTapServer
	src, dst netip.AddrPort
	reqs     chan *pbtap.ObserveRequest
}

func (o *observer) Observe(req *pbtap.ObserveRequest, st grpc.ServerStreamingServer[pbtap.TapEvent]) error {
	p, ok := peer.FromContext(st.Context())
	if !ok {
		return status.Error(codes.Unauthenticated, "no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || info.State.PeerCertificates[0].Subject.CommonName != tapIdentity {
		return status.Error(codes.PermissionDenied, "client is not the tap identity")
	}
	select {
	case o.reqs <- req:
	default:
	}
	for i := range uint64(req.GetLimit()) {
		id := &pbtap.TapEvent_Http_StreamId{Base: 7, Stream: i}
		for _, h := range []*pbtap.TapEvent_Http{
			{Event: &pbtap.TapEvent_Http_RequestInit_{RequestInit: &pbtap.TapEvent_Http_RequestInit{
				Id:        id,
				Method:    &httptypes.HttpMethod{Type: &httptypes.HttpMethod_Registered_{Registered: httptypes.HttpMethod_GET}},
				Scheme:    &httptypes.Scheme{Type: &httptypes.Scheme_Registered_{Registered: httptypes.Scheme_HTTP}},
				Authority: "catalog:8080", Path: "/books",
			}}},
			{Event: &pbtap.TapEvent_Http_ResponseInit_{ResponseInit: &pbtap.TapEvent_Http_ResponseInit{Id: id, HttpStatus: 200}}},
			{Event: &pbtap.TapEvent_Http_ResponseEnd_{ResponseEnd: &pbtap.TapEvent_Http_ResponseEnd{Id: id, ResponseBytes: 42}}},
		} {
			ev := &pbtap.TapEvent{
				Source:          tcp(o.src),
				Destination:     tcp(o.dst),
				DestinationMeta: &pbtap.TapEvent_EndpointMeta{Labels: map[string]string{"tls": "true"}},
				ProxyDirection:  pbtap.TapEvent_OUTBOUND,
				Event:           &pbtap.TapEvent_Http_{Http: h},
			}
			if err := st.Send(ev); err != nil {
				return err
			}
		}
	}
	return nil
}

func tcp(a netip.AddrPort) *pbnet.TcpAddress {
	return &pbnet.TcpAddress{Ip: netconv.IPAddress(a.Addr()), Port: uint32(a.Port())}
}

// fixture is a namespace with a deployment "web" (one meshed pod whose proxy is an
// observer on its tap port) and a pod "catalog", the tap API registered with the API
// server through an APIService, and a user allowed to tap web and one who is not.
type fixture struct {
	c       *kube.Cluster
	ns      string
	obs     *observer
	catalog netip.Addr
	port    int // the tap API server's
}

// loopbackIP picks a random 127/8 address so the observer's fixed tap port does not
// collide with other tests on the machine.
func loopbackIP() netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(1 + rand.IntN(250)), byte(rand.IntN(256)), byte(2 + rand.IntN(250))})
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	c := kube.Shared(t)
	ns := c.Namespace(t)
	ctx := t.Context()
	client := c.Client()

	anchor, err := certs.NewTrustAnchor(certs.DefaultAnchorCommonName, certs.ValidFor(time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(name string) tls.Certificate {
		key, err := certs.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		cert, err := anchor.IssueLeaf(key.Public(), name, certs.ValidFor(time.Now(), time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return certs.TLSCertificate(key, cert)
	}
	roots := certs.NewPool(anchor.Cert)

	// The web pod's "proxy": an observer on <web IP>:4190 with web's identity.
	webIP, catalogIP := loopbackIP(), loopbackIP()
	obs := &observer{src: netip.AddrPortFrom(webIP, 40000), dst: netip.AddrPortFrom(catalogIP, 8080), reqs: make(chan *pbtap.ObserveRequest, 16)}
	lis, err := net.Listen("tcp", net.JoinHostPort(webIP.String(), strconv.Itoa(inject.ProxyControlPort)))
	if err != nil {
		t.Fatalf("observer listener: %v", err)
	}
	webCert := leaf(certs.WorkloadIdentity("web", ns, "linkerd", "cluster.local"))
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{webCert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: roots,
	})))
	pbtap.RegisterTapServer(gs, obs)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)

	// The objects: deployment web -> replicaset -> pod, and pod catalog.
	labels := map[string]string{"app": "web"}
	containers := []corev1.Container{{Name: "app", Image: "web"}, {Name: "linkerd-proxy", Image: "proxy"}}
	dep, err := client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: containers}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	rs, err := client.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web-5d8f", Labels: labels, OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "apps/v1", Kind: "Deployment", Name: dep.Name, UID: dep.UID, Controller: &yes}}},
		Spec: appsv1.ReplicaSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: containers}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.CreateServiceAccount(t, ns, "web")
	c.CreatePod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-5d8f-x1", Namespace: ns, Labels: labels, OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &yes}}},
		Spec: corev1.PodSpec{ServiceAccountName: "web", Containers: containers},
	})
	c.SetPodStatus(t, ns, "web-5d8f-x1", kube.PodStatus{IPs: []string{webIP.String()}, Ready: true})
	c.CreatePod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "catalog", Namespace: ns},
		Spec:       corev1.PodSpec{Containers: containers},
	})
	c.SetPodStatus(t, ns, "catalog", kube.PodStatus{IPs: []string{catalogIP.String()}, Ready: true})

	// The tap API, dialing proxies with the tap identity's certificate.
	cache := cluster.New(client, nil)
	if err := cache.Start(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	auth, err := tap.LoadRequestHeader(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	tapCert := leaf(tapIdentity)
	srv := &tap.Server{
		Kube: client, Cache: cache, Auth: auth, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Proxies: &tap.MTLSProxies{
			Certificate: func() (*tls.Certificate, error) { return &tapCert, nil },
			Roots:       roots, ControlPlaneNamespace: "linkerd", TrustDomain: "cluster.local",
		},
	}
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{leaf("tap." + ns + ".svc")}, ClientAuth: tls.RequestClientCert}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	port := registerAPIService(t, c, ns, ts, anchor.Cert)

	// alice may tap deployments and pods in ns; bob may not.
	if _, err := client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "tap"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{vizapi.TapGroup}, Resources: []string{"deployments/tap", "pods/tap"}, Verbs: []string{"watch"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "alice-tap"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "tap"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The API server's RBAC authorizer reads bindings from its own cache: wait until it
	// allows alice what the tap API will ask.
	deadline := time.Now().Add(time.Minute)
	for {
		ok, _, err := tap.Authorize(ctx, client, tap.User{Name: "alice"}, vizapi.TapGroup, vizapi.TapVersion, "deployments", vizapi.TapSubresource, ns, "web")
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the RBAC binding for alice did not take effect within a minute")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &fixture{c: c, ns: ns, obs: obs, catalog: catalogIP, port: port}
}

// registerAPIService points v1alpha1.tap.linkerd.io at ts through an ExternalName
// Service "tap" (localhost: the API server resolves it and dials ts's port, checking
// the certificate for tap.<ns>.svc against ca) and waits until the API server reports it
// Available.
func registerAPIService(t *testing.T, c *kube.Cluster, ns string, ts *httptest.Server, ca *x509.Certificate) int {
	t.Helper()
	ctx := t.Context()
	port, err := strconv.Atoi(ts.URL[strings.LastIndex(ts.URL, ":")+1:])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client().CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "tap"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "localhost"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	name := vizapi.TapVersion + "." + vizapi.TapGroup
	c.Apply(t, "", fmt.Sprintf(`apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: %s
spec:
  group: %s
  version: %s
  groupPriorityMinimum: 1000
  versionPriority: 100
  service: {namespace: %s, name: tap, port: %d}
  caBundle: %s
`, name, vizapi.TapGroup, vizapi.TapVersion, ns, port, base64.StdEncoding.EncodeToString(certs.EncodeCertificatesPEM(ca))))
	apis := c.Dynamic().Resource(schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"})
	t.Cleanup(func() { _ = apis.Delete(context.Background(), name, metav1.DeleteOptions{}) })
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := apis.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		var last string
		for _, cond := range conds {
			m, _ := cond.(map[string]any)
			if m["type"] == "Available" {
				if m["status"] == "True" {
					return port
				}
				last = fmt.Sprint(m["reason"], ": ", m["message"])
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("APIService %s not Available after a minute: %s", name, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// as returns a REST client of the API server authenticating as user.
func (f *fixture) as(t *testing.T, user string) rest.Interface {
	cfg := f.c.RESTConfig()
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:authenticated"}}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs.Discovery().RESTClient()
}

func TestTapThroughAggregatedAPI(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	req := vizapi.TapByResourceRequest{
		Target: vizapi.ResourceSelection{Resource: vizapi.Resource{Namespace: f.ns, Type: vizapi.Deployment, Name: "web"}},
		Match:  vizapi.TapMatch{To: &vizapi.Resource{Type: vizapi.Pod, Name: "catalog"}, Method: "get", Path: "/books"},
		MaxRps: 2,
	}
	st, err := vizapi.Tap(ctx, f.as(t, "alice"), req)
	if err != nil {
		t.Fatalf("tap as alice: %v", err)
	}
	defer st.Close()
	var events []*pbtap.TapEvent
	for len(events) < 6 {
		ev, err := st.Next()
		if err != nil {
			t.Fatalf("after %d events: %v", len(events), err)
		}
		events = append(events, ev)
	}
	init := events[0].GetHttp().GetRequestInit()
	if init.GetPath() != "/books" || init.GetAuthority() != "catalog:8080" {
		t.Errorf("first event is not web's request to catalog: %v", events[0])
	}
	src, dst := events[0].GetSourceMeta().GetLabels(), events[0].GetDestinationMeta().GetLabels()
	if src["deployment"] != "web" || src["pod"] != "web-5d8f-x1" || src["namespace"] != f.ns || src["serviceaccount"] != "web" {
		t.Errorf("source labels %v: want deployment=web pod=web-5d8f-x1 namespace=%s serviceaccount=web", src, f.ns)
	}
	if dst["pod"] != "catalog" || dst["tls"] != "true" {
		t.Errorf("destination labels %v: want pod=catalog and the proxy's tls=true", dst)
	}
	if end := events[2].GetHttp().GetResponseEnd(); end.GetResponseBytes() != 42 {
		t.Errorf("third event %v: want the response end", events[2])
	}

	// The proxy was asked for at most MaxRps requests, matching the CLI's flags.
	obs := <-f.obs.reqs
	if obs.GetLimit() != 2 {
		t.Errorf("limit %d: want 2 (maxRps over one pod)", obs.GetLimit())
	}
	all := obs.GetMatch().GetAll().GetMatches()
	if len(all) != 3 {
		t.Fatalf("match %v: want all of destination, method and path", obs.GetMatch())
	}
	nm := all[0].GetAny().GetMatches()[0].GetDestination().GetNetmask()
	if ip, _ := netconv.Addr(nm.GetIp()); ip != f.catalog || nm.GetMask() != 32 {
		t.Errorf("destination match %v: want %s/32 (catalog's pod)", nm, f.catalog)
	}
	if m := all[1].GetHttp().GetMethod().GetRegistered(); m != httptypes.HttpMethod_GET {
		t.Errorf("method match %v: want GET", m)
	}
	if p := all[2].GetHttp().GetPath().GetPrefix(); p != "/books" {
		t.Errorf("path match %q: want prefix /books", p)
	}
}

func TestTapForbiddenWithoutRBAC(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct{ user, typ, name string }{
		{"bob", vizapi.Deployment, "web"},    // no binding at all
		{"alice", vizapi.Namespace, f.ns},    // alice may tap deployments and pods, not the namespace
		{"alice", vizapi.StatefulSet, "web"}, // nor statefulsets
	} {
		req := vizapi.TapByResourceRequest{Target: vizapi.ResourceSelection{Resource: vizapi.Resource{Namespace: f.ns, Type: tc.typ, Name: tc.name}}}
		st, err := vizapi.Tap(t.Context(), f.as(t, tc.user), req)
		if err == nil {
			st.Close()
			t.Errorf("%s tapping %s/%s: no error, want Forbidden", tc.user, tc.typ, tc.name)
			continue
		}
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), tc.user) {
			t.Errorf("%s tapping %s/%s: %v, want Forbidden naming the user", tc.user, tc.typ, tc.name, err)
		}
	}
}

func TestTapRefusesCallersOtherThanTheAPIServer(t *testing.T) {
	f := newFixture(t)
	path, _ := vizapi.TapPath(vizapi.Resource{Namespace: f.ns, Type: vizapi.Deployment, Name: "web"})
	url := fmt.Sprintf("https://127.0.0.1:%d%s", f.port, path)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // #nosec: the test checks the server refuses it
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader("{}"))
	req.Header.Set("X-Remote-User", "system:admin")
	req.Header.Set("X-Remote-Group", "system:masters")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "no client certificate") {
		t.Errorf("forged headers without the front-proxy certificate: %d %s, want 401 naming the missing certificate", resp.StatusCode, body)
	}
}
