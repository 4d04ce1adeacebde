package profile

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/pkg/apis/serviceprofile"
)

var update = flag.Bool("update", false, "rewrite golden files")

func render(t *testing.T, routes []serviceprofile.RouteSpec) string {
	t.Helper()
	sp := New("web", "shop", "cluster.local")
	sp.Spec.Routes = routes
	out, err := Marshal(sp)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		in    string
		parse func([]byte) ([]serviceprofile.RouteSpec, error)
	}{
		{"petstore.yaml", FromOpenAPI},
		{"books.json", FromOpenAPI},
		{"greeter.proto", FromProto},
	} {
		t.Run(tc.in, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join("testdata", tc.in))
			if err != nil {
				t.Fatal(err)
			}
			routes, err := tc.parse(src)
			if err != nil {
				t.Fatal(err)
			}
			got := render(t, routes)
			p := filepath.Join("testdata", tc.in+".golden.yaml")
			if *update {
				if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s:\n%s", p, got)
			}
		})
	}
}

// TestRoutesMatchRequests: the generated regexes match the paths a client would send
// (anchored, as the proxy matches them) and not neighbouring ones.
func TestRoutesMatchRequests(t *testing.T) {
	src, _ := os.ReadFile("testdata/books.json")
	routes, err := FromOpenAPI(src)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("^" + routes[0].Condition.All[0].PathRegex + "$")
	for path, want := range map[string]bool{
		"/api/authors/42/books.json":  true,
		"/api/authors/x/books.json":   true,
		"/api/authors/4/2/books.json": false,
		"/api/authors/42/booksXjson":  false,
		"/authors/42/books.json":      false,
	} {
		if re.MatchString(path) != want {
			t.Errorf("%s matched %v, want %v", path, !want, want)
		}
	}
	src, _ = os.ReadFile("testdata/greeter.proto")
	routes, err = FromProto(src)
	if err != nil {
		t.Fatal(err)
	}
	re = regexp.MustCompile("^" + routes[0].Condition.All[0].PathRegex + "$")
	if !re.MatchString("/hello.v1.Greeter/SayHello") || re.MatchString("/helloXv1.Greeter/SayHello") {
		t.Errorf("gRPC route regex %s matches wrongly", re)
	}
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		parse          func([]byte) ([]serviceprofile.RouteSpec, error)
	}{
		{"not yaml", "{[", "parsing OpenAPI", FromOpenAPI},
		{"no version", `{"paths": {}}`, "neither", FromOpenAPI},
		{"relative path", `{"swagger": "2.0", "paths": {"pets": {"get": {}}}}`, `"pets" does not start with /`, FromOpenAPI},
		{"unterminated param", `{"swagger": "2.0", "paths": {"/pets/{id": {"get": {}}}}`, "unterminated {", FromOpenAPI},
		{"stray brace", `{"swagger": "2.0", "paths": {"/pets/id}": {"get": {}}}}`, "unmatched }", FromOpenAPI},
		{"empty param", `{"swagger": "2.0", "paths": {"/pets/{}": {"get": {}}}}`, "empty parameter", FromOpenAPI},
		{"no service", "syntax = \"proto3\";\nmessage A {}\n", "no service", FromProto},
		{"unbalanced", "service A {\n rpc B(C) returns (D);\n", "unbalanced braces", FromProto},
		{"extra close", "}\n", "line 1: unbalanced }", FromProto},
		{"bad package", "package a..b;\nservice A {}\n", "invalid package name", FromProto},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.parse([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func FuzzFromOpenAPI(f *testing.F) {
	for _, n := range []string{"petstore.yaml", "books.json"} {
		b, _ := os.ReadFile(filepath.Join("testdata", n))
		f.Add(b)
	}
	f.Add([]byte(`{"openapi": "3", "paths": {"/{a}{b}/}": {"get": 1}}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		routes, err := FromOpenAPI(in)
		if err != nil {
			return
		}
		for _, r := range routes {
			if _, err := regexp.Compile(r.Condition.All[0].PathRegex); err != nil {
				t.Fatalf("route %q has invalid regex: %v", r.Name, err)
			}
		}
	})
}

func FuzzFromProto(f *testing.F) {
	b, _ := os.ReadFile("testdata/greeter.proto")
	f.Add(b)
	f.Add([]byte("service A\n{\nrpc B(C) returns (D) {}\n}\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		routes, err := FromProto(in)
		if err != nil {
			return
		}
		for _, r := range routes {
			if _, err := regexp.Compile(r.Condition.All[0].PathRegex); err != nil {
				t.Fatalf("route %q has invalid regex: %v", r.Name, err)
			}
		}
	})
}

func TestFromRequests(t *testing.T) {
	reqs := []Request{
		{"GET", "/books?page=2"}, {"GET", "/books"}, {"post", "/books"}, {"GET", "/books/1"},
		{"GET", "/a.b"}, {"", "/nomethod"},
	}
	routes := FromRequests(reqs, 0)
	var names []string
	for _, r := range routes {
		names = append(names, r.Name)
	}
	if got := strings.Join(names, ","); got != "GET /a.b,GET /books,POST /books,GET /books/1" {
		t.Errorf("routes %s", got)
	}
	if re := routes[0].Condition.All[0].PathRegex; re != `/a\.b` {
		t.Errorf("path regex %q: want the path quoted", re)
	}
	if limited := FromRequests(reqs, 1); len(limited) != 1 || limited[0].Name != "GET /books" {
		t.Errorf("limit 1: %v, want the most frequent route", limited)
	}
}
