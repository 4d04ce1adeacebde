package clusterdns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// table is a Records from literal Services keyed "<ns>/<name>".
type table map[string]Service

func (t table) Service(ns, name string) (Service, bool) {
	s, ok := t[ns+"/"+name]
	return s, ok
}

func (t table) Namespace(ns string) bool {
	for k := range t {
		if len(k) > len(ns) && k[:len(ns)+1] == ns+"/" {
			return true
		}
	}
	return false
}

var addr = netip.MustParseAddr

var testRecords = table{
	"shop/catalog":  {Addrs: []netip.Addr{addr("10.96.4.7")}},
	"shop/dual":     {Addrs: []netip.Addr{addr("10.96.4.8"), addr("fd00:96::8")}},
	"shop/external": {ExternalName: "db.example.com"},
	"shop/db": {
		Addrs: []netip.Addr{addr("10.244.0.5"), addr("10.244.0.6")},
		Endpoints: []Endpoint{
			{Hostname: "db-0", Addrs: []netip.Addr{addr("10.244.0.5")}},
			{Addrs: []netip.Addr{addr("10.244.0.6")}},
		},
	},
	"shop/empty": {}, // headless, nothing ready yet
}

// query packs a question (with an EDNS(0) OPT record when edns) as a resolver would.
func query(t testing.TB, name string, qtype dnsmessage.Type, edns bool) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0x4242, RecursionDesired: true})
	b.StartQuestions()
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: qtype, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	b.StartAdditionals()
	if edns {
		var h dnsmessage.ResourceHeader
		h.SetEDNS0(4096, dnsmessage.RCodeSuccess, false)
		b.OPTResource(h, dnsmessage.OPTResource{})
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// answer runs one query through a Responder and parses the response.
func answer(t *testing.T, name string, qtype dnsmessage.Type) dnsmessage.Message {
	t.Helper()
	r := &Responder{Domain: "cluster.local", Records: testRecords}
	out, err := r.Answer(query(t, name, qtype, false), 512)
	if err != nil {
		t.Fatalf("%s %s: %v", name, qtype, err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(out); err != nil {
		t.Fatalf("%s %s: the response does not parse: %v", name, qtype, err)
	}
	if m.ID != 0x4242 || !m.Response || len(m.Questions) != 1 || m.Questions[0].Name.String() != name {
		t.Fatalf("%s %s: response header %+v questions %v do not match the query", name, qtype, m.Header, m.Questions)
	}
	return m
}

func addrsOf(m dnsmessage.Message) []string {
	var out []string
	for _, a := range m.Answers {
		switch b := a.Body.(type) {
		case *dnsmessage.AResource:
			out = append(out, netip.AddrFrom4(b.A).String())
		case *dnsmessage.AAAAResource:
			out = append(out, netip.AddrFrom16(b.AAAA).String())
		case *dnsmessage.CNAMEResource:
			out = append(out, "CNAME "+b.CNAME.String())
		}
	}
	return out
}

func TestAnswers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		qtype dnsmessage.Type
		rcode dnsmessage.RCode
		addrs []string
	}{
		{"catalog.shop.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.96.4.7"}},
		{"Catalog.Shop.SVC.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.96.4.7"}},
		{"catalog.shop.svc.cluster.local.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, nil}, // NODATA, not NXDOMAIN
		{"catalog.shop.svc.cluster.local.", dnsmessage.TypeTXT, dnsmessage.RCodeSuccess, nil},
		{"dual.shop.svc.cluster.local.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, []string{"fd00:96::8"}},
		{"dual.shop.svc.cluster.local.", dnsmessage.TypeALL, dnsmessage.RCodeSuccess, []string{"10.96.4.8", "fd00:96::8"}},
		{"db.shop.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.244.0.5", "10.244.0.6"}},
		{"db-0.db.shop.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.244.0.5"}},
		{"10-244-0-6.db.shop.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.244.0.6"}},
		{"db-1.db.shop.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeNameError, nil},
		{"empty.shop.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, nil},
		{"external.shop.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"CNAME db.example.com."}},
		{"10-244-0-9.shop.pod.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.244.0.9"}},
		{"10-244-0-9.nowhere.pod.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeNameError, nil},
		{"shop.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, nil},
		{"svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, nil},
		{"cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, nil},
		{"nowhere.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeNameError, nil},
		{"missing.shop.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeNameError, nil},
		{"_grpc_config.catalog.shop.svc.cluster.local.", dnsmessage.TypeTXT, dnsmessage.RCodeNameError, nil},
		{"a.b.c.d.e.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeNameError, nil},
		{"catalog.", dnsmessage.TypeA, dnsmessage.RCodeNameError, nil},
		{"example.com.", dnsmessage.TypeAAAA, dnsmessage.RCodeNameError, nil},
		{"notcluster.local.", dnsmessage.TypeA, dnsmessage.RCodeNameError, nil},
	} {
		m := answer(t, tc.name, tc.qtype)
		if m.RCode != tc.rcode || !slices.Equal(addrsOf(m), tc.addrs) {
			t.Errorf("%s %s: %s %v; want %s %v", tc.name, tc.qtype, m.RCode, addrsOf(m), tc.rcode, tc.addrs)
		}
		inDomain := tc.name == "cluster.local." || len(tc.name) > len(".cluster.local.") && tc.name[len(tc.name)-len(".cluster.local."):] == ".cluster.local."
		if inDomain && !m.Authoritative {
			t.Errorf("%s: not authoritative for the cluster domain", tc.name)
		}
		// Negative answers carry the zone's SOA, so resolvers may cache them.
		if inDomain && len(m.Answers) == 0 && (len(m.Authorities) != 1 || m.Authorities[0].Header.Type != dnsmessage.TypeSOA) {
			t.Errorf("%s %s: negative answer without the SOA: %v", tc.name, tc.qtype, m.Authorities)
		}
	}
}

func TestMalformedQueries(t *testing.T) {
	r := &Responder{Domain: "cluster.local", Records: testRecords}
	if _, err := r.Answer([]byte{1, 2, 3}, 512); err == nil {
		t.Error("a 3-byte message got an answer")
	}
	// A header that promises a question that is not there: FORMERR with the query's ID.
	out, err := r.Answer([]byte{0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7, 'c'}, 512)
	if err != nil {
		t.Fatal(err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(out); err != nil {
		t.Fatal(err)
	}
	if m.ID != 0xabcd || m.RCode != dnsmessage.RCodeFormatError {
		t.Errorf("truncated question: id %#x rcode %s; want FORMERR for id 0xabcd", m.ID, m.RCode)
	}
	// A response is never answered (no reflection loops).
	resp, _ := r.Answer(query(t, "catalog.shop.svc.cluster.local.", dnsmessage.TypeA, false), 512)
	if _, err := r.Answer(resp, 512); err == nil {
		t.Error("a response message got an answer")
	}
}

func TestTruncatesWhatDoesNotFit(t *testing.T) {
	many := Service{}
	for i := range 60 {
		many.Addrs = append(many.Addrs, netip.AddrFrom4([4]byte{10, 244, 1, byte(i)}))
	}
	r := &Responder{Domain: "cluster.local", Records: table{"big/many": many}}
	q := query(t, "many.big.svc.cluster.local.", dnsmessage.TypeA, false)
	var m dnsmessage.Message
	out, _ := r.Answer(q, 512)
	if err := m.Unpack(out); err != nil || !m.Truncated || len(m.Answers) != 0 {
		t.Errorf("60 addresses over UDP: truncated %v with %d answers (%v); want TC and none", m.Truncated, len(m.Answers), err)
	}
	out, _ = r.Answer(q, 65535)
	if err := m.Unpack(out); err != nil || m.Truncated || len(m.Answers) != 60 {
		t.Errorf("60 addresses over TCP: truncated %v with %d answers (%v); want all 60", m.Truncated, len(m.Answers), err)
	}
	// With EDNS(0) the client's larger buffer (capped at 1232) holds them.
	out, _ = r.Answer(query(t, "many.big.svc.cluster.local.", dnsmessage.TypeA, true), 512)
	if err := m.Unpack(out); err != nil || m.Truncated || len(m.Answers) != 60 {
		t.Errorf("60 addresses over UDP with EDNS(0): truncated %v with %d answers (%v); want all 60", m.Truncated, len(m.Answers), err)
	}
}

// TestGoResolver runs Go's own DNS client against the server on loopback, as a pod's
// program would use it through resolv.conf: search-list expansion is the caller's, so
// names here are fully qualified.
func TestGoResolver(t *testing.T) {
	pc, ln := listenUDPAndTCP(t)
	s := Serve(&Responder{Domain: "cluster.local", Records: testRecords}, pc, ln, nil)
	defer s.Close()
	for _, network := range []string{"udp", "tcp"} {
		res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, pc.LocalAddr().String())
		}}
		ctx := context.Background()
		got, err := res.LookupHost(ctx, "db.shop.svc.cluster.local.")
		slices.Sort(got)
		if err != nil || !slices.Equal(got, []string{"10.244.0.5", "10.244.0.6"}) {
			t.Errorf("%s: db.shop.svc.cluster.local: %v %v", network, got, err)
		}
		_, err = res.LookupHost(ctx, "missing.shop.svc.cluster.local.")
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			t.Errorf("%s: missing name: %v; want not found", network, err)
		}
		_, err = res.LookupTXT(ctx, "_grpc_config.catalog.shop.svc.cluster.local.")
		if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			t.Errorf("%s: gRPC service-config TXT: %v; want not found", network, err)
		}
	}
}

func FuzzAnswer(f *testing.F) {
	f.Add(query(f, "catalog.shop.svc.cluster.local.", dnsmessage.TypeA, true))
	f.Add(query(f, "db-0.db.shop.svc.cluster.local.", dnsmessage.TypeAAAA, false))
	f.Add(query(f, "10-244-0-9.shop.pod.cluster.local.", dnsmessage.TypeALL, true))
	f.Add(query(f, "external.shop.svc.cluster.local.", dnsmessage.TypeA, false))
	f.Add(query(f, "example.com.", dnsmessage.TypeTXT, false))
	f.Add([]byte{0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7, 'c'})
	f.Add([]byte{})
	r := &Responder{Domain: "cluster.local", Records: testRecords}
	f.Fuzz(func(t *testing.T, msg []byte) {
		for _, size := range []int{512, 65535} {
			out, err := r.Answer(msg, size)
			if err != nil {
				continue
			}
			if len(out) > size && size == 512 {
				var p dnsmessage.Parser
				if _, err := p.Start(msg); err == nil {
					// An EDNS(0) query may raise the limit, never past 1232.
					if len(out) > maxUDPPayload {
						t.Fatalf("a %d-byte UDP response", len(out))
					}
				}
			}
			var m dnsmessage.Message
			if err := m.Unpack(out); err != nil {
				t.Fatalf("the response does not parse: %v", err)
			}
			if !m.Response || m.ID != uint16(msg[0])<<8|uint16(msg[1]) {
				t.Fatalf("response header %+v does not answer the query", m.Header)
			}
		}
	})
}

// listenUDPAndTCP listens on one loopback port for both UDP and TCP, as a DNS server does:
// the kernel picks a free UDP port, which another test's TCP socket may hold, so it tries
// again with another port then.
func listenUDPAndTCP(t *testing.T) (net.PacketConn, net.Listener) {
	t.Helper()
	var lastErr error
	for range 50 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln
		}
		pc.Close()
		lastErr = err
	}
	t.Fatalf("no loopback port free for both UDP and TCP: %v", lastErr)
	return nil, nil
}
