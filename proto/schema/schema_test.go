package schema

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/fields.golden from the generated descriptors")

func TestMethodPaths(t *testing.T) {
	want := []string{
		"/io.linkerd.proxy.destination.Destination/Get",
		"/io.linkerd.proxy.destination.Destination/GetProfile",
		"/io.linkerd.proxy.identity.Identity/Certify",
		"/io.linkerd.proxy.inbound.InboundServerPolicies/GetPort",
		"/io.linkerd.proxy.inbound.InboundServerPolicies/WatchPort",
		"/io.linkerd.proxy.outbound.OutboundPolicies/Get",
		"/io.linkerd.proxy.outbound.OutboundPolicies/Watch",
		"/io.linkerd.proxy.tap.Tap/Observe",
	}
	if got := Methods(); !slices.Equal(got, want) {
		t.Fatalf("gRPC method paths changed:\n got %q\nwant %q", got, want)
	}
}

func TestFieldNumbersMatchGolden(t *testing.T) {
	got := strings.Join(Fields(), "\n") + "\n"
	path := filepath.Join("testdata", "fields.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for _, l := range wl {
			if !slices.Contains(gl, l) {
				t.Errorf("missing or changed: %s", l)
			}
		}
		for _, l := range gl {
			if !slices.Contains(wl, l) {
				t.Errorf("new or changed: %s", l)
			}
		}
		t.Fatal("the wire schema differs from testdata/fields.golden (run with -update only for an intended change)")
	}
}

// TestSpotChecks pins a few fields by hand, independently of the golden file.
func TestSpotChecks(t *testing.T) {
	fields := Fields()
	for _, want := range []string{
		"io.linkerd.proxy.identity.CertifyRequest.certificate_signing_request = 3 bytes",
		"io.linkerd.proxy.identity.CertifyResponse.valid_until = 3 google.protobuf.Timestamp",
		"io.linkerd.proxy.net.IPAddress.ipv4 = 1 fixed32 oneof ip",
		"io.linkerd.proxy.destination.WeightedAddr.tls_identity = 5 io.linkerd.proxy.destination.TlsIdentity",
		"io.linkerd.proxy.destination.GetDestination.context_token = 3 string",
	} {
		if !slices.Contains(fields, want) {
			t.Errorf("schema lacks %q", want)
		}
	}
}
