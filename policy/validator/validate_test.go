package validator_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
	"github.com/l5d-go/l5d/policy/validator"
)

func gk(kind string) schema.GroupKind { return schema.GroupKind{Group: api.Group, Kind: kind} }

// TestValidate covers each rule on the decoded object, including those the CRD schema
// already enforces before a webhook is called (so a cluster with an older CRD is covered).
func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		kind, obj string
		field     string // "" = valid
	}{
		{"NetworkAuthentication", `{"spec":{"networks":[{"cidr":"10.0.0.0/8","except":["10.1.0.0/16"]},{"cidr":"fd00::/8"},{"cidr":"192.168.1.1"}]}}`, ""},
		{"NetworkAuthentication", `{"spec":{"networks":[]}}`, "spec.networks"},
		{"NetworkAuthentication", `{"spec":{"networks":[{"cidr":"10.0.0.0/33"}]}}`, "spec.networks[0].cidr"},
		{"NetworkAuthentication", `{"spec":{"networks":[{"cidr":"10.0.0.0/8"},{"cidr":"nope"}]}}`, "spec.networks[1].cidr"},
		{"NetworkAuthentication", `{"spec":{"networks":[{"cidr":"10.0.0.0/8","except":["11.0.0.0/16"]}]}}`, "spec.networks[0].except[0]"},
		{"NetworkAuthentication", `{"spec":{"networks":[{"cidr":"10.0.0.0/8","except":["10.1.0.0/16","10.0.0.0/7"]}]}}`, "spec.networks[0].except[1]"},
		{"NetworkAuthentication", `{"spec":{"networks":[{"cidr":"10.0.0.0/8","except":["fd00::/16"]}]}}`, "spec.networks[0].except[0]"},
		{"NetworkAuthentication", `{"spec":{"networks":[{"cidr":"10.0.0.0/8","except":["10.0.0.1/99"]}]}}`, "spec.networks[0].except[0]"},

		{"AuthorizationPolicy", `{"spec":{"targetRef":{"group":"policy.linkerd.io","kind":"Server","name":"web"},"requiredAuthenticationRefs":[{"group":"policy.linkerd.io","kind":"MeshTLSAuthentication","name":"m"},{"group":"policy.linkerd.io","kind":"NetworkAuthentication","name":"n"}]}}`, ""},
		{"AuthorizationPolicy", `{"spec":{"targetRef":{"kind":"Namespace","name":"ns"},"requiredAuthenticationRefs":[{"kind":"ServiceAccount","name":"sa"}]}}`, ""},
		{"AuthorizationPolicy", `{"spec":{"targetRef":{"group":"gateway.networking.k8s.io","kind":"HTTPRoute","name":"r"},"requiredAuthenticationRefs":[]}}`, ""},
		{"AuthorizationPolicy", `{"spec":{"targetRef":{"group":"policy.linkerd.io","kind":"Deployment","name":"web"},"requiredAuthenticationRefs":[]}}`, "spec.targetRef.kind"},
		{"AuthorizationPolicy", `{"spec":{"targetRef":{"group":"apps","kind":"Server","name":"web"},"requiredAuthenticationRefs":[]}}`, "spec.targetRef.kind"},
		{"AuthorizationPolicy", `{"spec":{"targetRef":{"group":"policy.linkerd.io","kind":"Server"},"requiredAuthenticationRefs":[]}}`, "spec.targetRef.name"},
		{"AuthorizationPolicy", `{"spec":{"targetRef":{"group":"policy.linkerd.io","kind":"Server","name":"web"},"requiredAuthenticationRefs":[{"group":"policy.linkerd.io","kind":"Secret","name":"x"}]}}`, "spec.requiredAuthenticationRefs[0].kind"},
		{"AuthorizationPolicy", `{"spec":{"targetRef":{"group":"policy.linkerd.io","kind":"Server","name":"web"},"requiredAuthenticationRefs":[{"kind":"ServiceAccount","name":"a"},{"group":"policy.linkerd.io","kind":"MeshTLSAuthentication","name":"m"}]}}`, "spec.requiredAuthenticationRefs[1]"},
		{"AuthorizationPolicy", `{"spec":{"targetRef":{"group":"policy.linkerd.io","kind":"Server","name":"web"},"requiredAuthenticationRefs":[{"group":"policy.linkerd.io","kind":"NetworkAuthentication","name":"a"},{"group":"policy.linkerd.io","kind":"NetworkAuthentication","name":"b"}]}}`, "spec.requiredAuthenticationRefs[1]"},

		{"MeshTLSAuthentication", `{"spec":{"identities":["*","*.ns.serviceaccount.identity.linkerd.cluster.local","web.ns.serviceaccount.identity.linkerd.cluster.local"]}}`, ""},
		{"MeshTLSAuthentication", `{"spec":{"identityRefs":[{"kind":"ServiceAccount","name":"web"},{"kind":"Namespace","name":"ns"}]}}`, ""},
		{"MeshTLSAuthentication", `{"spec":{}}`, "spec.identities"},
		{"MeshTLSAuthentication", `{"spec":{"identities":["web.*.cluster.local"]}}`, "spec.identities[0]"},
		{"MeshTLSAuthentication", `{"spec":{"identities":["ok.local","Bad Name"]}}`, "spec.identities[1]"},
		{"MeshTLSAuthentication", `{"spec":{"identityRefs":[{"kind":"Pod","name":"web"}]}}`, "spec.identityRefs[0].kind"},
		{"MeshTLSAuthentication", `{"spec":{"identityRefs":[{"kind":"ServiceAccount"}]}}`, "spec.identityRefs[0].name"},

		{"Server", `{"spec":{"podSelector":{"matchLabels":{"app":"web"}},"port":8080,"proxyProtocol":"HTTP/1"}}`, ""},
		{"Server", `{"spec":{"podSelector":{},"port":"http"}}`, ""},
		{"Server", `{"spec":{"podSelector":{},"port":0}}`, "spec.port"},
		{"Server", `{"spec":{"podSelector":{},"port":70000}}`, "spec.port"},
		{"Server", `{"spec":{"podSelector":{},"port":"8080"}}`, "spec.port"},
		{"Server", `{"spec":{"podSelector":{},"port":"http_admin"}}`, "spec.port"},
		{"Server", `{"spec":{"podSelector":{},"port":"a-very-long-port-name"}}`, "spec.port"},
		{"Server", `{"spec":{"port":80}}`, "spec.podSelector"},
		{"Server", `{"spec":{"podSelector":{"matchLabels":{"bad key!":"x"}},"port":80}}`, "spec.podSelector.matchLabels"},
		{"Server", `{"spec":{"podSelector":{"matchExpressions":[{"key":"app","operator":"In"}]},"port":80}}`, "spec.podSelector.matchExpressions[0].values"},
		{"Server", `{"spec":{"podSelector":{},"port":80,"proxyProtocol":"HTTP/3"}}`, "spec.proxyProtocol"},
		{"Server", `{"spec":{"externalWorkloadSelector":{"matchLabels":{"app":"vm"}},"port":80,"accessPolicy":"audit"}}`, ""},
		{"Server", `{"spec":{"podSelector":{},"externalWorkloadSelector":{},"port":80}}`, "spec.externalWorkloadSelector"},
		{"Server", `{"spec":{"externalWorkloadSelector":{"matchLabels":{"bad key!":"x"}},"port":80}}`, "spec.externalWorkloadSelector.matchLabels"},
		{"Server", `{"spec":{"podSelector":{},"port":80,"accessPolicy":"allow"}}`, "spec.accessPolicy"},

		{"HTTPLocalRateLimitPolicy", `{"spec":{"targetRef":{"group":"policy.linkerd.io","kind":"Server","name":"web"},"total":{"requestsPerSecond":100},"identity":{"requestsPerSecond":20},"overrides":[{"requestsPerSecond":25,"clientRefs":[{"kind":"ServiceAccount","namespace":"ns","name":"special"}]}]}}`, ""},
		{"HTTPLocalRateLimitPolicy", `{"spec":{"targetRef":{"group":"policy.linkerd.io","kind":"Server","name":"web"},"identity":{"requestsPerSecond":20}}}`, ""},
		{"HTTPLocalRateLimitPolicy", `{"spec":{"targetRef":{"group":"policy.linkerd.io","kind":"HTTPRoute","name":"web"},"total":{"requestsPerSecond":1}}}`, "spec.targetRef.kind"},
		{"HTTPLocalRateLimitPolicy", `{"spec":{"targetRef":{"group":"policy.linkerd.io","kind":"Server"},"total":{"requestsPerSecond":1}}}`, "spec.targetRef.name"},
		{"HTTPLocalRateLimitPolicy", `{"spec":{"targetRef":{"group":"policy.linkerd.io","kind":"Server","name":"web"},"total":{"requestsPerSecond":0}}}`, "spec.total.requestsPerSecond"},
		{"HTTPLocalRateLimitPolicy", `{"spec":{"targetRef":{"group":"policy.linkerd.io","kind":"Server","name":"web"},"total":{"requestsPerSecond":5000000000}}}`, "spec.total.requestsPerSecond"},
		{"HTTPLocalRateLimitPolicy", `{"spec":{"targetRef":{"group":"policy.linkerd.io","kind":"Server","name":"web"},"total":{"requestsPerSecond":10},"identity":{"requestsPerSecond":20}}}`, "spec.identity.requestsPerSecond"},
		{"HTTPLocalRateLimitPolicy", `{"spec":{"targetRef":{"group":"policy.linkerd.io","kind":"Server","name":"web"},"total":{"requestsPerSecond":10},"overrides":[{"requestsPerSecond":11,"clientRefs":[{"kind":"ServiceAccount","name":"a"}]}]}}`, "spec.overrides[0].requestsPerSecond"},
		{"HTTPLocalRateLimitPolicy", `{"spec":{"targetRef":{"group":"policy.linkerd.io","kind":"Server","name":"web"},"overrides":[{"requestsPerSecond":1,"clientRefs":[{"kind":"Pod","name":"a"}]}]}}`, "spec.overrides[0].clientRefs[0].kind"},
		{"HTTPLocalRateLimitPolicy", `{"spec":{"targetRef":{"group":"policy.linkerd.io","kind":"Server","name":"web"},"overrides":[{"requestsPerSecond":1,"clientRefs":[]}]}}`, "spec.overrides[0].clientRefs"},

		{"EgressNetwork", `{"spec":{"trafficPolicy":"Deny"}}`, ""},
		{"EgressNetwork", `{"spec":{"trafficPolicy":"Allow","networks":[{"cidr":"0.0.0.0/0","except":["10.0.0.0/8"]}]}}`, ""},
		{"EgressNetwork", `{"spec":{"trafficPolicy":"Maybe"}}`, "spec.trafficPolicy"},
		{"EgressNetwork", `{"spec":{"trafficPolicy":"Deny","networks":[{"cidr":"nope"}]}}`, "spec.networks[0].cidr"},
	} {
		err := validator.Validate(gk(tc.kind), []byte(tc.obj))
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s %s: refused: %v", tc.kind, tc.obj, err)
		case tc.field != "" && (err == nil || !strings.Contains(err.Error(), tc.field+":")):
			t.Errorf("%s %s: want an error naming %s, got %v", tc.kind, tc.obj, tc.field, err)
		}
	}
}

