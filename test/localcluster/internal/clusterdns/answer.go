// Package clusterdns is the local cluster's DNS responder: it answers queries for
// Service and pod names under the cluster domain from what a Records says (the cluster's
// informer caches), and answers every other name at once with NXDOMAIN, as a cluster DNS
// server with no upstream would. It stands in for CoreDNS's kubernetes plugin.
package clusterdns

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// Records is what the responder knows about the cluster. Implementations must be safe for
// concurrent use.
type Records interface {
	// Service returns Service name in namespace ns, and false when there is no such Service.
	Service(ns, name string) (Service, bool)
	// Namespace reports whether namespace ns exists, which makes <ns>.svc.<domain> a name
	// with no records rather than a name that does not exist.
	Namespace(ns string) bool
}

// Service is what DNS publishes for one Service.
type Service struct {
	// ExternalName, when set, is the target of the Service name's CNAME record (a Service
	// of type ExternalName); the other fields are then ignored.
	ExternalName string
	// Addrs are the Service name's addresses: its cluster IPs, or for a headless Service
	// its ready endpoints' addresses.
	Addrs []netip.Addr
	// Endpoints are a headless Service's ready endpoints, each also published as
	// <hostname>.<svc>.<ns>.svc.<domain> (or <dashed-ip>.<svc>... without a hostname).
	Endpoints []Endpoint
}

// Endpoint is one endpoint of a headless Service.
type Endpoint struct {
	// Hostname is the endpoint's hostname (the pod's spec.hostname when its subdomain is
	// the Service); empty when it has none.
	Hostname string
	// Addrs are the endpoint's addresses.
	Addrs []netip.Addr
}

// TTL is the time to live of every answer, in seconds (CoreDNS's default).
const TTL = 5

// Responder answers DNS queries for one cluster domain. Its zero value is not usable;
// Domain and Records must be set. Its methods are safe for concurrent use.
type Responder struct {
	// Domain is the cluster domain without a trailing dot, such as cluster.local.
	Domain string
	// Records is where names under Domain are looked up.
	Records Records
}

// maxUDPPayload is the largest UDP response sent to a client that advertises more through
// EDNS(0), the size DNS flag day 2020 recommends.
const maxUDPPayload = 1232

// errNotQuery is returned for messages that get no answer at all.
var errNotQuery = errors.New("not a DNS query")

// Answer returns the response to the DNS message query. maxSize is the largest response
// the transport carries: 512 for UDP (raised to the client's EDNS(0) payload size, at
// most 1232), 65535 for TCP; an answer that does not fit is truncated (TC set, no
// records) so the client retries over TCP. A message that cannot be parsed as far as its
// header, or that is itself a response, gets no answer: Answer returns an error. Any other
// malformed query gets a FORMERR response and unsupported operations NOTIMP.
func (r *Responder) Answer(query []byte, maxSize int) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNotQuery, err)
	}
	if h.Response {
		return nil, fmt.Errorf("%w: the message is a response", errNotQuery)
	}
	reply := dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		reply.RCode = dnsmessage.RCodeFormatError
		return finish(reply, nil, nil, nil, false)
	}
	q := qs[0]
	edns, ednsSize, err := readEDNS(&p)
	if err != nil {
		reply.RCode = dnsmessage.RCodeFormatError
		return finish(reply, &q, nil, nil, false)
	}
	if edns && maxSize < 65535 {
		maxSize = max(512, min(ednsSize, maxUDPPayload))
	}
	if h.OpCode != 0 {
		reply.RCode = dnsmessage.RCodeNotImplemented
		return finish(reply, &q, nil, nil, edns)
	}
	if q.Class != dnsmessage.ClassINET && q.Class != dnsmessage.ClassANY {
		reply.RCode = dnsmessage.RCodeRefused
		return finish(reply, &q, nil, nil, edns)
	}
	res := r.lookup(q.Name.String(), q.Type)
	reply.RCode = res.rcode
	reply.Authoritative = res.authoritative
	var authority []dnsmessage.Resource
	if res.authoritative && len(res.answers) == 0 {
		authority = []dnsmessage.Resource{r.soa()}
	}
	answers := make([]dnsmessage.Resource, 0, len(res.answers))
	for _, a := range res.answers {
		a.Header.Name = q.Name
		answers = append(answers, a)
	}
	msg, err := finish(reply, &q, answers, authority, edns)
	if err != nil {
		return nil, err
	}
	if len(msg) > maxSize {
		reply.Truncated = true
		return finish(reply, &q, nil, nil, edns)
	}
	return msg, nil
}

