package e2e

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/l5d-go/l5d/test/demo/catalog"
	"github.com/l5d-go/l5d/test/demo/traffic"
)

// getRatingPath is the HTTP/2 path of the demo's Ratings.GetRating gRPC method.
const getRatingPath = "/l5d.demo.v1.Ratings/GetRating"

// TestServiceProfileRetriesAndTimeout runs two copies of the demo's item page in a meshed
// namespace: web calls a ratings service failing 30% of GetRating calls, web-slow one
// answering only after 2s. A ServiceProfile making GetRating retryable (with a generous
// retry budget) brings the item page's failures from about 30% to under 5%, counted in
// route_retry_total; one giving GetRating a 200ms timeout turns web-slow's pages into
// 504s (GetRating answers DEADLINE_EXCEEDED) whose route latency stays under a second.
func TestServiceProfileRetriesAndTimeout(t *testing.T) {
	s := need(t)
	const ns = "e2e-profile"
	s.Namespace(t, ns, map[string]string{"linkerd.io/inject": "enabled"})
	item := "/api/items/" + catalog.ItemIDs()[0]
	for _, w := range []demoWorkload{
		{NS: ns, Name: "catalog", Image: "demo-catalog"},
		{NS: ns, Name: "ratings", Image: "demo-ratings", Env: map[string]string{
			"FAILURE_SHARE": "0.3", "LATENCY": "5ms", "JITTER": "5ms"}},
		{NS: ns, Name: "ratings-slow", Image: "demo-ratings", Env: map[string]string{
			"FAILURE_SHARE": "0", "LATENCY": "2s", "JITTER": "0s"}},
		{NS: ns, Name: "web", Image: "demo-web", Env: map[string]string{
			"CATALOG_ADDR": svcAddr(ns, "catalog"), "RATINGS_ADDR": svcAddr(ns, "ratings")}},
		{NS: ns, Name: "web-slow", Image: "demo-web", Env: map[string]string{
			"CATALOG_ADDR": svcAddr(ns, "catalog"), "RATINGS_ADDR": svcAddr(ns, "ratings-slow")}},
		{NS: ns, Name: "traffic", Image: "demo-traffic", Env: map[string]string{
			"TARGET": "http://web." + ns + ".svc.cluster.local:8080", "RATE": "10", "REQUEST_PATH": item}},
		{NS: ns, Name: "traffic-slow", Image: "demo-traffic", Env: map[string]string{
			"TARGET": "http://web-slow." + ns + ".svc.cluster.local:8080", "RATE": "4", "REQUEST_PATH": item}},
	} {
		s.Apply(t, w.YAML())
	}
	web, webSlow := s.podOf(t, ns, "web"), s.podOf(t, ns, "web-slow")
	tr, trSlow := s.podOf(t, ns, "traffic"), s.podOf(t, ns, "traffic-slow")
	s.podOf(t, ns, "catalog")
	s.podOf(t, ns, "ratings")
	s.podOf(t, ns, "ratings-slow")

	// Without a profile: about 30% of the pages fail; web-slow's pages succeed, slowly
	// (measured once each path has answered once, past the start-up).
	s.waitTrafficStatus(t, ns, tr, "200")
	s.waitTrafficStatus(t, ns, trSlow, "200")
	before := s.trafficWindow(t, ns, tr, 100)
	if share := failedShare(before); share < 0.15 {
		t.Fatalf("without a profile, %.0f%% of the item pages failed (%v), want about 30%%", 100*share, before.ByStatus)
	}
	slowBefore := s.trafficWindow(t, ns, trSlow, 5)
	if slowBefore.ByStatus["200"] != slowBefore.Sent {
		t.Fatalf("without a profile, web-slow answered %v, want only 200s", slowBefore.ByStatus)
	}
	t.Logf("without a profile: web %v, web-slow %v", before.ByStatus, slowBefore.ByStatus)

	s.Apply(t, fmt.Sprintf(`apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: ratings.%[1]s.svc.cluster.local, namespace: %[1]s}
spec:
  routes:
  - name: GetRating
    condition: {method: POST, pathRegex: '%[2]s'}
    isRetryable: true
  retryBudget: {retryRatio: 1.0, minRetriesPerSecond: 100, ttl: 10s}
---
apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: ratings-slow.%[1]s.svc.cluster.local, namespace: %[1]s}
spec:
  routes:
  - name: GetRating
    condition: {method: POST, pathRegex: '%[2]s'}
    timeout: 200ms
`, ns, regexp.QuoteMeta(getRatingPath)))

	ratingsRoute := []string{`direction="outbound"`, `dst="` + svcAddr(ns, "ratings") + `"`, `rt_route="GetRating"`}
	slowRoute := []string{`direction="outbound"`, `dst="` + svcAddr(ns, "ratings-slow") + `"`, `rt_route="GetRating"`}
	var m string
	s.Eventually(t, 2*time.Minute, "web's proxy retries GetRating", func() string {
		var err error
		if m, err = s.ProxyMetrics(ns, web); err != nil {
			return err.Error()
		}
		if metricSum(m, "route_retry_total", ratingsRoute...) == 0 {
			return "route metrics:\n" + grepLines(m, "route_")
		}
		return ""
	})
	retriesBefore := metricSum(m, "route_retry_total", ratingsRoute...)
	after := s.trafficWindow(t, ns, tr, 150)
	if m, err := s.ProxyMetrics(ns, web); err != nil {
		t.Error(err)
	} else if retries := metricSum(m, "route_retry_total", ratingsRoute...) - retriesBefore; retries < 10 {
		t.Errorf("web's proxy retried GetRating %v times over %d pages, want about 30%% of them:\n%s", retries, after.Sent, grepLines(m, "route_"))
	} else {
		t.Logf("with retries: web %v; %v retries of GetRating", after.ByStatus, retries)
	}
	if share := failedShare(after); share >= 0.05 {
		t.Errorf("with GetRating retryable, %.1f%% of the item pages failed (%v), want under 5%%", 100*share, after.ByStatus)
	}

	// The timeout: web-slow's pages become 504s, GetRating DEADLINE_EXCEEDED at the proxy.
	s.Eventually(t, 2*time.Minute, "web-slow's proxy times GetRating out", func() string {
		var err error
		if m, err = s.ProxyMetrics(ns, webSlow); err != nil {
			return err.Error()
		}
		if metricSum(m, "route_response_total", append(slowRoute, `classification="failure"`)...) == 0 {
			return "route metrics:\n" + grepLines(m, "route_")
		}
		return ""
	})
	countBefore := metricSum(m, "route_response_latency_ms_count", slowRoute...)
	underBefore := metricSum(m, "route_response_latency_ms_bucket", append(slowRoute, `le="1000"`)...)
	failBefore := metricSum(m, "route_response_total", append(slowRoute, `classification="failure"`)...)
	slowAfter := s.trafficWindow(t, ns, trSlow, 10)
	if slowAfter.ByStatus["504"] != slowAfter.Sent {
		t.Errorf("with a 200ms timeout on GetRating, web-slow answered %v, want only 504s", slowAfter.ByStatus)
	}
	if m, err := s.ProxyMetrics(ns, webSlow); err != nil {
		t.Error(err)
	} else {
		count := metricSum(m, "route_response_latency_ms_count", slowRoute...) - countBefore
		under := metricSum(m, "route_response_latency_ms_bucket", append(slowRoute, `le="1000"`)...) - underBefore
		fail := metricSum(m, "route_response_total", append(slowRoute, `classification="failure"`)...) - failBefore
		if count < float64(slowAfter.Sent) || under != count || fail != count {
			t.Errorf("GetRating on ratings-slow: %v responses, %v within 1s, %v failures; want at least %d, all within 1s and failures:\n%s",
				count, under, fail, slowAfter.Sent, grepLines(m, "route_response"))
		}
	}
}

// failedShare is the share of the requests that failed (5xx or no response).
func failedShare(d traffic.Stats) float64 {
	if d.Sent == 0 {
		return 0
	}
	return float64(d.Failed) / float64(d.Sent)
}