func TestUndecodableObjectIsRefused(t *testing.T) {
	err := validator.Validate(gk("Server"), []byte(`{"spec":{"port":{"nested":true}}}`))
	if err == nil || !strings.Contains(err.Error(), "Server does not decode") {
		t.Fatalf("got %v", err)
	}
	if err := validator.Validate(schema.GroupKind{Group: "apps", Kind: "Deployment"}, []byte(`garbage`)); err != nil {
		t.Fatalf("a kind the validator does not know is refused: %v", err)
	}
}

func review(t *testing.T, h http.Handler, body string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader(body)))
	var out map[string]any
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("200 with a body that is not JSON: %v", err)
		}
	}
	return rec.Code, out
}

func TestHandler(t *testing.T) {
	h := &validator.Handler{}
	for _, body := range []string{"{nope", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`,
		`{"apiVersion":"v9","request":{"uid":"1","kind":{"kind":"Server"}}}`, `{"request":{"kind":{"kind":"Server"}}}`, `{"request":{"uid":"1"}}`, ``} {
		if code, _ := review(t, h, body); code != http.StatusBadRequest {
			t.Errorf("%q: status %d, want 400", body, code)
		}
	}
	code, out := review(t, h, `{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u1","operation":"CREATE","name":"web",
		"kind":{"group":"policy.linkerd.io","version":"v1beta1","kind":"Server"},"object":{"spec":{"podSelector":{},"port":"8080"}}}}`)
	resp, _ := out["response"].(map[string]any)
	if code != http.StatusOK || out["apiVersion"] != "admission.k8s.io/v1beta1" || resp["uid"] != "u1" || resp["allowed"] != false ||
		!strings.Contains(resp["status"].(map[string]any)["message"].(string), "spec.port") {
		t.Errorf("invalid Server: %d %v", code, out)
	}
	code, out = review(t, h, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u2","operation":"CREATE",
		"kind":{"group":"policy.linkerd.io","version":"v1beta1","kind":"Server"},"object":"not an object"}}`)
	if resp, _ = out["response"].(map[string]any); code != http.StatusOK || resp["allowed"] != false {
		t.Errorf("undecodable object: %d %v", code, out)
	}
	code, out = review(t, h, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u3","operation":"DELETE",
		"kind":{"group":"policy.linkerd.io","version":"v1beta1","kind":"Server"}}}`)
	if resp, _ = out["response"].(map[string]any); code != http.StatusOK || resp["allowed"] != true {
		t.Errorf("delete: %d %v", code, out)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/", bytes.NewReader(bytes.Repeat([]byte{' '}, 5<<20))))
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d", rec.Code)
	}
}

func FuzzHandler(f *testing.F) {
	for _, s := range []string{
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","operation":"CREATE","kind":{"group":"policy.linkerd.io","kind":"NetworkAuthentication"},"object":{"spec":{"networks":[{"cidr":"10.0.0.0/8","except":["10.0.0.0/7"]}]}}}}`,
		`{"request":{"uid":"1","kind":{"group":"policy.linkerd.io","kind":"Server"},"object":{"spec":{"podSelector":{"matchExpressions":[{"key":"a","operator":"Exists","values":["x"]}]},"port":"x"}}}}`,
		`{"request":{"uid":"1","kind":{"group":"policy.linkerd.io","kind":"AuthorizationPolicy"},"object":{"spec":{"targetRef":{"kind":"Namespace"},"requiredAuthenticationRefs":[{"kind":""}]}}}}`,
		`{"request":{"uid":"1","kind":{"group":"policy.linkerd.io","kind":"MeshTLSAuthentication"},"object":{"spec":{"identities":["*.*"],"identityRefs":[{"kind":"Namespace","name":"*"}]}}}}`,
		`{"request":{"uid":"1","kind":{"group":"policy.linkerd.io","kind":"HTTPRoute"},"object":{"spec":{"rules":[{"matches":[{"path":{"type":"RegularExpression","value":"("}}]}]}}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		(&validator.Handler{}).ServeHTTP(rec, httptest.NewRequest("POST", "/", bytes.NewReader(body)))
		switch rec.Code {
		case http.StatusOK:
			var out struct {
				Response *struct {
					Allowed bool `json:"allowed"`
					Status  *struct {
						Message string `json:"message"`
					} `json:"status"`
				} `json:"response"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
				t.Fatalf("200 without an AdmissionReview response: %v %s", err, rec.Body)
			}
			if !out.Response.Allowed && (out.Response.Status == nil || out.Response.Status.Message == "") {
				t.Fatalf("denied without a message: %s", rec.Body)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if rec.Body.Len() == 0 {
				t.Fatal("error status without a message")
			}
		default:
			t.Fatalf("status %d", rec.Code)
		}
	})
}

