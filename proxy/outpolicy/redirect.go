package outpolicy

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/l5d-go/l5d/proto/gen/httproute"
	"github.com/l5d-go/l5d/proto/gen/httptypes"
)

// redirect is a compiled RequestRedirect filter: the request is answered with status
// and a Location built from the request with the filter's replacements.
type redirect struct {
	status       int
	scheme, host string
	port         int
	// fullPath replaces the whole path when set; prefix replaces the prefix the rule
	// matched (one of prefixes, the longest that matches).
	fullPath, prefix *string
	prefixes         []string
}

func compileRedirect(rr *httproute.RequestRedirect) (*redirect, error) {
	rd := &redirect{status: int(rr.GetStatus()), host: strings.ToLower(rr.GetHost()), port: int(rr.GetPort())}
	if rd.status == 0 {
		rd.status = http.StatusFound
	}
	if rd.status < 300 || rd.status > 399 {
		return nil, fmt.Errorf("redirect status %d is not a 3xx status", rr.GetStatus())
	}
	if rd.port > 65535 {
		return nil, fmt.Errorf("redirect port %d is not a TCP port", rr.GetPort())
	}
	if rd.host != "" && !validHost(rd.host) {
		return nil, fmt.Errorf("redirect host %q is not a host name", rr.GetHost())
	}
	if s := rr.GetScheme(); s != nil {
		if _, ok := s.GetType().(*httptypes.Scheme_Unregistered); ok {
			return nil, fmt.Errorf("redirect scheme %q is not http or https", s.GetUnregistered())
		}
		rd.scheme = "http"
		if s.GetRegistered() == httptypes.Scheme_HTTPS {
			rd.scheme = "https"
		}
	}
	switch p := rr.GetPath().GetReplace().(type) {
	case *httproute.PathModifier_Full:
		if !validPath(p.Full) {
			return nil, fmt.Errorf("redirect path %q is not an absolute path", p.Full)
		}
		rd.fullPath = &p.Full
	case *httproute.PathModifier_Prefix:
		if !validPath(p.Prefix) {
			return nil, fmt.Errorf("redirect prefix %q is not an absolute path", p.Prefix)
		}
		rd.prefix = &p.Prefix
	}
	return rd, nil
}

func validHost(h string) bool {
	for _, c := range h {
		if !(c == '.' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return len(h) <= 253
}

func validPath(p string) bool {
	return strings.HasPrefix(p, "/") && !strings.ContainsAny(p, "?# \r\n\x00")
}

// location is where r is redirected.
func (rd *redirect) location(r *http.Request) string {
	scheme := rd.scheme
	if scheme == "" {
		scheme = "http"
	}
	host, port := r.Host, ""
	if h, p, err := net.SplitHostPort(r.Host); err == nil {
		host, port = h, p
	}
	if rd.host != "" {
		host = rd.host
	}
	switch {
	case rd.port != 0:
		port = strconv.Itoa(rd.port)
	case rd.scheme != "":
		port = "" // a new scheme takes its well-known port
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	path := "/"
	if r.URL != nil && r.URL.Path != "" {
		path = r.URL.Path
	}
	switch {
	case rd.fullPath != nil:
		path = *rd.fullPath
	case rd.prefix != nil:
		path = replacePrefix(path, rd.prefixes, *rd.prefix)
	}
	loc := scheme + "://" + host
	if port != "" {
		loc += ":" + port
	}
	loc += path
	if r.URL != nil && r.URL.RawQuery != "" {
		loc += "?" + r.URL.RawQuery
	}
	return loc
}

// replacePrefix replaces the longest of the rule's matched prefixes that path starts
// with (whole segments) by repl.
func replacePrefix(path string, prefixes []string, repl string) string {
	best := ""
	for _, p := range prefixes {
		p = strings.TrimSuffix(p, "/")
		if strings.HasPrefix(path, p) && (len(path) == len(p) || path[len(p)] == '/') && len(p) >= len(best) {
			best = p
		}
	}
	rest := path[len(best):]
	if rest == "" {
		return repl
	}
	return strings.TrimSuffix(repl, "/") + rest
}
