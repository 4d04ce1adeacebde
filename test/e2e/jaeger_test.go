package e2e

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

const jaegerNS = "linkerd-jaeger"

// jaegerTrace is a trace as Jaeger's query API (/api/traces) returns it.
type jaegerTrace struct {
	TraceID string `json:"traceID"`
	Spans   []struct {
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		ProcessID     string `json:"processID"`
		References    []struct {
			RefType string `json:"refType"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
		Tags []jaegerTag `json:"tags"`
	} `json:"spans"`
	Processes map[string]struct {
		ServiceName string      `json:"serviceName"`
		Tags        []jaegerTag `json:"tags"`
	} `json:"processes"`
}

type jaegerTag struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

func tag(tags []jaegerTag, key string) string {
	for _, t := range tags {
		if t.Key == key {
			return fmt.Sprint(t.Value)
		}
	}
	return ""
}

// TestJaeger installs the jaeger extension as the book does (`linkerd jaeger install |
// kubectl apply -f -`, `linkerd jaeger check`), runs the demo (whose traffic starts a
// sampled trace per request and whose web service passes the context on to catalog and
// ratings), and checks through Jaeger's query API (/api/traces?service=linkerd-proxy, asked
// through the API server's service proxy as `linkerd jaeger dashboard` relays) that one
// trace holds spans of the web, catalog and ratings proxies, each inbound span a child of
// its caller's outbound one; then `linkerd jaeger uninstall | kubectl delete -f -`.
func TestJaeger(t *testing.T) {
	s := need(t)
	const ns = "e2e-jaeger"
	s.Apply(t, s.MustRun(t, nil, s.Linkerd(), "jaeger", "install"))
	installed := true
	t.Cleanup(func() {
		if installed {
			if t.Failed() {
				s.dumpNamespaceLogs(t.Output(), jaegerNS)
			}
			if un, err := s.Run(nil, s.Linkerd(), "jaeger", "uninstall"); err == nil {
				_, _ = s.Run([]byte(un), s.Kubectl(), "delete", "--ignore-not-found", "-f", "-")
			}
		}
	})
	// The injector must be serving before the demo's pods are created (its webhook
	// ignores failures): jaeger and jaeger-injector.
	s.WaitPodsReady(t, 4*time.Minute, jaegerNS, "linkerd.io/extension=jaeger", 2, true)
	s.MustRun(t, nil, s.Linkerd(), "jaeger", "check", "--wait", "3m")
	s.DemoApp(t, ns, "0")
	pods := s.WaitPodsReady(t, 4*time.Minute, ns, "", 4, true)
	for _, p := range pods {
		if p.Annotations["jaeger.linkerd.io/tracing-enabled"] != "true" {
			t.Errorf("pod %s was not configured by the jaeger injector: %v", p.Name, p.Annotations)
		}
	}
	s.waitTrafficStatus(t, ns, s.podOf(t, ns, "traffic"), "200")

	var why string
	s.Eventually(t, 3*time.Minute, "a trace with the web, catalog and ratings proxies' spans", func() string {
		traces, err := s.jaegerTraces(ns)
		if err != nil {
			return err.Error()
		}
		if len(traces) == 0 {
			return "no trace yet"
		}
		for _, tr := range traces {
			if why = demoTraceComplete(tr); why == "" {
				return ""
			}
		}
		return fmt.Sprintf("%d traces, none complete; the last: %s", len(traces), why)
	})

	un := s.MustRun(t, nil, s.Linkerd(), "jaeger", "uninstall")
	s.MustRun(t, []byte(un), s.Kubectl(), "delete", "-f", "-")
	installed = false
	s.Eventually(t, 2*time.Minute, "the jaeger extension gone", func() string {
		if out, err := s.Run(nil, s.Linkerd(), "jaeger", "uninstall"); err == nil {
			return "uninstall still lists:\n" + out
		}
		return ""
	})
}

// jaegerTraces asks Jaeger for the latest traces of the proxies' service, keeping those
// with spans from pods of namespace ns.
func (s *Suite) jaegerTraces(ns string) ([]jaegerTrace, error) {
	b, err := s.Cluster.Client().CoreV1().Services(jaegerNS).
		ProxyGet("http", "jaeger", "ui", "/jaeger/api/traces", map[string]string{"service": "linkerd-proxy", "limit": "50", "lookback": "5m"}).DoRaw(s.Ctx)
	if err != nil {
		return nil, fmt.Errorf("jaeger query: %w: %.300s", err, b)
	}
	var resp struct {
		Data []jaegerTrace `json:"data"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		return nil, fmt.Errorf("jaeger query: %w: %.300s", err, b)
	}
	var out []jaegerTrace
	for _, tr := range resp.Data {
		for _, p := range tr.Processes {
			if tag(p.Tags, "linkerd.io/workload-ns") == ns {
				out = append(out, tr)
				break
			}
		}
	}
	return out, nil
}

// demoTraceComplete returns "" when tr holds spans of the web, catalog and ratings
// proxies with web's outbound span the parent of catalog's or ratings' inbound one, and
// else what it lacks.
func demoTraceComplete(tr jaegerTrace) string {
	type span struct{ app, direction string }
	spans := map[string]span{}
	apps := map[string]bool{}
	for _, sp := range tr.Spans {
		p := tr.Processes[sp.ProcessID]
		if p.ServiceName != "linkerd-proxy" {
			return fmt.Sprintf("span %s of service %q", sp.SpanID, p.ServiceName)
		}
		app := tag(p.Tags, "app")
		spans[sp.SpanID] = span{app, tag(sp.Tags, "direction")}
		apps[app] = true
	}
	var have []string
	for a := range apps {
		have = append(have, a)
	}
	sort.Strings(have)
	for _, want := range []string{"web", "catalog", "ratings"} {
		if !apps[want] {
			return fmt.Sprintf("trace %s has spans of %s, not %s", tr.TraceID, strings.Join(have, ", "), want)
		}
	}
	for _, sp := range tr.Spans {
		me := spans[sp.SpanID]
		if (me.app != "catalog" && me.app != "ratings") || me.direction != "inbound" {
			continue
		}
		for _, ref := range sp.References {
			if parent, ok := spans[ref.SpanID]; ok && ref.RefType == "CHILD_OF" && parent.app == "web" && parent.direction == "outbound" {
				return ""
			}
		}
	}
	return fmt.Sprintf("trace %s: no catalog or ratings inbound span is the child of a web outbound span", tr.TraceID)
}
