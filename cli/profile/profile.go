// Package profile builds Linkerd ServiceProfiles (linkerd.io/v1alpha2) from API
// descriptions: OpenAPI/Swagger documents and protobuf service definitions.
package profile

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/l5d-go/l5d/pkg/apis/serviceprofile"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// New returns an empty ServiceProfile for service in namespace, named by its FQDN.
func New(service, namespace, clusterDomain string) *serviceprofile.ServiceProfile {
	return &serviceprofile.ServiceProfile{
		TypeMeta: metav1.TypeMeta{APIVersion: serviceprofile.Group + "/" + serviceprofile.Version, Kind: serviceprofile.Kind},
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("%s.%s.svc.%s", service, namespace, clusterDomain),
			Namespace: namespace,
		},
	}
}

// Marshal renders sp as YAML.
func Marshal(sp *serviceprofile.ServiceProfile) ([]byte, error) {
	return yaml.Marshal(sp)
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// FromOpenAPI returns one route per path and method of a Swagger 2.0 or OpenAPI 3
// document (JSON or YAML), in path then method order. The route's pathRegex is the
// path template (prefixed with the document's basePath or first server path) with
// every {param} matching one path segment. Errors name what is wrong with the document.
func FromOpenAPI(doc []byte) ([]serviceprofile.RouteSpec, error) {
	var d struct {
		Swagger  string                    `json:"swagger"`
		OpenAPI  string                    `json:"openapi"`
		BasePath string                    `json:"basePath"`
		Servers  []struct{ URL string }    `json:"servers"`
		Paths    map[string]map[string]any `json:"paths"`
	}
	if err := yaml.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("parsing OpenAPI document: %w", err)
	}
	if d.Swagger == "" && d.OpenAPI == "" {
		return nil, fmt.Errorf("not an OpenAPI document: neither \"swagger\" nor \"openapi\" version is set")
	}
	base := strings.TrimSuffix(d.BasePath, "/")
	if d.OpenAPI != "" && len(d.Servers) > 0 {
		base = strings.TrimSuffix(serverPath(d.Servers[0].URL), "/")
	}
	paths := make([]string, 0, len(d.Paths))
	for p := range d.Paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var routes []serviceprofile.RouteSpec
	for _, p := range paths {
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("path %q does not start with /", p)
		}
		re, err := pathRegex(base + p)
		if err != nil {
			return nil, err
		}
		for _, m := range httpMethods {
			if _, ok := d.Paths[p][m]; !ok {
				continue
			}
			method := strings.ToUpper(m)
			routes = append(routes, serviceprofile.RouteSpec{
				Name: method + " " + base + p,
				Condition: &serviceprofile.RequestMatch{All: []*serviceprofile.RequestMatch{
					{PathRegex: re}, {Method: method},
				}},
			})
		}
	}
	return routes, nil
}

// serverPath returns the path part of an OpenAPI 3 server URL.
func serverPath(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
		if j := strings.Index(u, "/"); j >= 0 {
			return u[j:]
		}
		return ""
	}
	return u
}

// pathRegex turns a path template into an anchored regular expression where each
// {param} matches one segment and everything else is literal.
func pathRegex(tmpl string) (string, error) {
	var b strings.Builder
	rest := tmpl
	for rest != "" {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			if strings.IndexByte(rest, '}') >= 0 {
				return "", fmt.Errorf("path %q: unmatched }", tmpl)
			}
			b.WriteString(regexp.QuoteMeta(rest))
			break
		}
		if strings.IndexByte(rest[:i], '}') >= 0 {
			return "", fmt.Errorf("path %q: unmatched }", tmpl)
		}
		b.WriteString(regexp.QuoteMeta(rest[:i]))
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("path %q: unterminated {", tmpl)
		}
		if j == 1 {
			return "", fmt.Errorf("path %q: empty parameter {}", tmpl)
		}
		b.WriteString("[^/]*")
		rest = rest[i+j+1:]
	}
	return b.String(), nil
}

var (
	protoIdent   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)
	protoPackage = regexp.MustCompile(`^package\s+([^\s;]+)\s*;`)
	protoService = regexp.MustCompile(`^service\s+([^\s{]+)\s*\{?`)
	protoRPC     = regexp.MustCompile(`^rpc\s+([^\s(]+)\s*\(`)
)

// FromProto returns one route per rpc of every service in a .proto file, named and
// matched as "POST /package.Service/Method". It reads the package, service and rpc
// declarations line by line (comments removed); a file without services is an error.
func FromProto(src []byte) ([]serviceprofile.RouteSpec, error) {
	var pkg, svc string
	depth := 0 // brace depth; services open at depth 0
	svcDepth := -1
	var routes []serviceprofile.RouteSpec
	services := 0
	inComment := false
	for n, line := range strings.Split(string(src), "\n") {
		line = stripComments(line, &inComment)
		t := strings.TrimSpace(line)
		switch {
		case depth == 0 && protoPackage.MatchString(t):
			pkg = protoPackage.FindStringSubmatch(t)[1]
			if !protoIdent.MatchString(pkg) {
				return nil, fmt.Errorf("line %d: invalid package name %q", n+1, pkg)
			}
		case depth == 0 && protoService.MatchString(t):
			svc = protoService.FindStringSubmatch(t)[1]
			if !protoIdent.MatchString(svc) || strings.Contains(svc, ".") {
				return nil, fmt.Errorf("line %d: invalid service name %q", n+1, svc)
			}
			svcDepth = 0
			services++
		case svcDepth >= 0 && depth == svcDepth+1 && protoRPC.MatchString(t):
			m := protoRPC.FindStringSubmatch(t)[1]
			if !protoIdent.MatchString(m) || strings.Contains(m, ".") {
				return nil, fmt.Errorf("line %d: invalid rpc name %q", n+1, m)
			}
			full := svc
			if pkg != "" {
				full = pkg + "." + svc
			}
			path := "/" + full + "/" + m
			routes = append(routes, serviceprofile.RouteSpec{
				Name: "POST " + path,
				Condition: &serviceprofile.RequestMatch{All: []*serviceprofile.RequestMatch{
					{PathRegex: regexp.QuoteMeta(path)}, {Method: "POST"},
				}},
			})
		}
		depth += strings.Count(t, "{") - strings.Count(t, "}")
		if depth < 0 {
			return nil, fmt.Errorf("line %d: unbalanced }", n+1)
		}
		if svcDepth >= 0 && depth <= svcDepth && !protoService.MatchString(t) {
			svcDepth = -1
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced braces: %d not closed at end of file", depth)
	}
	if services == 0 {
		return nil, fmt.Errorf("no service definition found")
	}
	return routes, nil
}

// stripComments removes // and /* */ comments from line, tracking block comments
// across lines in *inBlock. String literals are not considered.
func stripComments(line string, inBlock *bool) string {
	var b strings.Builder
	for i := 0; i < len(line); i++ {
		if *inBlock {
			if strings.HasPrefix(line[i:], "*/") {
				*inBlock = false
				i++
			}
			continue
		}
		if strings.HasPrefix(line[i:], "//") {
			break
		}
		if strings.HasPrefix(line[i:], "/*") {
			*inBlock = true
			i++
			continue
		}
		b.WriteByte(line[i])
	}
	return b.String()
}
