package inpolicy

import (
	"testing"
	"time"

	pb "github.com/l5d-go/l5d/proto/gen/inbound"
	"github.com/l5d-go/l5d/proto/gen/meta"
)

func rlProto(total, identity uint32, overrides map[uint32][]string) *pb.HttpLocalRateLimit {
	p := &pb.HttpLocalRateLimit{Metadata: &meta.Metadata{Kind: &meta.Metadata_Resource{Resource: &meta.Resource{
		Group: "policy.linkerd.io", Kind: "HTTPLocalRateLimitPolicy", Name: "web-rl"}}}}
	if total > 0 {
		p.Total = &pb.HttpLocalRateLimit_Limit{RequestsPerSecond: total}
	}
	if identity > 0 {
		p.Identity = &pb.HttpLocalRateLimit_Limit{RequestsPerSecond: identity}
	}
	for rps, ids := range overrides {
		o := &pb.HttpLocalRateLimit_Override{Limit: &pb.HttpLocalRateLimit_Limit{RequestsPerSecond: rps}, Clients: &pb.HttpLocalRateLimit_Override_ClientIdentities{}}
		for _, id := range ids {
			o.Clients.Identities = append(o.Clients.Identities, &pb.Identity{Name: id})
		}
		p.Overrides = append(p.Overrides, o)
	}
	return p
}

// TestRateLimit follows Linkerd's semantics with an explicit clock: each bucket holds one
// second of requests and refills at its rate; the total bucket is taken from first;
// clients without identity share one identity bucket; an override replaces the identity
// bucket of the clients it names, who share it.
func TestRateLimit(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := rateLimitFromProto(rlProto(10, 2, map[uint32][]string{5: {"vip-a", "vip-b"}}))
	if l == nil || l.Group != "policy.linkerd.io" || l.Kind != "HTTPLocalRateLimitPolicy" || l.Name != "web-rl" {
		t.Fatalf("compiled %+v", l)
	}
	steps := []struct {
		id, scope string
		ok        bool
	}{
		{"a", "", true}, {"a", "", true}, {"a", ScopeIdentity, false}, // 3 of 10 total tokens taken
		{"", "", true}, {"", "", true}, {"", ScopeIdentity, false}, // the unauthenticated share one bucket: 6
		{"vip-a", "", true}, {"vip-a", "", true}, {"vip-b", "", true}, // the override's clients share 5: 9
		{"vip-b", "", true},      // 10: the total bucket is now empty
		{"b", ScopeTotal, false}, // a fresh identity is refused by the total
	}
	for i, s := range steps {
		scope, ok := l.Allow(s.id, t0)
		if ok != s.ok || scope != s.scope {
			t.Fatalf("step %d (%q): scope %q ok %v, want %q %v", i, s.id, scope, ok, s.scope, s.ok)
		}
	}
	// A tenth of a second refills one total token and a fifth of an identity token.
	if _, ok := l.Allow("b", t0.Add(100*time.Millisecond)); !ok {
		t.Fatal("a refilled total token was refused")
	}
	if _, ok := l.Allow("a", t0.Add(200*time.Millisecond)); ok {
		t.Fatal("identity a got a token before its bucket refilled one")
	}
	// After a second every bucket is full again.
	t1 := t0.Add(time.Second)
	for i := 0; i < 2; i++ {
		if _, ok := l.Allow("a", t1); !ok {
			t.Fatalf("request %d of identity a after a second refused", i)
		}
	}
	if got, want := l.Describe(ScopeTotal, "x"), "total rate limit exceeded: 10rps"; got != want {
		t.Errorf("Describe total: %q, want %q", got, want)
	}
	if got, want := l.Describe(ScopeIdentity, "vip-a"), "override rate limit exceeded: 5rps"; got != want {
		t.Errorf("Describe override: %q, want %q", got, want)
	}
	if got, want := l.Describe(ScopeIdentity, "a"), "per-identity rate limit exceeded: 2rps"; got != want {
		t.Errorf("Describe identity: %q, want %q", got, want)
	}
}

func TestRateLimitFromProto(t *testing.T) {
	if l := rateLimitFromProto(nil); l != nil {
		t.Errorf("nil: %+v", l)
	}
	if l := rateLimitFromProto(rlProto(0, 0, nil)); l != nil {
		t.Errorf("no limits: %+v", l)
	}
	// Identity only: no total bucket.
	l := rateLimitFromProto(rlProto(0, 1, nil))
	t0 := time.Unix(0, 0)
	if _, ok := l.Allow("x", t0); !ok {
		t.Fatal("first request refused")
	}
	if scope, ok := l.Allow("x", t0); ok || scope != ScopeIdentity {
		t.Fatalf("second request: %q %v", scope, ok)
	}
	if _, ok := l.Allow("y", t0); !ok {
		t.Fatal("another identity refused")
	}
	// The limit reaches the Port of every HTTP protocol.
	for name, proto := range map[string]*pb.ProxyProtocol{
		"detect": {Kind: &pb.ProxyProtocol_Detect_{Detect: &pb.ProxyProtocol_Detect{HttpLocalRateLimit: rlProto(1, 0, nil)}}},
		"http1":  {Kind: &pb.ProxyProtocol_Http1_{Http1: &pb.ProxyProtocol_Http1{LocalRateLimit: rlProto(1, 0, nil)}}},
		"http2":  {Kind: &pb.ProxyProtocol_Http2_{Http2: &pb.ProxyProtocol_Http2{LocalRateLimit: rlProto(1, 0, nil)}}},
	} {
		p, err := FromProto(&pb.Server{Protocol: proto})
		if err != nil || p.RateLimit == nil {
			t.Errorf("%s: %v %+v", name, err, p)
		}
	}
}

func TestRateLimitPrunesFullBuckets(t *testing.T) {
	l := rateLimitFromProto(rlProto(0, 1, nil))
	t0 := time.Unix(0, 0)
	for i := 0; i < maxIdentityBuckets; i++ {
		l.Allow(string(rune('a'+i%26))+string(rune(i)), t0)
	}
	// A second later every bucket is full again and is dropped for the next identity.
	l.Allow("new", t0.Add(time.Second))
	if n := len(l.identity.buckets); n != 1 {
		t.Fatalf("%d buckets after pruning, want 1", n)
	}
}
