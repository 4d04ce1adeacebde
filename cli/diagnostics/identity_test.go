package diagnostics

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestIdentity(t *testing.T) {
	addr := adminServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := Identity(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(1.9e9, 0).UTC(); !id.Expires.Equal(want) {
		t.Errorf("expires %v, want %v", id.Expires, want)
	}
}

func TestParseIdentity(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"# HELP x\nother 1\n", "not a proxy with identity"},
		{"identity_cert_expiration_timestamp_seconds abc\n", "line 1: bad certificate expiry"},
		{"identity_cert_expiration_timestamp_seconds 1\nidentity_cert_refresh_count -3\n", "line 2: bad refresh count"},
	} {
		if _, err := ParseIdentity([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.in, err, tc.want)
		}
	}
	id, err := ParseIdentity([]byte("identity_cert_expiration_timestamp_seconds 0\nidentity_cert_refresh_count 4\n"))
	if err != nil || !id.Expires.IsZero() || id.Refreshes != 4 {
		t.Errorf("no certificate yet: %+v %v", id, err)
	}
}

func FuzzParseIdentity(f *testing.F) {
	f.Add([]byte("identity_cert_expiration_timestamp_seconds 1.9e+09\nidentity_cert_refresh_count 2\n"))
	f.Add([]byte("identity_cert_expiration_timestamp_seconds NaN\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		id, err := ParseIdentity(in)
		if err == nil && id.Expires.Year() > 5000 {
			t.Fatalf("implausible expiry %v accepted", id.Expires)
		}
	})
}