// readEDNS skips the answer and authority sections and looks for an OPT record among the
// additional records, returning whether there is one and the payload size it advertises.
func readEDNS(p *dnsmessage.Parser) (bool, int, error) {
	if err := p.SkipAllAnswers(); err != nil {
		return false, 0, err
	}
	if err := p.SkipAllAuthorities(); err != nil {
		return false, 0, err
	}
	for {
		h, err := p.AdditionalHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			return false, 0, nil
		}
		if err != nil {
			return false, 0, err
		}
		if h.Type == dnsmessage.TypeOPT {
			return true, int(h.Class), nil
		}
		if err := p.SkipAdditional(); err != nil {
			return false, 0, err
		}
	}
}

// finish builds a response: the question (when known), answers, authority records and
// an OPT record when the query had one.
func finish(h dnsmessage.Header, q *dnsmessage.Question, answers, authority []dnsmessage.Resource, edns bool) ([]byte, error) {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), h)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if q != nil {
		if err := b.Question(*q); err != nil {
			return nil, fmt.Errorf("packing the question: %w", err)
		}
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	for _, a := range answers {
		if err := addResource(&b, a); err != nil {
			return nil, err
		}
	}
	if err := b.StartAuthorities(); err != nil {
		return nil, err
	}
	for _, a := range authority {
		if err := addResource(&b, a); err != nil {
			return nil, err
		}
	}
	if err := b.StartAdditionals(); err != nil {
		return nil, err
	}
	if edns {
		var oh dnsmessage.ResourceHeader
		if err := oh.SetEDNS0(maxUDPPayload, dnsmessage.RCodeSuccess, false); err != nil {
			return nil, err
		}
		if err := b.OPTResource(oh, dnsmessage.OPTResource{}); err != nil {
			return nil, fmt.Errorf("packing the OPT record: %w", err)
		}
	}
	msg, err := b.Finish()
	if err != nil {
		return nil, fmt.Errorf("packing the response: %w", err)
	}
	return msg, nil
}

// addResource adds one of the record types the responder makes.
func addResource(b *dnsmessage.Builder, r dnsmessage.Resource) error {
	var err error
	switch body := r.Body.(type) {
	case *dnsmessage.AResource:
		err = b.AResource(r.Header, *body)
	case *dnsmessage.AAAAResource:
		err = b.AAAAResource(r.Header, *body)
	case *dnsmessage.CNAMEResource:
		err = b.CNAMEResource(r.Header, *body)
	case *dnsmessage.SOAResource:
		err = b.SOAResource(r.Header, *body)
	default:
		err = fmt.Errorf("unexpected record type %T", r.Body)
	}
	if err != nil {
		return fmt.Errorf("packing a %s record: %w", r.Header.Type, err)
	}
	return nil
}

// result is the outcome of looking a name up.
type result struct {
	rcode         dnsmessage.RCode
	authoritative bool
	answers       []dnsmessage.Resource // owner names are filled in by Answer
}

