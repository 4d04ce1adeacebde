package inbound

import (
	"encoding/json"
	"net/netip"
	"sort"
	"testing"

	corev1 "k8s.io/api/core/v1"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
)

// FuzzServerAuthorization: any ServerAuthorization the API server could hold renders
// to a complete authorization or to an error, never a crash or an authorization
// without networks or authentication.
func FuzzServerAuthorization(f *testing.F) {
	for _, seed := range []string{
		`{"metadata":{"name":"a","namespace":"n"},"spec":{"server":{"name":"s"},"client":{"unauthenticated":true}}}`,
		`{"metadata":{"name":"a","namespace":"n"},"spec":{"server":{"selector":{"matchLabels":{"a":"b"}}},"client":{"meshTLS":{"identities":["*","*.x.y","a.b"],"serviceAccounts":[{"name":"sa"},{"name":"sb","namespace":"o"}]}}}}`,
		`{"metadata":{"name":"a","namespace":"n"},"spec":{"server":{"name":"s"},"client":{"meshTLS":{"unauthenticatedTLS":true},"networks":[{"cidr":"10.0.0.0/8","except":["10.1.0.0/16"]}]}}}`,
		`{"spec":{"client":{"meshTLS":{}}}}`,
		`{"spec":{"client":{"unauthenticated":true,"networks":[{"cidr":"::1/129"}]}}}`,
		`{"spec":{"client":{"unauthenticated":true,"networks":[{"cidr":""}]}}}`,
	} {
		f.Add([]byte(seed))
	}
	c := Config{ClusterNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, ControllerNS: "linkerd", TrustDomain: "cluster.local"}
	f.Fuzz(func(t *testing.T, data []byte) {
		var saz api.ServerAuthorization
		if json.Unmarshal(data, &saz) != nil {
			return
		}
		a, err := c.serverAuthz(&saz)
		if err != nil {
			if a != nil {
				t.Fatalf("both an authorization and an error: %v", err)
			}
			return
		}
		if len(a.Networks) == 0 || a.Authentication.GetPermit() == nil {
			t.Fatalf("incomplete authorization %v from %s", a, data)
		}
		_ = selectsServer(saz.Spec.Server, &api.Server{})
	})
}

// FuzzProbePaths: any pod spec yields sorted, distinct, non-empty probe paths.
func FuzzProbePaths(f *testing.F) {
	f.Add([]byte(`{"containers":[{"name":"a","ports":[{"name":"http","containerPort":8080}],"livenessProbe":{"httpGet":{"port":"http","path":"/live"}},"readinessProbe":{"httpGet":{"port":8080}}}]}`), uint16(8080))
	f.Add([]byte(`{"containers":[{"name":"a","startupProbe":{"httpGet":{"port":-1}}},{"name":"b","livenessProbe":{"tcpSocket":{"port":80}}}]}`), uint16(80))
	f.Fuzz(func(t *testing.T, data []byte, port uint16) {
		var spec corev1.PodSpec
		if json.Unmarshal(data, &spec) != nil {
			return
		}
		paths := probePaths(&corev1.Pod{Spec: spec}, uint32(port))
		if !sort.StringsAreSorted(paths) {
			t.Fatalf("unsorted %q", paths)
		}
		for i, p := range paths {
			if p == "" || (i > 0 && paths[i-1] == p) {
				t.Fatalf("bad paths %q", paths)
			}
		}
		_ = defaultHTTPRoutes(paths)
	})
}
