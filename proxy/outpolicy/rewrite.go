package outpolicy

import (
	"fmt"
	"net/http"

	"github.com/l5d-go/l5d/proto/gen/httproute"
)

// rewrite is a compiled URLRewrite filter: the request's Host and/or path are replaced
// before it is forwarded; the query is kept.
type rewrite struct {
	host string
	// fullPath replaces the whole path when set; prefix replaces the prefix the rule
	// matched (one of prefixes, the longest that matches), as a redirect's does.
	fullPath, prefix *string
	prefixes         []string
}

func compileRewrite(rw *httproute.UrlRewrite) (*rewrite, error) {
	out := &rewrite{host: rw.GetHost()}
	if out.host != "" && !validHost(out.host) {
		return nil, fmt.Errorf("rewrite host %q is not a host name", rw.GetHost())
	}
	switch p := rw.GetPath().GetReplace().(type) {
	case *httproute.PathModifier_Full:
		if !validPath(p.Full) {
			return nil, fmt.Errorf("rewrite path %q is not an absolute path", p.Full)
		}
		out.fullPath = &p.Full
	case *httproute.PathModifier_Prefix:
		if !validPath(p.Prefix) {
			return nil, fmt.Errorf("rewrite prefix %q is not an absolute path", p.Prefix)
		}
		out.prefix = &p.Prefix
	}
	return out, nil
}

// apply rewrites r in place.
func (rw *rewrite) apply(r *http.Request) {
	if rw.host != "" {
		r.Host = rw.host
	}
	switch {
	case rw.fullPath != nil:
		r.URL.Path, r.URL.RawPath = *rw.fullPath, ""
	case rw.prefix != nil:
		path := r.URL.Path
		if path == "" {
			path = "/"
		}
		r.URL.Path, r.URL.RawPath = replacePrefix(path, rw.prefixes, *rw.prefix), ""
	}
}
