package authority

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		path string
		want Target
		err  bool
		out  bool
	}{
		{path: "web.emojivoto.svc.cluster.local:8080", want: Target{Service: "web", Namespace: "emojivoto", Port: 8080}},
		{path: "Web.EmojiVoto.svc.cluster.local.:80", want: Target{Service: "web", Namespace: "emojivoto", Port: 80}},
		{path: "web.emojivoto.svc.cluster.local", want: Target{Service: "web", Namespace: "emojivoto", Port: 80}},
		{path: "web-0.web.emojivoto.svc.cluster.local:8080", want: Target{Hostname: "web-0", Service: "web", Namespace: "emojivoto", Port: 8080}},
		{path: "10.1.2.3:8080", want: Target{IP: netip.MustParseAddr("10.1.2.3"), Port: 8080}},
		{path: "[fd00::1]:80", want: Target{IP: netip.MustParseAddr("fd00::1"), Port: 80}},
		{path: "example.com:443", out: true, err: true},
		{path: "a.b.c.d.svc.cluster.local:80", out: true, err: true},
		{path: "web.ns.svc.cluster.local:99999", err: true},
		{path: "web.ns.svc.cluster.local:abc", err: true},
		{path: "we_b.ns.svc.cluster.local:80", err: true},
		{path: "", err: true},
	} {
		got, err := Parse(tc.path, "cluster.local")
		if (err != nil) != tc.err || (tc.out && !errors.Is(err, ErrNotInCluster)) {
			t.Errorf("%q: err %v", tc.path, err)
			continue
		}
		if err == nil && got != tc.want {
			t.Errorf("%q: %+v, want %+v", tc.path, got, tc.want)
		}
	}
}

func TestParseContext(t *testing.T) {
	c, err := ParseContext(`{"ns":"emojivoto", "nodeName":"node-1", "pod":"web-0"}` + "\n")
	if err != nil || c != (Context{NS: "emojivoto", NodeName: "node-1", Pod: "web-0"}) {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := ParseContext(`{"ns":`); err == nil {
		t.Fatal("truncated token accepted")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"web.ns.svc.cluster.local:80", "10.0.0.1:80", "[::1]:1", "a.b.c.svc.cluster.local", ":", "x:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		tg, err := Parse(path, "cluster.local")
		if err == nil && tg.Port == 0 {
			t.Fatalf("%q parsed with port 0", path)
		}
		if err == nil && !tg.IP.IsValid() && (tg.Service == "" || tg.Namespace == "") {
			t.Fatalf("%q parsed without a service: %+v", path, tg)
		}
	})
}

func FuzzParseContext(f *testing.F) {
	f.Add(`{"ns":"a","nodeName":"b"}`)
	f.Fuzz(func(t *testing.T, token string) { _, _ = ParseContext(token) })
}
