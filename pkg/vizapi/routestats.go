package vizapi

// Paths of l5d's two additions to the API: Linkerd's CLI computes stat-inbound and
// stat-outbound itself from Prometheus; here metrics-api does, so that every query
// lives in one place and the CLI needs no access to Prometheus.
const (
	PathStatInbound  = "/api/v1/StatInbound"
	PathStatOutbound = "/api/v1/StatOutbound"
)

// RouteStatsRequest asks for the per-server and per-route figures of one resource's
// inbound traffic (StatInbound) or per-route and per-backend figures of its outbound
// traffic (StatOutbound), from the proxies' route-level series.
type RouteStatsRequest struct {
	Resource   Resource `json:"resource"`
	TimeWindow string   `json:"timeWindow,omitempty"`
}

// Latencies are percentiles in milliseconds; nil without observations.
type Latencies struct {
	P50 *float64 `json:"latencyMsP50"`
	P95 *float64 `json:"latencyMsP95"`
	P99 *float64 `json:"latencyMsP99"`
}

// InboundRow is the traffic one resource served on one server and route. Server is
// "[default]" for the default policy's; Route "[default]" for the default route, and
// RouteType is then empty.
type InboundRow struct {
	Name         string `json:"name"`
	Server       string `json:"server"`
	Port         string `json:"port"`
	Route        string `json:"route"`
	RouteType    string `json:"routeType"`
	SuccessCount uint64 `json:"successCount"`
	FailureCount uint64 `json:"failureCount"`
	Latencies
}

// StatInboundResponse holds the rows of a StatInbound call.
type StatInboundResponse struct {
	TimeWindow string       `json:"timeWindow"`
	Rows       []InboundRow `json:"rows"`
}

// OutboundBackend is the traffic of one route to one of its backends.
type OutboundBackend struct {
	Name         string `json:"name"`
	Port         string `json:"port"`
	SuccessCount uint64 `json:"successCount"`
	FailureCount uint64 `json:"failureCount"`
	Timeouts     uint64 `json:"timeouts"`
	Latencies
}

// OutboundRow is the traffic one resource sent to one service (parent) and port on
// one route: requests as the application saw them, retries, and per backend.
type OutboundRow struct {
	Name         string `json:"name"`
	Service      string `json:"service"`
	Port         string `json:"port"`
	Route        string `json:"route"`
	RouteType    string `json:"routeType"`
	SuccessCount uint64 `json:"successCount"`
	FailureCount uint64 `json:"failureCount"`
	Timeouts     uint64 `json:"timeouts"`
	Retries      uint64 `json:"retries"`
	Latencies
	Backends []OutboundBackend `json:"backends"`
}

// StatOutboundResponse holds the rows of a StatOutbound call.
type StatOutboundResponse struct {
	TimeWindow string        `json:"timeWindow"`
	Rows       []OutboundRow `json:"rows"`
}
