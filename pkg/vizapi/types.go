// Package vizapi is the viz metrics API: the requests and responses of metrics-api's
// StatSummary, Edges, TopRoutes, ListPods and ListServices, shaped after Linkerd viz's
// public API (viz.proto: the same message and field names), and a client for it; and the
// tap API's. It lives in pkg/ because two components speak it: viz serves it, the CLI
// calls it.
//
// The wire format is JSON over HTTP: a POST of the request to /api/v1/<Method> answered
// with the response, fields named as protobuf's JSON mapping names Linkerd's fields
// (lowerCamelCase). metrics-api serves it on its API port (8085); the CLI reaches it
// through the Kubernetes API server's service proxy.
package vizapi

import (
	"fmt"
	"strings"
	"time"
)

// Resource types, as Linkerd's API spells them.
const (
	All                   = "all"
	Authority             = "authority"
	CronJob               = "cronjob"
	DaemonSet             = "daemonset"
	Deployment            = "deployment"
	Job                   = "job"
	Namespace             = "namespace"
	Pod                   = "pod"
	ReplicaSet            = "replicaset"
	ReplicationController = "replicationcontroller"
	Service               = "service"
	StatefulSet           = "statefulset"
)

// StatAllTypes are the types "all" expands to, in the order Linkerd prints them.
var StatAllTypes = []string{DaemonSet, StatefulSet, Job, Deployment, ReplicationController, Pod, Service, Authority, CronJob, ReplicaSet}

var typeAliases = map[string]string{
	"au": Authority, "authority": Authority, "authorities": Authority,
	"cj": CronJob, "cronjob": CronJob, "cronjobs": CronJob,
	"ds": DaemonSet, "daemonset": DaemonSet, "daemonsets": DaemonSet,
	"deploy": Deployment, "deployment": Deployment, "deployments": Deployment,
	"job": Job, "jobs": Job,
	"ns": Namespace, "namespace": Namespace, "namespaces": Namespace,
	"po": Pod, "pod": Pod, "pods": Pod,
	"rs": ReplicaSet, "replicaset": ReplicaSet, "replicasets": ReplicaSet,
	"rc": ReplicationController, "replicationcontroller": ReplicationController, "replicationcontrollers": ReplicationController,
	"svc": Service, "service": Service, "services": Service,
	"sts": StatefulSet, "statefulset": StatefulSet, "statefulsets": StatefulSet,
	"all": All,
}

// CanonicalType returns the API's spelling of a resource type as users type it
// ("deploy", "deployments", "rc", ...), or an error listing the accepted ones.
func CanonicalType(t string) (string, error) {
	if c, ok := typeAliases[strings.ToLower(t)]; ok {
		return c, nil
	}
	return "", fmt.Errorf("unknown resource type %q: want one of all, authority, cronjob, daemonset, deployment, job, namespace, pod, replicaset, replicationcontroller, service or statefulset (or au, cj, ds, deploy, ns, po, rs, rc, svc, sts)", t)
}

// Resource names Kubernetes objects: every object of Type in Namespace when Name is
// empty; Namespace empty means every namespace.
type Resource struct {
	Namespace string `json:"namespace,omitempty"`
	Type      string `json:"type"`
	Name      string `json:"name,omitempty"`
}

// ResourceSelection selects resources: Resource, narrowed by a label selector.
type ResourceSelection struct {
	Resource      Resource `json:"resource"`
	LabelSelector string   `json:"labelSelector,omitempty"`
}

// DefaultTimeWindow is the window of a request that gives none, as Linkerd's.
const DefaultTimeWindow = "1m"

// ParseWindow validates a time window ("1m", "30s", "10m") and returns it as a
// duration. Windows shorter than 1s are refused: Prometheus rates need two samples.
func ParseWindow(w string) (time.Duration, error) {
	if w == "" {
		w = DefaultTimeWindow
	}
	d, err := time.ParseDuration(w)
	if err != nil {
		return 0, fmt.Errorf("time window %q: %w", w, err)
	}
	if d < time.Second {
		return 0, fmt.Errorf("time window %q: must be at least 1s", w)
	}
	return d, nil
}

// StatSummaryRequest asks for the golden metrics of the selected resources. At most one
// of ToResource and FromResource is set: with ToResource the figures are those of the
// selected resources' requests to it (their outbound traffic), with FromResource those
// of its requests to the selected resources; with neither, their inbound traffic.
type StatSummaryRequest struct {
	Selector     ResourceSelection `json:"selector"`
	TimeWindow   string            `json:"timeWindow,omitempty"`
	ToResource   *Resource         `json:"toResource,omitempty"`
	FromResource *Resource         `json:"fromResource,omitempty"`
	// SkipStats lists the resources without querying Prometheus.
	SkipStats bool `json:"skipStats,omitempty"`
	// TCPStats adds connection and byte figures.
	TCPStats bool `json:"tcpStats,omitempty"`
}

// StatSummaryResponse carries either Ok or Error.
type StatSummaryResponse struct {
	Ok    *StatSummaryOk `json:"ok,omitempty"`
	Error *ResourceError `json:"error,omitempty"`
}

// StatSummaryOk holds one table per resource type.
type StatSummaryOk struct {
	StatTables []StatTable `json:"statTables"`
}

// StatTable is the rows of one resource type.
type StatTable struct {
	PodGroup PodGroup `json:"podGroup"`
}

// PodGroup is a list of rows.
type PodGroup struct {
	Rows []StatRow `json:"rows"`
}

