package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/test/demo/catalog"
	"github.com/l5d-go/l5d/test/demo/demotest"
	"github.com/l5d-go/l5d/test/demo/ratings"
	"github.com/l5d-go/l5d/test/demo/web"
)

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestEndpointsWithHealthyBackends(t *testing.T) {
	s := demotest.Start(t, ratings.Options{})

	code, body := do(t, "GET", s.WebURL+"/api/items", "")
	var items []web.Item
	if code != 200 || json.Unmarshal([]byte(body), &items) != nil || len(items) != len(catalog.ItemIDs()) {
		t.Fatalf("GET /api/items = %d %s, want 200 and %d items", code, body, len(catalog.ItemIDs()))
	}

	for _, stars := range []string{"5", "2"} {
		if code, body := do(t, "POST", s.WebURL+"/api/items/lantern/rating", `{"stars":`+stars+`}`); code != 200 {
			t.Fatalf("POST rating = %d %s, want 200", code, body)
		}
	}
	code, body = do(t, "GET", s.WebURL+"/api/items/lantern", "")
	var it web.Item
	if code != 200 || json.Unmarshal([]byte(body), &it) != nil || it.Name != "Lantern" || it.Rating == nil ||
		it.Rating.Votes != 2 || it.Rating.Average != 3.5 {
		t.Fatalf("GET /api/items/lantern = %d %s, want the Lantern with 2 votes averaging 3.5", code, body)
	}

	code, body = do(t, "GET", s.WebURL+"/", "")
	if code != 200 || !strings.Contains(body, "Lantern") || !strings.Contains(body, "3.5 (2 votes)") {
		t.Errorf("GET / = %d %s, want a page listing the Lantern rated 3.5", code, body)
	}
	if code, _ := do(t, "GET", s.WebURL+"/ready", ""); code != 200 {
		t.Errorf("GET /ready = %d, want 200", code)
	}
}

func TestErrorsAreHTTPStatuses(t *testing.T) {
	s := demotest.Start(t, ratings.Options{FailureShare: 1})
	for _, tc := range []struct {
		method, path, body string
		want               []int
	}{
		{"GET", "/api/items/unicorn", "", []int{404}},
		{"GET", "/api/items/kettle", "", []int{500, 503}}, // ratings always fails
		{"POST", "/api/items/kettle/rating", `{"stars":9}`, []int{400}},
		{"POST", "/api/items/kettle/rating", `not json`, []int{400}},
		{"GET", "/nowhere", "", []int{404}},
	} {
		code, body := do(t, tc.method, s.WebURL+tc.path, tc.body)
		if !contains(tc.want, code) {
			t.Errorf("%s %s = %d %s, want one of %v", tc.method, tc.path, code, body, tc.want)
		}
	}
	// The page degrades instead of failing.
	code, body := do(t, "GET", s.WebURL+"/", "")
	if code != 200 || !strings.Contains(body, "unavailable") || !strings.Contains(body, "Kettle") {
		t.Errorf("GET / with ratings down = %d %s, want 200 with ratings unavailable", code, body)
	}
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
