// Package multicluster holds the vocabulary of Linkerd's multicluster extension: the Go
// type of the Link custom resource (multicluster.linkerd.io/v1alpha3, JSON field names as
// the CRD defines them, read from unstructured objects with
// runtime.DefaultUnstructuredConverter), the labels and annotations the service mirror
// puts on the objects it creates, and the names and ports the extension installs.
package multicluster

import (
	"fmt"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group, version, resource and kind of Links. Version is the one current Linkerd
// stores and its CLI writes.
const (
	Group    = "multicluster.linkerd.io"
	Version  = "v1alpha3"
	Resource = "links"
	Kind     = "Link"
)

// Links is the GroupVersionResource of Links.
var Links = schema.GroupVersionResource{Group: Group, Version: Version, Resource: Resource}

// Names, ports and defaults of the extension.
const (
	// Namespace is where the extension, its Links and their credentials live.
	Namespace = "linkerd-multicluster"
	// GatewayName is the gateway's Deployment, Service and ServiceAccount.
	GatewayName = "linkerd-gateway"
	// GatewayPort is the port the gateway accepts mTLS connections on.
	GatewayPort = 4143
	// ProbePort and ProbePath are where the gateway answers health probes.
	ProbePort = 4191
	ProbePath = "/ready"
	// ProbePeriod is how often a service mirror probes its remote gateway.
	ProbePeriod = 3 * time.Second
	// ProbeTimeout bounds one probe.
	ProbeTimeout = 30 * time.Second
	// ProbeFailureThreshold is how many consecutive failures mark a gateway down.
	ProbeFailureThreshold = 3
	// GatewayPortName and ProbePortName name the gateway Service's ports.
	GatewayPortName = "mc-gateway"
	ProbePortName   = "mc-probe"
	// RemoteAccessPrefix prefixes the ServiceAccount, ClusterRole and binding a linked
	// cluster's service mirror authenticates as (RemoteAccessPrefix + link name, "default"
	// when the chart's default is used).
	RemoteAccessPrefix = "linkerd-service-mirror-remote-access-"
	// CredentialsSecretPrefix prefixes the Secret holding a Link's kubeconfig.
	CredentialsSecretPrefix = "cluster-credentials-"
	// CredentialsSecretType is the type of that Secret; CredentialsKey its data key.
	CredentialsSecretType = "mirror.linkerd.io/remote-kubeconfig"
	CredentialsKey        = "kubeconfig"
	// ControllerPrefix prefixes the service mirror Deployment of a Link.
	ControllerPrefix = "controller-"
	// ServiceMirrorComponent is the component label of service mirror pods.
	ServiceMirrorComponent = "linkerd-service-mirror"
	// AdminPort is the service mirror's admin port (/metrics, /ready, /live), named
	// "admin-http".
	AdminPort     = 9999
	AdminPortName = "admin-http"
)

// Labels and annotations.
const (
	// LabelExported marks a Service for export: "true" through the gateway,
	// "remote-discovery" pod to pod.
	LabelExported = "mirror.linkerd.io/exported"
	// ExportedGateway and ExportedRemoteDiscovery are LabelExported's values.
	ExportedGateway         = "true"
	ExportedRemoteDiscovery = "remote-discovery"
	// LabelMirroredService is "true" on every object a service mirror creates.
	LabelMirroredService = "mirror.linkerd.io/mirrored-service"
	// LabelClusterName names the linked cluster a mirror object came from.
	LabelClusterName = "mirror.linkerd.io/cluster-name"
	// LabelRemoteDiscovery names the linked cluster on a pod-to-pod mirror, and
	// LabelRemoteService the remote Service's name.
	LabelRemoteDiscovery = "mirror.linkerd.io/remote-discovery"
	LabelRemoteService   = "mirror.linkerd.io/remote-service"
	// LabelGateway marks a gateway Service.
	LabelGateway = "mirror.linkerd.io/multicluster-gateway"
	// AnnRemoteResourceVersion is the remote Service's resourceVersion a mirror copies.
	AnnRemoteResourceVersion = "mirror.linkerd.io/remote-resource-version"
	// AnnRemoteSvcFQName is the remote Service's FQDN (svc.ns.svc.<domain>).
	AnnRemoteSvcFQName = "mirror.linkerd.io/remote-svc-fq-name"
	// AnnRemoteGatewayIdentity is, on a gateway mirror's Endpoints, the identity
	// the client proxy must see on the remote gateway.
	AnnRemoteGatewayIdentity = "mirror.linkerd.io/remote-gateway-identity"
	// AnnGatewayIdentity, AnnProbePath and AnnProbePeriod describe a gateway Service.
	AnnGatewayIdentity = "mirror.linkerd.io/gateway-identity"
	AnnProbePath       = "mirror.linkerd.io/probe-path"
	AnnProbePeriod     = "mirror.linkerd.io/probe-period"
	// LabelDestinationCluster names the linked cluster on the Secret, in the control
	// plane's namespace, through which the destination controller reads that cluster's
	// endpoints for pod-to-pod mirrors; AnnTrustDomain and AnnClusterDomain on it are
	// the linked cluster's trust and DNS domains.
	LabelDestinationCluster = "multicluster.linkerd.io/cluster-name"
	AnnTrustDomain          = "multicluster.linkerd.io/trust-domain"
	AnnClusterDomain        = "multicluster.linkerd.io/cluster-domain"
)

// Link describes a one-way link to a target cluster: how to reach its API server
// (ClusterCredentialsSecret), its gateway, and which of its Services to mirror.
type Link struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              LinkSpec `json:"spec"`
	// Status is what the Link's service mirror reports (the status subresource).
	Status *LinkStatus `json:"status,omitempty"`
}

