package h2

import (
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// fieldsHandler serves requests whose path starts with /lean from their fields, writing
// the response with WriteHead, and leaves the others to ServeHTTP.
type fieldsHandler struct {
	t      *testing.T
	served chan string // the fields ServeFields saw, or "general: <header>"
}

type pairs [][2]string

func (p pairs) EncodeFields(enc func(name, value string)) {
	for _, f := range p {
		enc(f[0], f[1])
	}
}

func (h fieldsHandler) ServeFields(w http.ResponseWriter, r *http.Request, fields []hpack.HeaderField) bool {
	if !strings.HasPrefix(r.URL.Path, "/lean") {
		return false
	}
	if r.Header != nil {
		h.t.Errorf("ServeFields got a header map: %v", r.Header)
	}
	var seen []string
	for _, f := range fields {
		seen = append(seen, f.Name+"="+f.Value)
	}
	h.served <- strings.Join(seen, " ")
	body, _ := io.ReadAll(r.Body)
	hw := w.(HeadWriter)
	switch r.URL.Path {
	case "/lean/end": // the whole response with the head
		hw.WriteHead(200, pairs{{"x-a", "1"}, {"x-a", "2"}, {"content-length", "4"}}, []byte("body"), true)
		w.Write([]byte("ignored")) // the stream has ended
	case "/lean/more": // the head, then the body and trailers as for any response
		hw.WriteHead(201, pairs{{"x-b", ""}}, body, false)
		w.Write([]byte("+more"))
		w.Header().Set(http.TrailerPrefix+"X-T", "t")
	case "/lean/empty":
		hw.WriteHead(204, pairs{}, nil, true)
	}
	return true
}

func (h fieldsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.served <- "general: " + r.Header.Get("Cookie") + " " + strings.Join(r.Header.Values("X-Dup"), ",") + " trailer=" + r.Header.Get("Trailer")
	w.Write([]byte("general"))
}

// TestFieldsHandler: a FieldsHandler sees the request's fields in order, without a
// header map, and answers with WriteHead (the head alone, with the whole body, or
// followed by Write and trailers); a request it declines reaches ServeHTTP with the
// header map, several cookie fields joined into one (RFC 9113 section 8.2.3).
func TestFieldsHandler(t *testing.T) {
	h := fieldsHandler{t: t, served: make(chan string, 10)}
	tr, base := start(t, h)
	get := func(method, path, body string, header http.Header) (*http.Response, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if body == "" {
			req.Body = nil
		}
		for k, vv := range header {
			req.Header[k] = vv
		}
		resp, b := do(t, tr, req)
		return resp, string(b)
	}
	hdr := http.Header{"X-Dup": {"1", "2"}, "Cookie": {"a=1", "b=2"}}

	resp, body := get("GET", "/lean/end", "", hdr)
	if got := <-h.served; !strings.Contains(got, "x-dup=1 x-dup=2") || !strings.Contains(got, "cookie=a=1 cookie=b=2") {
		t.Errorf("ServeFields saw %q", got)
	}
	if resp.StatusCode != 200 || body != "body" || !reflect.DeepEqual(resp.Header["X-A"], []string{"1", "2"}) {
		t.Errorf("/lean/end: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	resp, body = get("POST", "/lean/more", "start", nil)
	<-h.served
	if resp.StatusCode != 201 || body != "start+more" || resp.Trailer.Get("X-T") != "t" || len(resp.Header["X-B"]) != 1 {
		t.Errorf("/lean/more: %d %v %q trailers %v", resp.StatusCode, resp.Header, body, resp.Trailer)
	}
	resp, body = get("GET", "/lean/empty", "", nil)
	<-h.served
	if resp.StatusCode != 204 || body != "" {
		t.Errorf("/lean/empty: %d %q", resp.StatusCode, body)
	}
	_, body = get("GET", "/other", "", hdr)
	if got := <-h.served; got != "general: a=1; b=2 1,2 trailer=" || body != "general" {
		t.Errorf("ServeHTTP saw %q and answered %q", got, body)
	}
}
