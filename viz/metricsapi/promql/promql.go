// Package promql builds the PromQL queries metrics-api asks Prometheus, over the labels
// Linkerd viz's scrape configuration gives proxy series: the scraped pod's namespace,
// pod and workload (deployment, statefulset, daemonset, replicaset, k8s_job, cronjob,
// replicationcontroller) on every series, and, on outbound series, the proxy's dst_*
// labels taken from the destination service's endpoint metric labels.
package promql

import (
	"fmt"
	"strings"

	"github.com/prometheus/common/model"

	"github.com/l5d-go/l5d/pkg/vizapi"
)

// Label names of the scrape configuration and the proxy.
const (
	LabelNamespace      = "namespace"
	LabelDirection      = "direction"
	LabelPeer           = "peer"
	LabelClassification = "classification"
	LabelTLS            = "tls"
	LabelClientID       = "client_id"
	LabelServerID       = "server_id"
	LabelNoTLSReason    = "no_tls_reason"
	LabelRoute          = "rt_route"
	LabelRouteDst       = "dst"
	LabelAuthority      = "authority"
	dstPrefix           = "dst_"
)

// KindLabel returns the series label naming a resource of type t: "deployment",
// "k8s_job" for jobs (the scrape configuration renames it; "job" is Prometheus's), ...
func KindLabel(t string) (model.LabelName, error) {
	switch t {
	case vizapi.Job:
		return "k8s_job", nil
	case vizapi.Deployment, vizapi.StatefulSet, vizapi.DaemonSet, vizapi.ReplicaSet, vizapi.CronJob,
		vizapi.ReplicationController, vizapi.Pod, vizapi.Namespace, vizapi.Authority, vizapi.Service:
		return model.LabelName(t), nil
	}
	return "", fmt.Errorf("resource type %q has no metrics label", t)
}

// Selection is what a query selects (Match, as a PromQL label matcher set) and what
// it sums by (GroupBy).
type Selection struct {
	Match   model.LabelSet
	GroupBy model.LabelNames
}

// srcLabels matches series scraped from the pods of r.
func srcLabels(r vizapi.Resource) (model.LabelSet, error) {
	l := model.LabelSet{}
	if r.Namespace != "" && r.Type != vizapi.Namespace {
		l[LabelNamespace] = model.LabelValue(r.Namespace)
	}
	if r.Name != "" {
		k, err := KindLabel(r.Type)
		if err != nil {
			return nil, err
		}
		l[k] = model.LabelValue(r.Name)
	}
	return l, nil
}

// dstLabels matches outbound series whose destination endpoints belong to r.
func dstLabels(r vizapi.Resource) (model.LabelSet, error) {
	l := model.LabelSet{}
	if r.Type == vizapi.Authority {
		if r.Name != "" {
			l[LabelAuthority] = model.LabelValue(r.Name)
		}
		return l, nil
	}
	if r.Namespace != "" && r.Type != vizapi.Namespace {
		l[dstPrefix+LabelNamespace] = model.LabelValue(r.Namespace)
	}
	if r.Name != "" {
		k, err := KindLabel(r.Type)
		if err != nil {
			return nil, err
		}
		l[dstPrefix+k] = model.LabelValue(r.Name)
	}
	return l, nil
}

func srcGroupBy(t string) (model.LabelNames, error) {
	if t == vizapi.Namespace {
		return model.LabelNames{LabelNamespace}, nil
	}
	k, err := KindLabel(t)
	if err != nil {
		return nil, err
	}
	return model.LabelNames{LabelNamespace, k}, nil
}

func dstGroupBy(t string) (model.LabelNames, error) {
	if t == vizapi.Authority {
		return model.LabelNames{LabelAuthority}, nil
	}
	if t == vizapi.Namespace {
		return model.LabelNames{dstPrefix + LabelNamespace}, nil
	}
	k, err := KindLabel(t)
	if err != nil {
		return nil, err
	}
	return model.LabelNames{dstPrefix + LabelNamespace, dstPrefix + k}, nil
}

// StatSelection returns the selection of a stat summary of sel: the inbound traffic of
// its pods; with to, their outbound traffic to to's endpoints; with from, from's
// outbound traffic to sel's endpoints. Services (and, with from, every selection) are
// seen from the client side, as Linkerd does: a service has no proxy of its own, its
// traffic is the outbound traffic whose endpoints are its (dst_service).
func StatSelection(sel vizapi.Resource, to, from *vizapi.Resource) (Selection, error) {
	if to != nil && from != nil {
		return Selection{}, fmt.Errorf("at most one of to and from may be set")
	}
	var (
		s   = Selection{Match: model.LabelSet{}}
		err error
	)
	merge := func(l model.LabelSet, e error) {
		if e != nil {
			err = e
			return
		}
		for k, v := range l {
			s.Match[k] = v
		}
	}
	switch {
	case from != nil:
		merge(srcLabels(*from))
		merge(dstLabels(sel))
		s.Match[LabelDirection] = "outbound"
		s.GroupBy, err = groupByOr(err, dstGroupBy, sel.Type)
	case sel.Type == vizapi.Service:
		merge(dstLabels(sel))
		if to != nil {
			return Selection{}, fmt.Errorf("a service has no outbound traffic: --to needs a workload, pod or namespace")
		}
		s.Match[LabelDirection] = "outbound"
		s.GroupBy, err = groupByOr(err, dstGroupBy, sel.Type)
	case to != nil:
		merge(srcLabels(sel))
		merge(dstLabels(*to))
		s.Match[LabelDirection] = "outbound"
		s.GroupBy, err = groupByOr(err, srcGroupBy, sel.Type)
	default:
		merge(srcLabels(sel))
		s.Match[LabelDirection] = "inbound"
		s.GroupBy, err = groupByOr(err, srcGroupBy, sel.Type)
	}
	if err != nil {
		return Selection{}, err
	}
	return s, nil
}

