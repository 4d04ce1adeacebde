package h2

import (
	"net/url"
	"strings"
)

// parseRequestPath sets *u to url.ParseRequestURI(path), leaving u unchanged on error.
// The common :path (an absolute path of characters a URL path never escapes, with an
// optional query of printable characters) is split in place, without the allocation of
// a new URL: the stream holds u. Anything else goes through url.ParseRequestURI, so the
// result is always the one net/http's server would give its handler.
func parseRequestPath(path string, u *url.URL) error {
	if p, q, ok := plainPath(path); ok {
		*u = url.URL{Path: p, RawQuery: q, ForceQuery: q == "" && len(p) < len(path)}
		return nil
	}
	parsed, err := url.ParseRequestURI(path)
	if err != nil {
		return err
	}
	*u = *parsed
	return nil
}

// plainPath splits path at its first '?' when it starts with '/', its path has only
// bytes url.URL keeps unescaped in a path (no '%', so Path is the path as sent and
// RawPath stays empty) and its query has no control byte.
func plainPath(path string) (p, q string, ok bool) {
	if path == "" || path[0] != '/' {
		return "", "", false
	}
	p, q, _ = strings.Cut(path, "?")
	for i := 0; i < len(p); i++ {
		if !pathByte[p[i]] {
			return "", "", false
		}
	}
	for i := 0; i < len(q); i++ {
		if c := q[i]; c < ' ' || c == 0x7f {
			return "", "", false
		}
	}
	return p, q, true
}

// pathByte lists the bytes a URL path keeps as they are (url.URL.EscapedPath escapes
// every other one): letters, digits, -_.~ and $&+,/:;=@.
var pathByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-_.~$&+,/:;=@" {
		t[c] = true
	}
	return t
}()

// PlainPath reports whether the request URI of the URL a request with this :path gets
// (url.URL.RequestURI) is path itself: a plain path (see plainPath), which a proxy may
// send on as it came.
func PlainPath(path string) bool {
	_, _, ok := plainPath(path)
	return ok
}