// LinkStatus is the state of the Services a Link mirrors, as current Linkerd's service
// mirror writes it: one entry per remote Service it mirrors or failed to mirror.
type LinkStatus struct {
	MirrorServices    []ServiceStatus `json:"mirrorServices,omitempty"`
	FederatedServices []ServiceStatus `json:"federatedServices,omitempty"`
}

// ServiceStatus is the state of one remote Service's mirror.
type ServiceStatus struct {
	// Conditions holds one condition, of type ConditionMirrored.
	Conditions []LinkCondition `json:"conditions,omitempty"`
	// ControllerName is StatusControllerName.
	ControllerName string `json:"controllerName,omitempty"`
	// RemoteRef is the remote Service.
	RemoteRef ObjectRef `json:"remoteRef,omitempty"`
}

// LinkCondition is a condition of a mirrored Service.
type LinkCondition struct {
	Type string `json:"type"`
	// Status is True, False or Unknown.
	Status             metav1.ConditionStatus `json:"status"`
	LastProbeTime      metav1.Time            `json:"lastProbeTime,omitempty"`
	LastTransitionTime metav1.Time            `json:"lastTransitionTime,omitempty"`
	// Reason is one of the Reason* values.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message"`
	// LocalRef is the local mirror.
	LocalRef ObjectRef `json:"localRef,omitempty"`
}

// ObjectRef names an object of a cluster.
type ObjectRef struct {
	Group     string `json:"group,omitempty"`
	Kind      string `json:"kind,omitempty"`
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

// The Link status vocabulary of current Linkerd's service mirror.
const (
	// StatusControllerName is ServiceStatus.ControllerName.
	StatusControllerName = "linkerd.io/service-mirror"
	// ConditionMirrored is the condition type: True when the mirror is in step with
	// the remote Service.
	ConditionMirrored = "Mirrored"
	// Reasons of ConditionMirrored.
	ReasonMirrored         = "Mirrored"
	ReasonError            = "Error"
	ReasonMissingNamespace = "MissingNamespace"
)

// LinkSpec is a Link's specification. Numbers are strings, as in the CRD.
type LinkSpec struct {
	TargetClusterName             string                `json:"targetClusterName,omitempty"`
	TargetClusterDomain           string                `json:"targetClusterDomain,omitempty"`
	TargetClusterLinkerdNamespace string                `json:"targetClusterLinkerdNamespace,omitempty"`
	ClusterCredentialsSecret      string                `json:"clusterCredentialsSecret,omitempty"`
	GatewayAddress                string                `json:"gatewayAddress,omitempty"`
	GatewayPort                   string                `json:"gatewayPort,omitempty"`
	GatewayIdentity               string                `json:"gatewayIdentity,omitempty"`
	ProbeSpec                     ProbeSpec             `json:"probeSpec,omitempty"`
	Selector                      *metav1.LabelSelector `json:"selector,omitempty"`
	RemoteDiscoverySelector       *metav1.LabelSelector `json:"remoteDiscoverySelector,omitempty"`
	FederatedServiceSelector      *metav1.LabelSelector `json:"federatedServiceSelector,omitempty"`
	ExcludedAnnotations           []string              `json:"excludedAnnotations,omitempty"`
	ExcludedLabels                []string              `json:"excludedLabels,omitempty"`
}

// ProbeSpec says how to probe the target cluster's gateway.
type ProbeSpec struct {
	FailureThreshold string `json:"failureThreshold,omitempty"`
	Path             string `json:"path,omitempty"`
	Period           string `json:"period,omitempty"`
	Port             string `json:"port,omitempty"`
	Timeout          string `json:"timeout,omitempty"`
}

// Probe is a parsed ProbeSpec.
type Probe struct {
	Path             string
	Port             int
	Period           time.Duration
	Timeout          time.Duration
	FailureThreshold int
}

// Config is a Link's spec parsed and checked: what a service mirror runs on.
type Config struct {
	Name          string // the Link's name
	ClusterName   string // TargetClusterName
	ClusterDomain string
	Secret        string
	// Gateway is false when the link has no gateway (pod-to-pod only): GatewayAddress
	// is empty.
	Gateway         bool
	GatewayAddress  string
	GatewayPort     int
	GatewayIdentity string
	Probe           Probe
	// Selector and RemoteDiscoverySelector select the remote Services to mirror
	// through the gateway and pod to pod; a Service both select is mirrored pod to pod.
	Selector                labels.Selector
	RemoteDiscoverySelector labels.Selector
	ExcludedAnnotations     []string
	ExcludedLabels          []string
}

// DefaultSelector and DefaultRemoteDiscoverySelector are the selectors the CLI writes.
func DefaultSelector() *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{LabelExported: ExportedGateway}}
}

