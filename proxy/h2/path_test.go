package h2

import (
	"math/rand/v2"
	"net/url"
	"reflect"
	"testing"
)

var requestPaths = []string{
	"/", "/books", "/a/b?c=d&e=f", "/a?", "/a??", "/a?b?c", "//x", "/a%20b", "/a%2Fb",
	"/a b", "/a\x00", "/a?b\x7f", "/a?b c", "/%zz", "/a#frag", "/a!b*c(d)'", "/é",
	"*", "", "books", "http://h/p?q", "/~user/$x&y+z,w:v;u=t@s", "/a?%zz", "/.././a",
}

// TestParseRequestPathAsNetURL: parseRequestPath gives url.ParseRequestURI's URL, or
// its failure, for the paths the fast split takes and those it leaves to net/url.
func TestParseRequestPathAsNetURL(t *testing.T) {
	paths := append([]string(nil), requestPaths...)
	// Random paths over an alphabet that mixes kept, escaped and special bytes.
	const alphabet = "/?abZ09-_.~$&+,:;=@%2F !*'()#\x00\x7f\xff"
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		b := []byte{'/'}
		for range rng.IntN(12) {
			b = append(b, alphabet[rng.IntN(len(alphabet))])
		}
		paths = append(paths, string(b))
	}
	for _, path := range paths {
		checkRequestPath(t, path)
	}
}

// FuzzParseRequestPath: any :path parses as net/url parses it.
func FuzzParseRequestPath(f *testing.F) {
	for _, p := range requestPaths {
		f.Add(p)
	}
	f.Fuzz(checkRequestPath)
}

func checkRequestPath(t *testing.T, path string) {
	want, wantErr := url.ParseRequestURI(path)
	var got url.URL
	err := parseRequestPath(path, &got)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%q: error %v, net/url's %v", path, err, wantErr)
	}
	if err != nil {
		if got != (url.URL{}) {
			t.Fatalf("%q: failed but set the URL to %#v", path, got)
		}
		return
	}
	if !reflect.DeepEqual(&got, want) {
		t.Fatalf("%q: %#v, net/url's %#v", path, got, *want)
	}
}
