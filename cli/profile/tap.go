package profile

import (
	"regexp"
	"sort"
	"strings"

	"github.com/l5d-go/l5d/pkg/apis/serviceprofile"
)

// Request is a request seen by tap: its method and path (a query string is ignored).
type Request struct{ Method, Path string }

// FromRequests builds one route per distinct method and path among reqs, as Linkerd's
// `viz profile --tap` does: named "METHOD /path", matching that method and exactly that
// path, sorted by path then method, at most limit of them (the most frequent first when
// there are more; no limit when limit <= 0).
func FromRequests(reqs []Request, limit int) []serviceprofile.RouteSpec {
	count := map[Request]int{}
	for _, r := range reqs {
		path, _, _ := strings.Cut(r.Path, "?")
		if path == "" || r.Method == "" {
			continue
		}
		count[Request{Method: strings.ToUpper(r.Method), Path: path}]++
	}
	seen := make([]Request, 0, len(count))
	for r := range count {
		seen = append(seen, r)
	}
	byPath := func(a, b Request) bool {
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Method < b.Method
	}
	if limit > 0 && len(seen) > limit {
		sort.Slice(seen, func(i, j int) bool {
			if count[seen[i]] != count[seen[j]] {
				return count[seen[i]] > count[seen[j]]
			}
			return byPath(seen[i], seen[j])
		})
		seen = seen[:limit]
	}
	sort.Slice(seen, func(i, j int) bool { return byPath(seen[i], seen[j]) })
	routes := make([]serviceprofile.RouteSpec, 0, len(seen))
	for _, r := range seen {
		routes = append(routes, serviceprofile.RouteSpec{
			Name: r.Method + " " + r.Path,
			Condition: &serviceprofile.RequestMatch{All: []*serviceprofile.RequestMatch{
				{PathRegex: regexp.QuoteMeta(r.Path)}, {Method: r.Method},
			}},
		})
	}
	return routes
}
