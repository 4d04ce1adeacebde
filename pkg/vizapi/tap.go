package vizapi

import (
	"fmt"
	"net/url"
)

// The tap API is an aggregated Kubernetes API, as Linkerd's: group tap.linkerd.io,
// version v1alpha1, served by linkerd-viz's tap component behind an APIService. A caller
// POSTs a TapByResourceRequest to TapPath (through the Kubernetes API server, which
// authenticates it) and reads the answer as a stream of TapEvents, one JSON object
// (protobuf's JSON mapping of io.linkerd.proxy.tap.TapEvent) per line, until the
// request ends.
const (
	TapGroup   = "tap.linkerd.io"
	TapVersion = "v1alpha1"
	// TapSubresource is the subresource the API server asks RBAC about: a caller needs
	// "watch" on "<plural>/tap" in group tap.linkerd.io, e.g. deployments/tap.
	TapSubresource = "tap"
	// DefaultMaxRps is the request rate a tap is limited to when it asks for none, as
	// Linkerd's CLI.
	DefaultMaxRps = 100.0
)

// TapByResourceRequest asks for the live requests of the pods of Target.Resource, narrowed
// by Match. Field names follow Linkerd viz's TapByResourceRequest where it has one.
type TapByResourceRequest struct {
	// Target selects the tapped pods; its resource's namespace and type and name are also
	// in the URL, which wins.
	Target ResourceSelection `json:"target"`
	// Match narrows the events; the zero value matches every request.
	Match TapMatch `json:"match"`
	// MaxRps bounds the request rate of the whole tap (spread over its pods); zero means
	// DefaultMaxRps.
	MaxRps float64 `json:"maxRps,omitempty"`
	// Extract asks the proxies for request and response headers.
	Extract bool `json:"extract,omitempty"`
}

// TapMatch selects requests: all the set fields must match.
type TapMatch struct {
	// To keeps requests to pods of this resource (its namespace defaults to the target's).
	To *Resource `json:"to,omitempty"`
	// Method keeps requests with this HTTP method (GET, POST, ...).
	Method string `json:"method,omitempty"`
	// Scheme keeps requests with this scheme (http, https).
	Scheme string `json:"scheme,omitempty"`
	// Authority keeps requests to this exact authority.
	Authority string `json:"authority,omitempty"`
	// Path keeps requests whose path starts with this prefix.
	Path string `json:"path,omitempty"`
}

// TapResources are the plural resource names of the types the tap API serves (its
// discovery document and the RBAC subresources name them), keyed by type.
var TapResources = map[string]string{
	CronJob: "cronjobs", DaemonSet: "daemonsets", Deployment: "deployments", Job: "jobs",
	Namespace: "namespaces", Pod: "pods", ReplicaSet: "replicasets",
	ReplicationController: "replicationcontrollers", Service: "services", StatefulSet: "statefulsets",
}

// TapPath is the URL path of a tap of r: /apis/tap.linkerd.io/v1alpha1/watch/namespaces/
// <ns>/<plural>/<name>/tap, or .../watch/namespaces/<name>/tap for a namespace. It fails
// for a type the tap API does not serve or a resource without a name.
func TapPath(r Resource) (string, error) {
	plural, ok := TapResources[r.Type]
	if !ok {
		return "", fmt.Errorf("cannot tap resources of type %q", r.Type)
	}
	if r.Name == "" {
		return "", fmt.Errorf("tap of %s: a name is required", plural)
	}
	base := "/apis/" + TapGroup + "/" + TapVersion + "/watch/namespaces/"
	if r.Type == Namespace {
		return base + url.PathEscape(r.Name) + "/" + TapSubresource, nil
	}
	if r.Namespace == "" {
		return "", fmt.Errorf("tap of %s/%s: a namespace is required", plural, r.Name)
	}
	return base + url.PathEscape(r.Namespace) + "/" + plural + "/" + url.PathEscape(r.Name) + "/" + TapSubresource, nil
}
