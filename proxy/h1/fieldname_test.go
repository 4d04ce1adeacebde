package h1

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
)

// TestWriteFieldName: the name written is http.CanonicalHeaderKey's for any token, short
// or longer than a buffer.
func TestWriteFieldName(t *testing.T) {
	const token = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"content-type", "x-b3-sampled", "l5d-client-id", "-a-", "a--b", "ETAG", "www-authenticate", strings.Repeat("a-b", 4000)}
	for range 2000 {
		b := make([]byte, 1+rng.IntN(40))
		for i := range b {
			b[i] = token[rng.IntN(len(token))]
		}
		names = append(names, string(b))
	}
	for _, name := range names {
		var out bytes.Buffer
		w := NewWriter(&out)
		w.WriteString("x")
		w.WriteFieldName(name)
		w.Flush()
		if got, want := strings.TrimPrefix(out.String(), "x"), http.CanonicalHeaderKey(name); got != want {
			t.Errorf("WriteFieldName(%.40q) wrote %.40q, want %.40q", name, got, want)
		}
	}
}