// FuzzValidate feeds arbitrary objects to each kind's validation: it must answer (nil or
// an error naming fields), never panic.
func FuzzValidate(f *testing.F) {
	kinds := []string{"NetworkAuthentication", "AuthorizationPolicy", "MeshTLSAuthentication", "Server"}
	f.Add(uint8(0), []byte(`{"spec":{"networks":[{"cidr":"10.0.0.0/8","except":["10.0.0.0/7","fd00::/8","10.1.1.1"]}]}}`))
	f.Add(uint8(1), []byte(`{"spec":{"targetRef":{"group":"core","kind":"namespace","name":"x"},"requiredAuthenticationRefs":[{"kind":"serviceaccount","name":"a","namespace":"B"}]}}`))
	f.Add(uint8(2), []byte(`{"spec":{"identities":["*","*.a.b","a*.b"],"identityRefs":[{"kind":"Namespace","name":"*"}]}}`))
	f.Add(uint8(3), []byte(`{"spec":{"podSelector":{"matchExpressions":[{"key":"a/b/c","operator":"Gt","values":["1"]}]},"port":"-x-"}}`))
	f.Fuzz(func(t *testing.T, k uint8, obj []byte) {
		err := validator.Validate(gk(kinds[int(k)%len(kinds)]), obj)
		if err != nil && err.Error() == "" {
			t.Fatal("an error without a message")
		}
	})
}

