package outbound

import "testing"

func TestParseAuthority(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Target
		wantErr bool
	}{
		{in: "web.emojivoto.svc.cluster.local:80", want: Target{Name: "web", Namespace: "emojivoto", Port: 80}},
		{in: "web.emojivoto.svc.cluster.local.:8080", want: Target{Name: "web", Namespace: "emojivoto", Port: 8080}},
		{in: "web.emojivoto.svc.cluster.local", wantErr: true},
		{in: "web.emojivoto.svc.cluster.local:0", wantErr: true},
		{in: "web.emojivoto.svc.cluster.local:70000", wantErr: true},
		{in: "web.svc.cluster.local:80", wantErr: true},
		{in: "a.b.c.svc.cluster.local:80", wantErr: true},
		{in: "example.com:80", wantErr: true},
		{in: "", wantErr: true},
	} {
		got, err := ParseAuthority(tc.in, "cluster.local")
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("ParseAuthority(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func FuzzParseAuthority(f *testing.F) {
	for _, s := range []string{"web.ns.svc.cluster.local:80", "web.ns.svc.cluster.local", ":", "a.b.svc.cluster.local:65536", "..svc.cluster.local:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseAuthority(s, "cluster.local")
		if err == nil && (tg.Name == "" || tg.Namespace == "" || tg.Port == 0) {
			t.Fatalf("ParseAuthority(%q) accepted an incomplete target %+v", s, tg)
		}
	})
}