// StatRow is one resource's figures. Stats is nil when the resource had no traffic in
// the window (or SkipStats was set).
type StatRow struct {
	Resource        Resource          `json:"resource"`
	TimeWindow      string            `json:"timeWindow"`
	Status          string            `json:"status,omitempty"`
	MeshedPodCount  uint64            `json:"meshedPodCount"`
	RunningPodCount uint64            `json:"runningPodCount"`
	FailedPodCount  uint64            `json:"failedPodCount"`
	Stats           *BasicStats       `json:"stats,omitempty"`
	TCPStats        *TCPStats         `json:"tcpStats,omitempty"`
	ErrorsByPod     map[string]string `json:"errorsByPod,omitempty"`
}

// BasicStats are request counts and latency percentiles over the window. The Actual
// counts, set by TopRoutes, count every attempt including retries; the others count
// what the caller saw.
type BasicStats struct {
	SuccessCount       uint64 `json:"successCount"`
	FailureCount       uint64 `json:"failureCount"`
	LatencyMsP50       uint64 `json:"latencyMsP50"`
	LatencyMsP95       uint64 `json:"latencyMsP95"`
	LatencyMsP99       uint64 `json:"latencyMsP99"`
	ActualSuccessCount uint64 `json:"actualSuccessCount"`
	ActualFailureCount uint64 `json:"actualFailureCount"`
}

// TCPStats are connection and byte figures over the window.
type TCPStats struct {
	OpenConnections uint64 `json:"openConnections"`
	ReadBytesTotal  uint64 `json:"readBytesTotal"`
	WriteBytesTotal uint64 `json:"writeBytesTotal"`
}

// ResourceError is an error about the request.
type ResourceError struct {
	Error string `json:"error"`
}

// EdgesRequest asks for the edges between the selected resources and the resources
// they talk to or are talked to by.
type EdgesRequest struct {
	Selector ResourceSelection `json:"selector"`
	// TimeWindow is not part of Linkerd's request; empty means DefaultTimeWindow.
	TimeWindow string `json:"timeWindow,omitempty"`
}

// EdgesResponse carries either Ok or Error.
type EdgesResponse struct {
	Ok    *EdgesOk       `json:"ok,omitempty"`
	Error *ResourceError `json:"error,omitempty"`
}

// EdgesOk holds the edges.
type EdgesOk struct {
	Edges []Edge `json:"edges"`
}

// Edge is traffic from Src to Dst: ClientID is the identity Dst's proxy saw, ServerID the
// identity Src's proxy verified; NoIdentityMsg says why one is missing.
type Edge struct {
	Src           Resource `json:"src"`
	Dst           Resource `json:"dst"`
	ClientID      string   `json:"clientId"`
	ServerID      string   `json:"serverId"`
	NoIdentityMsg string   `json:"noIdentityMsg"`
}

// TopRoutesRequest asks for per-route figures of the selected resources: the routes of
// the ServiceProfiles (and Gateway API routes) of the services they serve, or with
// ToResource the routes of their requests to it.
type TopRoutesRequest struct {
	Selector   ResourceSelection `json:"selector"`
	TimeWindow string            `json:"timeWindow,omitempty"`
	ToResource *Resource         `json:"toResource,omitempty"`
}

// TopRoutesResponse carries either Ok or Error.
type TopRoutesResponse struct {
	Ok    *TopRoutesOk   `json:"ok,omitempty"`
	Error *ResourceError `json:"error,omitempty"`
}

// TopRoutesOk holds one table per selected resource.
type TopRoutesOk struct {
	Routes []RouteTable `json:"routes"`
}

// RouteTable is the routes of one resource (Resource is "kind/name").
type RouteTable struct {
	Rows     []RouteRow `json:"rows"`
	Resource string     `json:"resource"`
}

// RouteRow is one route of one authority. Route is "[DEFAULT]" for requests that
// matched no declared route; Stats is nil without traffic.
type RouteRow struct {
	Route      string      `json:"route"`
	Authority  string      `json:"authority"`
	Stats      *BasicStats `json:"stats,omitempty"`
	TimeWindow string      `json:"timeWindow"`
}

// DefaultRoute names the requests that matched no declared route.
const DefaultRoute = "[DEFAULT]"

// ListPodsRequest lists pods, optionally of one namespace and label selector.
type ListPodsRequest struct {
	Selector *ResourceSelection `json:"selector,omitempty"`
}

// ListPodsResponse holds the pods.
type ListPodsResponse struct {
	Pods []PodInfo `json:"pods"`
}

// PodInfo describes one pod. Name is "namespace/name"; Owner is the workload that owns
// it (e.g. Deployment "web").
type PodInfo struct {
	Name                string `json:"name"`
	PodIP               string `json:"podIP"`
	Status              string `json:"status"`
	Added               bool   `json:"added"`
	ControllerNamespace string `json:"controllerNamespace,omitempty"`
	ProxyReady          bool   `json:"proxyReady"`
	ResourceVersion     string `json:"resourceVersion"`
	OwnerKind           string `json:"ownerKind,omitempty"`
	OwnerName           string `json:"ownerName,omitempty"`
	ServiceAccount      string `json:"serviceAccount,omitempty"`
}

// ListServicesRequest lists services, optionally of one namespace.
type ListServicesRequest struct {
	Namespace string `json:"namespace,omitempty"`
}

// ListServicesResponse holds the services.
type ListServicesResponse struct {
	Services []ServiceInfo `json:"services"`
}

// ServiceInfo names one service.
type ServiceInfo struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
}
