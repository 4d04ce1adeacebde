package inpolicy

import (
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	pb "github.com/l5d-go/l5d/proto/gen/inbound"
)

// RateLimit is a Server's HTTPLocalRateLimitPolicy as this proxy enforces it: token
// buckets (each holding one second of requests, refilled at its rate) for all clients
// together, for each client identity (clients without one share a bucket), and for the
// clients an override names (in place of their identity bucket). Like Linkerd's proxy,
// a request takes a token from the total bucket first; buckets start full and restart
// when the policy changes. It is safe for concurrent use.
type RateLimit struct {
	// Group, Kind and Name identify the policy in inbound_http_local_ratelimit_total.
	Group, Kind, Name string

	total     *rate.Limiter
	identity  *keyedLimiter
	overrides map[string]*rate.Limiter
}

// Rate limit scopes, the ratelimit_scope label of a refusal: "total" for the total
// limit, "identity" for an identity's or an override's.
const (
	ScopeTotal    = "total"
	ScopeIdentity = "identity"
)

// Allow takes a token for a request from a client with mesh identity id ("" without mesh
// TLS) at now. It returns the scope of the limit that refused it, or ok.
func (l *RateLimit) Allow(id string, now time.Time) (scope string, ok bool) {
	if l.total != nil && !l.total.AllowN(now, 1) {
		return ScopeTotal, false
	}
	if o, found := l.overrides[id]; found && id != "" {
		if !o.AllowN(now, 1) {
			return ScopeIdentity, false
		}
		return "", true
	}
	if l.identity != nil && !l.identity.allow(id, now) {
		return ScopeIdentity, false
	}
	return "", true
}

// Describe is the limit's rate for refusal messages, e.g. "total rate limit exceeded:
// 10rps".
func (l *RateLimit) Describe(scope, id string) string {
	var rps float64
	switch {
	case scope == ScopeTotal:
		rps = float64(l.total.Limit())
		return "total rate limit exceeded: " + strconv.FormatFloat(rps, 'f', -1, 64) + "rps"
	case l.overrides[id] != nil && id != "":
		rps = float64(l.overrides[id].Limit())
		return "override rate limit exceeded: " + strconv.FormatFloat(rps, 'f', -1, 64) + "rps"
	}
	return "per-identity rate limit exceeded: " + strconv.FormatFloat(float64(l.identity.rps), 'f', -1, 64) + "rps"
}

// bucket is a token bucket of rps requests per second holding rps tokens.
func bucket(rps uint32) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(rps), int(rps))
}

// maxIdentityBuckets bounds the identities tracked at once; past it, the buckets that have
// refilled completely (which a new bucket would equal) are dropped.
const maxIdentityBuckets = 10000

// keyedLimiter is one bucket per client identity.
type keyedLimiter struct {
	rps     rate.Limit
	burst   int
	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

func (k *keyedLimiter) allow(id string, now time.Time) bool {
	k.mu.Lock()
	b := k.buckets[id]
	if b == nil {
		if len(k.buckets) >= maxIdentityBuckets {
			k.prune(now)
		}
		b = rate.NewLimiter(k.rps, k.burst)
		k.buckets[id] = b
	}
	k.mu.Unlock()
	return b.AllowN(now, 1)
}

// prune drops full buckets, and every bucket when none is full; k.mu is held.
func (k *keyedLimiter) prune(now time.Time) {
	for id, b := range k.buckets {
		if b.TokensAt(now) >= float64(k.burst) {
			delete(k.buckets, id)
		}
	}
	if len(k.buckets) >= maxIdentityBuckets {
		clear(k.buckets)
	}
}

// rateLimitFromProto compiles a controller's HttpLocalRateLimit; nil when it limits
// nothing. A zero rate is no limit.
func rateLimitFromProto(p *pb.HttpLocalRateLimit) *RateLimit {
	if p == nil {
		return nil
	}
	l := &RateLimit{}
	l.Group, l.Kind, l.Name = rateLimitMeta(p)
	if rps := p.GetTotal().GetRequestsPerSecond(); rps > 0 {
		l.total = bucket(rps)
	}
	if rps := p.GetIdentity().GetRequestsPerSecond(); rps > 0 {
		l.identity = &keyedLimiter{rps: rate.Limit(rps), burst: int(rps), buckets: map[string]*rate.Limiter{}}
	}
	for _, o := range p.GetOverrides() {
		rps := o.GetLimit().GetRequestsPerSecond()
		if rps == 0 {
			continue
		}
		// The clients of one override share its bucket.
		b := bucket(rps)
		for _, id := range o.GetClients().GetIdentities() {
			if l.overrides == nil {
				l.overrides = map[string]*rate.Limiter{}
			}
			if _, dup := l.overrides[id.GetName()]; !dup {
				l.overrides[id.GetName()] = b
			}
		}
	}
	if l.total == nil && l.identity == nil && l.overrides == nil {
		return nil
	}
	return l
}

// rateLimitMeta returns the group, kind and name of the policy a rate limit came from.
func rateLimitMeta(p *pb.HttpLocalRateLimit) (group, kind, name string) {
	if d := p.GetMetadata().GetDefault(); d != "" {
		return "", "default", d
	}
	r := p.GetMetadata().GetResource()
	return r.GetGroup(), r.GetKind(), r.GetName()
}