func TestValidateRoutesAndServerAuthorizations(t *testing.T) {
	gw := func(kind string) schema.GroupKind {
		return schema.GroupKind{Group: "gateway.networking.k8s.io", Kind: kind}
	}
	for _, tc := range []struct {
		gk    schema.GroupKind
		obj   string
		field string // "" = valid
	}{
		{gk("HTTPRoute"), `{"metadata":{"name":"r","namespace":"ns"},"spec":{"parentRefs":[{"group":"policy.linkerd.io","kind":"Server","name":"web"}],"rules":[{"matches":[{"path":{"type":"PathPrefix","value":"/api"},"headers":[{"name":"x-user","type":"RegularExpression","value":"a.*"}]}]}]}}`, ""},
		{gk("HTTPRoute"), `{"metadata":{"name":"r","namespace":"ns"},"spec":{"rules":[{"matches":[{"path":{"type":"PathPrefix","value":"api"}}]}]}}`, "spec.rules[0].matches[0].path.value"},
		{gk("HTTPRoute"), `{"metadata":{"name":"r","namespace":"ns"},"spec":{"rules":[{},{"matches":[{"path":{"type":"RegularExpression","value":"/(a"}}]}]}}`, "spec.rules[1].matches[0].path.value"},
		{gk("HTTPRoute"), `{"metadata":{"name":"r","namespace":"ns"},"spec":{"rules":[{"matches":[{"headers":[{"name":"bad header","value":"x"}]}]}]}}`, "spec.rules[0].matches[0].headers[0].name"},
		{gk("HTTPRoute"), `{"metadata":{"name":"r","namespace":"ns"},"spec":{"rules":[{"matches":[{"queryParams":[{"name":"q","type":"RegularExpression","value":"["}]}]}]}}`, "spec.rules[0].matches[0].queryParams[0].value"},
		{gw("HTTPRoute"), `{"metadata":{"name":"r","namespace":"ns"},"spec":{"rules":[{"matches":[{"path":{"type":"Exact","value":"/x"}}]}]}}`, ""},
		{gw("HTTPRoute"), `{"metadata":{"name":"r","namespace":"ns"},"spec":{"rules":[{"matches":[{"path":{"type":"Exact","value":"x"}}]}]}}`, "spec.rules[0].matches[0].path.value"},
		{gw("HTTPRoute"), `{"metadata":{"name":"r","namespace":"ns"},"spec":{"rules":[{"timeouts":{"request":"soon"}}]}}`, "spec.rules[0].timeouts.request"},
		{gw("GRPCRoute"), `{"metadata":{"name":"r","namespace":"ns"},"spec":{"rules":[{"matches":[{"headers":[{"name":"a:b","value":"x"}]}]}]}}`, "spec.rules[0].matches[0].headers[0].name"},

		{gk("ServerAuthorization"), `{"spec":{"server":{"name":"web"},"client":{"meshTLS":{"identities":["*.ns.serviceaccount.identity.linkerd.cluster.local"]},"networks":[{"cidr":"10.0.0.0/8"}]}}}`, ""},
		{gk("ServerAuthorization"), `{"spec":{"server":{"selector":{"matchLabels":{"a":"b"}}},"client":{"unauthenticated":true}}}`, ""},
		{gk("ServerAuthorization"), `{"spec":{"server":{},"client":{"unauthenticated":true}}}`, "spec.server"},
		{gk("ServerAuthorization"), `{"spec":{"server":{"name":"web"},"client":{"unauthenticated":true,"meshTLS":{}}}}`, "spec.client.unauthenticated"},
		{gk("ServerAuthorization"), `{"spec":{"server":{"name":"web"},"client":{"meshTLS":{"unauthenticatedTLS":true,"identities":["a.b"]}}}}`, "spec.client.meshTLS.unauthenticatedTLS"},
		{gk("ServerAuthorization"), `{"spec":{"server":{"name":"web"},"client":{"meshTLS":{"identities":["a.*.b"]}}}}`, "spec.client.meshTLS.identities[0]"},
		{gk("ServerAuthorization"), `{"spec":{"server":{"name":"web"},"client":{"unauthenticated":true,"networks":[{"cidr":"10.0.0.0/8","except":["11.0.0.0/8"]}]}}}`, "spec.client.networks[0].except[0]"},
	} {
		err := validator.Validate(tc.gk, []byte(tc.obj))
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s %s: refused: %v", tc.gk, tc.obj, err)
		case tc.field != "" && (err == nil || !strings.Contains(err.Error(), tc.field+":")):
			t.Errorf("%s %s: want an error naming %s, got %v", tc.gk, tc.obj, tc.field, err)
		}
	}
}