// lookup answers question name (with its trailing dot) and type.
func (r *Responder) lookup(name string, qtype dnsmessage.Type) result {
	domain := strings.ToLower(strings.TrimSuffix(r.Domain, "."))
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	var rel string
	switch {
	case name == domain:
	case strings.HasSuffix(name, "."+domain):
		rel = strings.TrimSuffix(name, "."+domain)
	default:
		// Not ours, and there is nobody to ask: the name does not exist for this cluster.
		return result{rcode: dnsmessage.RCodeNameError}
	}
	nx := result{rcode: dnsmessage.RCodeNameError, authoritative: true}
	nodata := result{rcode: dnsmessage.RCodeSuccess, authoritative: true}
	var labels []string
	if rel != "" {
		labels = strings.Split(rel, ".")
	}
	n := len(labels)
	switch {
	case n == 0:
		if qtype == dnsmessage.TypeSOA || qtype == dnsmessage.TypeALL {
			return result{rcode: dnsmessage.RCodeSuccess, authoritative: true, answers: []dnsmessage.Resource{r.soa()}}
		}
		return nodata
	case n == 1 && (labels[0] == "svc" || labels[0] == "pod"):
		return nodata
	case n == 2 && labels[1] == "svc":
		if r.Records.Namespace(labels[0]) {
			return nodata
		}
		return nx
	case n == 2 && labels[1] == "pod":
		if r.Records.Namespace(labels[0]) {
			return nodata
		}
		return nx
	case n == 3 && labels[2] == "svc":
		svc, ok := r.Records.Service(labels[1], labels[0])
		if !ok {
			return nx
		}
		if svc.ExternalName != "" {
			target, err := dnsmessage.NewName(strings.TrimSuffix(svc.ExternalName, ".") + ".")
			if err != nil {
				return nodata
			}
			return result{rcode: dnsmessage.RCodeSuccess, authoritative: true, answers: []dnsmessage.Resource{{
				Header: dnsmessage.ResourceHeader{Type: dnsmessage.TypeCNAME, Class: dnsmessage.ClassINET, TTL: TTL},
				Body:   &dnsmessage.CNAMEResource{CNAME: target},
			}}}
		}
		return addrResult(svc.Addrs, qtype)
	case n == 4 && labels[3] == "svc":
		svc, ok := r.Records.Service(labels[2], labels[1])
		if !ok {
			return nx
		}
		var addrs []netip.Addr
		found := false
		for _, ep := range svc.Endpoints {
			if endpointNamed(ep, labels[0]) {
				found = true
				addrs = append(addrs, ep.Addrs...)
			}
		}
		if !found {
			return nx
		}
		return addrResult(addrs, qtype)
	case n == 3 && labels[2] == "pod":
		// <dashed-ip>.<ns>.pod.<domain>: the address spelled in the name (CoreDNS's
		// "pods insecure" mode), for a namespace that exists.
		addr, ok := parseDashed(labels[0])
		if !ok || !r.Records.Namespace(labels[1]) {
			return nx
		}
		return addrResult([]netip.Addr{addr}, qtype)
	}
	return nx
}

// endpointNamed reports whether label names ep: its hostname, or its address with dashes.
func endpointNamed(ep Endpoint, label string) bool {
	if ep.Hostname != "" {
		return strings.EqualFold(ep.Hostname, label)
	}
	for _, a := range ep.Addrs {
		if d, ok := parseDashed(label); ok && d == a {
			return true
		}
	}
	return false
}

// parseDashed parses an address written with dashes for dots or colons (10-244-0-5,
// fd00-244--5).
func parseDashed(label string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(strings.ReplaceAll(label, "-", ".")); err == nil && a.Is4() {
		return a, true
	}
	if a, err := netip.ParseAddr(strings.ReplaceAll(label, "-", ":")); err == nil && a.Is6() && !a.Is4In6() && a.Zone() == "" {
		return a, true
	}
	return netip.Addr{}, false
}

// addrResult answers an existing name with addrs: A records for an A query, AAAA for
// AAAA, both for ANY, and no records (NODATA) for other types.
func addrResult(addrs []netip.Addr, qtype dnsmessage.Type) result {
	res := result{rcode: dnsmessage.RCodeSuccess, authoritative: true}
	seen := map[netip.Addr]bool{}
	for _, a := range addrs {
		a = a.Unmap()
		if seen[a] {
			continue
		}
		seen[a] = true
		switch {
		case a.Is4() && (qtype == dnsmessage.TypeA || qtype == dnsmessage.TypeALL):
			res.answers = append(res.answers, dnsmessage.Resource{
				Header: dnsmessage.ResourceHeader{Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: TTL},
				Body:   &dnsmessage.AResource{A: a.As4()},
			})
		case a.Is6() && (qtype == dnsmessage.TypeAAAA || qtype == dnsmessage.TypeALL):
			res.answers = append(res.answers, dnsmessage.Resource{
				Header: dnsmessage.ResourceHeader{Type: dnsmessage.TypeAAAA, Class: dnsmessage.ClassINET, TTL: TTL},
				Body:   &dnsmessage.AAAAResource{AAAA: a.As16()},
			})
		}
	}
	return res
}

// soa is the cluster domain's SOA record, sent with negative answers so resolvers know
// how long to remember them.
func (r *Responder) soa() dnsmessage.Resource {
	domain := strings.TrimSuffix(r.Domain, ".") + "."
	return dnsmessage.Resource{
		Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(domain), Type: dnsmessage.TypeSOA, Class: dnsmessage.ClassINET, TTL: TTL},
		Body: &dnsmessage.SOAResource{
			NS:      dnsmessage.MustNewName("ns.dns." + domain),
			MBox:    dnsmessage.MustNewName("hostmaster." + domain),
			Serial:  1,
			Refresh: 7200,
			Retry:   1800,
			Expire:  86400,
			MinTTL:  TTL,
		},
	}
}