// DefaultRemoteDiscoverySelector selects Services exported pod to pod.
func DefaultRemoteDiscoverySelector() *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{LabelExported: ExportedRemoteDiscovery}}
}

// Parse checks l's spec and returns its Config, with the CRD's defaults for what is
// unset. Its errors name the Link and the field.
func Parse(l *Link) (*Config, error) {
	s := l.Spec
	fail := func(field string, err error) (*Config, error) {
		return nil, fmt.Errorf("link %s/%s: spec.%s: %w", l.Namespace, l.Name, field, err)
	}
	c := &Config{
		Name: l.Name, ClusterName: s.TargetClusterName, ClusterDomain: s.TargetClusterDomain,
		Secret: s.ClusterCredentialsSecret, GatewayAddress: s.GatewayAddress, GatewayIdentity: s.GatewayIdentity,
		ExcludedAnnotations: s.ExcludedAnnotations, ExcludedLabels: s.ExcludedLabels,
	}
	if c.ClusterName == "" {
		return fail("targetClusterName", fmt.Errorf("is empty"))
	}
	if c.Secret == "" {
		return fail("clusterCredentialsSecret", fmt.Errorf("is empty"))
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
	var err error
	if c.Selector, err = selector(s.Selector); err != nil {
		return fail("selector", err)
	}
	if c.RemoteDiscoverySelector, err = selector(s.RemoteDiscoverySelector); err != nil {
		return fail("remoteDiscoverySelector", err)
	}
	c.Gateway = c.GatewayAddress != ""
	if !c.Gateway {
		return c, nil
	}
	if c.GatewayPort, err = port(s.GatewayPort, GatewayPort); err != nil {
		return fail("gatewayPort", err)
	}
	p := s.ProbeSpec
	c.Probe = Probe{Path: p.Path, Period: ProbePeriod, Timeout: ProbeTimeout, FailureThreshold: ProbeFailureThreshold}
	if c.Probe.Path == "" {
		c.Probe.Path = ProbePath
	}
	if c.Probe.Port, err = port(p.Port, ProbePort); err != nil {
		return fail("probeSpec.port", err)
	}
	if p.Period != "" {
		if c.Probe.Period, err = positiveDuration(p.Period); err != nil {
			return fail("probeSpec.period", err)
		}
	}
	if p.Timeout != "" {
		if c.Probe.Timeout, err = positiveDuration(p.Timeout); err != nil {
			return fail("probeSpec.timeout", err)
		}
	}
	if p.FailureThreshold != "" {
		n, err := strconv.Atoi(p.FailureThreshold)
		if err != nil || n < 1 {
			return fail("probeSpec.failureThreshold", fmt.Errorf("%q is not a positive integer", p.FailureThreshold))
		}
		c.Probe.FailureThreshold = n
	}
	return c, nil
}

// selector converts a LabelSelector; nil selects nothing.
func selector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return labels.Nothing(), nil
	}
	return metav1.LabelSelectorAsSelector(s)
}

func port(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return n, nil
}

func positiveDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration such as 3s", s)
	}
	return d, nil
}

// MirrorName is the name of the local mirror of remote Service svc from cluster.
func MirrorName(svc, cluster string) string { return svc + "-" + cluster }
