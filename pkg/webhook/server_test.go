package webhook

import (
	"flag"
	"path/filepath"
	"strings"
	"testing"
)

// TestFlagsServer: the webhook flags need both certificate files, name a file that does
// not load, and give a server on -addr serving the pair.
func TestFlagsServer(t *testing.T) {
	dir := t.TempDir()
	writeLeaf(t, newCA(t, "flags-ca"), dir)
	crt, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for _, c := range []struct {
		args []string
		want string // in the error; "" for none
	}{
		{nil, "-tls-cert and -tls-key are required"},
		{[]string{"-tls-cert", crt}, "-tls-cert and -tls-key are required"},
		{[]string{"-tls-cert", filepath.Join(dir, "missing.crt"), "-tls-key", key}, "missing.crt"},
		{[]string{"-addr", "127.0.0.1:9443", "-tls-cert", crt, "-tls-key", key}, ""},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		f := RegisterFlags(fs, "test-injector")
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		srv, err := f.Server()
		switch {
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%v: error %v, want one naming %q", c.args, err, c.want)
		case c.want == "" && err != nil:
			t.Errorf("%v: %v", c.args, err)
		case c.want == "":
			cert, err := srv.cert.GetCertificate(nil)
			if err != nil || cert.Leaf == nil && len(cert.Certificate) == 0 {
				t.Errorf("%v: no certificate served: %v", c.args, err)
			}
			if srv.Addr != "127.0.0.1:9443" || srv.Err() != nil {
				t.Errorf("%v: addr %q, err %v", c.args, srv.Addr, srv.Err())
			}
		}
	}
}
