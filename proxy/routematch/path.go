package routematch

import "strings"

// NormalizePath returns the form of a request path that route matching compares, from
// the path as it was sent (percent-encoded, without the query; url.URL.EscapedPath). It
// is the one normalization every route matcher of the proxy uses (inbound routes,
// outbound policy and profile routes), whatever protocol and code path the request
// arrived on, so that a request cannot look like one path to a matcher and like another
// to the application.
//
// Percent-encoded unreserved characters (RFC 3986 section 2.3: letters, digits, "-",
// ".", "_", "~") are decoded, as RFC 3986 section 6.2.2 says they are equivalent to the
// characters themselves; other percent-encodings are kept with upper-case hex digits.
// Nothing else changes: "/" separates segments, an encoded "%2F" does not.
//
// ok is false when the path cannot be normalized safely, because applications disagree
// on what it names: an invalid percent-encoding, an encoded "/" or "\" or NUL, a literal
// "\", or a "." or ".." segment (literal or encoded; clients remove them before sending,
// RFC 3986 section 5.2.4). path is then the best effort normalization (the input when an
// encoding is invalid). A path that is already normal is returned as is, without
// allocating.
func NormalizePath(escaped string) (path string, ok bool) {
	// Without percent-encodings there is nothing to decode: only check the segments.
	if strings.IndexByte(escaped, '%') < 0 {
		return escaped, strings.IndexByte(escaped, '\\') < 0 && !hasDotSegment(escaped)
	}
	ok = true
	var b strings.Builder
	b.Grow(len(escaped))
	for i := 0; i < len(escaped); i++ {
		c := escaped[i]
		switch c {
		case '\\':
			ok = false
		case '%':
			if i+2 >= len(escaped) || !isHex(escaped[i+1]) || !isHex(escaped[i+2]) {
				return escaped, false
			}
			d := unhex(escaped[i+1])<<4 | unhex(escaped[i+2])
			i += 2
			if isUnreserved(d) {
				b.WriteByte(d)
				continue
			}
			if d == '/' || d == '\\' || d == 0 {
				ok = false
			}
			const hex = "0123456789ABCDEF"
			b.WriteByte('%')
			b.WriteByte(hex[d>>4])
			b.WriteByte(hex[d&15])
			continue
		}
		b.WriteByte(c)
	}
	path = b.String()
	if ok && hasDotSegment(path) {
		ok = false
	}
	if path == escaped {
		path = escaped // keep the caller's string
	}
	return path, ok
}

// hasDotSegment reports whether a decoded path has a "." or ".." segment.
func hasDotSegment(p string) bool {
	if !strings.Contains(p, ".") {
		return false
	}
	for p != "" {
		var seg string
		i := strings.IndexByte(p, '/')
		if i < 0 {
			seg, p = p, ""
		} else {
			seg, p = p[:i], p[i+1:]
		}
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
