package traffic_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/l5d-go/l5d/test/demo/demotest"
	"github.com/l5d-go/l5d/test/demo/ratings"
	"github.com/l5d-go/l5d/test/demo/traffic"
)

func TestGeneratorCoversEveryRoute(t *testing.T) {
	s := demotest.Start(t, ratings.Options{FailureShare: 0.5})
	g, err := traffic.New(traffic.Options{Target: s.WebURL, Rate: 500, Count: 100, LogEvery: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Run(context.Background()); err != nil {
		t.Fatalf("Run with Count = %v, want nil", err)
	}
	st := g.Stats()
	if st.Sent != 100 {
		t.Fatalf("stats %+v, want 100 requests sent", st)
	}
	want := map[string]int64{"GET /": 20, "GET /api/items": 20, "GET /api/items/{id}": 40, "POST /api/items/{id}/rating": 20}
	for k, v := range want {
		if st.ByPath[k] != v {
			t.Errorf("%s requested %d times, want %d (all: %v)", k, st.ByPath[k], v, st.ByPath)
		}
	}
	// Only single-item reads call the flaky GetRating without degrading.
	if st.Failed == 0 || st.Failed > st.ByPath["GET /api/items/{id}"] {
		t.Errorf("%d requests failed, want some but at most the %d item reads", st.Failed, st.ByPath["GET /api/items/{id}"])
	}
}

func TestInvalidOptions(t *testing.T) {
	for _, o := range []traffic.Options{
		{Target: "web:8080", Rate: 1},
		{Target: "http://web:8080", Rate: 0},
		{Target: "http://web:8080", Rate: 1, Count: -1},
		{Target: "ftp://web", Rate: 1},
		{Target: "http://web:8080", Rate: 1, Path: "ready"},
		{Target: "http://web:8080", Rate: 1, TraceSampleRatio: 1.5},
	} {
		if _, err := traffic.New(o); err == nil {
			t.Errorf("New(%+v) succeeded, want an error", o)
		}
	}
}

func TestFixedPathAndStatsEndpoint(t *testing.T) {
	s := demotest.Start(t, ratings.Options{})
	g, err := traffic.New(traffic.Options{Target: s.WebURL, Rate: 500, Count: 20, Path: "/api/items/nope"})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	traffic.StatsHandler(g).ServeHTTP(rec, httptest.NewRequest("GET", "/stats", nil))
	var st traffic.Stats
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("/stats is not JSON Stats: %v\n%s", err, rec.Body)
	}
	if st.Sent != 20 || st.ByPath["GET /api/items/nope"] != 20 || st.ByStatus["404"] != 20 || st.Failed != 0 {
		t.Errorf("stats %+v, want 20 GETs of the one path, all 404 and none failed", st)
	}
}