func groupByOr(err error, f func(string) (model.LabelNames, error), t string) (model.LabelNames, error) {
	if err != nil {
		return nil, err
	}
	return f(t)
}

func by(names ...model.LabelNames) string {
	var all []string
	for _, ns := range names {
		for _, n := range ns {
			all = append(all, string(n))
		}
	}
	return strings.Join(all, ", ")
}

// Increase sums the growth of a counter family matching match over window, by groupBy.
func Increase(family string, match model.LabelSet, window string, groupBy ...model.LabelNames) string {
	return fmt.Sprintf("sum(increase(%s%s[%s])) by (%s)", family, match, window, by(groupBy...))
}

// Quantile is the q-quantile (e.g. "0.95") of a histogram family's buckets ("..._bucket")
// matching match over window, by groupBy, in the histogram's unit.
func Quantile(q, bucketFamily string, match model.LabelSet, window string, groupBy ...model.LabelNames) string {
	return fmt.Sprintf("histogram_quantile(%s, sum(irate(%s%s[%s])) by (%s))", q, bucketFamily, match, window,
		by(append([]model.LabelNames{{"le"}}, groupBy...)...))
}

// Gauge sums a gauge family matching match by groupBy.
func Gauge(family string, match model.LabelSet, groupBy ...model.LabelNames) string {
	return fmt.Sprintf("sum(%s%s) by (%s)", family, match, by(groupBy...))
}

// Responses counts responses over window by the group, classification and tls.
func Responses(s Selection, window string) string {
	return Increase("response_total", s.Match, window, s.GroupBy, model.LabelNames{LabelClassification, LabelTLS})
}

// LatencyQuantile is the q-quantile (e.g. "0.95") of response latency in milliseconds
// over window by the group.
func LatencyQuantile(q string, s Selection, window string) string {
	return Quantile(q, "response_latency_ms_bucket", s.Match, window, s.GroupBy)
}

// TCPOpenConnections is the number of open connections by the group.
func TCPOpenConnections(s Selection) string {
	return Gauge("tcp_open_connections", tcpMatch(s), s.GroupBy)
}

// TCPReadBytes and TCPWriteBytes are the bytes read and written over window by the group.
func TCPReadBytes(s Selection, window string) string {
	return Increase("tcp_read_bytes_total", tcpMatch(s), window, s.GroupBy)
}

// TCPWriteBytes: see TCPReadBytes.
func TCPWriteBytes(s Selection, window string) string {
	return Increase("tcp_write_bytes_total", tcpMatch(s), window, s.GroupBy)
}

// tcpMatch narrows s to one side of each proxied connection, as Linkerd viz does: inbound,
// the connections clients opened to the proxy (peer="src"; the proxy's own connection on to
// the application would count each one twice); outbound, the proxy's connections to
// endpoints (peer="dst"), the only ones that carry the destination's labels.
func tcpMatch(s Selection) model.LabelSet {
	m := s.Match.Clone()
	m[LabelPeer] = "dst"
	if s.Match[LabelDirection] == "inbound" {
		m[LabelPeer] = "src"
	}
	return m
}

// ResourceSelection selects the series scraped from r's pods, grouped by r's kind label
// (by namespace for namespaces).
func ResourceSelection(r vizapi.Resource) (Selection, error) {
	m, err := srcLabels(r)
	if err != nil {
		return Selection{}, err
	}
	g, err := srcGroupBy(r.Type)
	if err != nil {
		return Selection{}, err
	}
	return Selection{Match: m, GroupBy: g}, nil
}

// Quantiles are the latency quantiles a stat reports, as PromQL literals.
var Quantiles = []string{"0.5", "0.95", "0.99"}

// RouteResponses counts the responses of a route family ("route_response_total" or
// "route_actual_response_total") matching the PromQL selector sel over window, by
// route, authority and classification.
func RouteResponses(family, sel, window string) string {
	return fmt.Sprintf("sum(increase(%s%s[%s])) by (%s, %s, %s)", family, sel, window, LabelRoute, LabelRouteDst, LabelClassification)
}

// RouteLatencyQuantile is the q-quantile of route response latency in milliseconds.
func RouteLatencyQuantile(q, sel, window string) string {
	return fmt.Sprintf("histogram_quantile(%s, sum(irate(route_response_latency_ms_bucket%s[%s])) by (le, %s, %s))", q, sel, window, LabelRoute, LabelRouteDst)
}
