package mcext

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	mc "github.com/l5d-go/l5d/pkg/apis/multicluster"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"
)

// LinkOptions say how to link to a target cluster.
type LinkOptions struct {
	// ClusterName names the target cluster in the source one (required): the Link, its
	// Secret cluster-credentials-<name>, and the mirrors' suffix.
	ClusterName string
	// Namespace is the extension's namespace in both clusters (default linkerd-multicluster).
	Namespace string
	// LinkerdNamespace is the target's control-plane namespace.
	LinkerdNamespace string
	// APIServerAddress is the URL the source cluster reaches the target's API server at
	// (default: the one the CLI uses).
	APIServerAddress string
	// ServiceAccount is the target's ServiceAccount whose token the source uses
	// (default linkerd-service-mirror-remote-access-default).
	ServiceAccount string
	// Gateway links through the target's gateway; false links pod to pod only.
	Gateway bool
	// GatewayAddresses overrides the gateway Service's external addresses
	// (comma-separated IPs or names).
	GatewayAddresses string
	// GatewayPort overrides the gateway port (0: the gateway Service's).
	GatewayPort int
	// Selector and RemoteDiscoverySelector are label selectors (kubectl syntax) of the
	// Services to mirror through the gateway and pod to pod.
	Selector, RemoteDiscoverySelector string
	// CAData is the target API server's CA (PEM), from the CLI's kubeconfig; the token
	// Secret's ca.crt when empty.
	CAData []byte
	// Server is the API server URL the CLI reached the target at.
	Server string
	// CreatedBy is the linkerd.io/created-by annotation.
	CreatedBy string
}

// LinkGen reads the target cluster (kube) and returns what the source cluster needs to
// mirror it, as a YAML stream: the credentials Secret (a kubeconfig with the target's
// remote-access ServiceAccount token) in the extension's namespace for the service
// mirror, the same in the control plane's namespace (labelled
// multicluster.linkerd.io/cluster-name, with the target's trust and cluster domains)
// for the destination controller's pod-to-pod discovery, and the Link (v1alpha3).
// The source cluster's control plane is assumed to live in a namespace of the same
// name as the target's (LinkerdNamespace).
func LinkGen(ctx context.Context, kube kubernetes.Interface, cluster map[string]any, o LinkOptions) ([]byte, error) {
	if o.ClusterName == "" {
		return nil, fmt.Errorf("--cluster-name is required: the name the source cluster will know this one by")
	}
	if errs := validName(o.ClusterName); errs != "" {
		return nil, fmt.Errorf("--cluster-name %q: %s", o.ClusterName, errs)
	}
	ns := Namespace(o.Namespace)
	if o.ServiceAccount == "" {
		o.ServiceAccount = mc.RemoteAccessPrefix + "default"
	}
	if o.LinkerdNamespace == "" {
		o.LinkerdNamespace = "linkerd"
	}
	kubeconfig, err := credentials(ctx, kube, ns, o)
	if err != nil {
		return nil, err
	}
	sel, err := metav1.ParseToLabelSelector(defaultStr(o.Selector, mc.LabelExported+"="+mc.ExportedGateway))
	if err != nil {
		return nil, fmt.Errorf("--selector: %w", err)
	}
	rsel, err := metav1.ParseToLabelSelector(defaultStr(o.RemoteDiscoverySelector, mc.LabelExported+"="+mc.ExportedRemoteDiscovery))
	if err != nil {
		return nil, fmt.Errorf("--remote-discovery-selector: %w", err)
	}
	secretName := mc.CredentialsSecretPrefix + o.ClusterName
	link := mc.Link{
		TypeMeta: metav1.TypeMeta{APIVersion: mc.Group + "/" + mc.Version, Kind: mc.Kind},
		ObjectMeta: metav1.ObjectMeta{Name: o.ClusterName, Namespace: ns,
			Labels:      map[string]string{mc.LabelClusterName: o.ClusterName},
			Annotations: map[string]string{"linkerd.io/created-by": o.CreatedBy}},
		Spec: mc.LinkSpec{
			TargetClusterName:             o.ClusterName,
			TargetClusterDomain:           clusterDomain(cluster),
			TargetClusterLinkerdNamespace: o.LinkerdNamespace,
			ClusterCredentialsSecret:      secretName,
			Selector:                      sel,
			RemoteDiscoverySelector:       rsel,
		},
	}
	if o.Gateway {
		if err := gatewaySpec(ctx, kube, ns, o, &link.Spec); err != nil {
			return nil, err
		}
	}
	secret := corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: secretName, Namespace: ns,
			Labels:      map[string]string{mc.LabelClusterName: o.ClusterName},
			Annotations: map[string]string{"linkerd.io/created-by": o.CreatedBy}},
		Type: mc.CredentialsSecretType,
		Data: map[string][]byte{mc.CredentialsKey: kubeconfig},
	}
	// The destination controller's copy, in the control plane's namespace, for
	// pod-to-pod mirrors: the same kubeconfig, with the target's domains.
	destSecret := corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: secretName, Namespace: o.LinkerdNamespace,
			Labels: map[string]string{mc.LabelDestinationCluster: o.ClusterName},
			Annotations: map[string]string{"linkerd.io/created-by": o.CreatedBy,
				mc.AnnTrustDomain: defaultStr(trustDomain(cluster), "cluster.local"), mc.AnnClusterDomain: clusterDomain(cluster)}},
		Type: mc.CredentialsSecretType,
		Data: map[string][]byte{mc.CredentialsKey: kubeconfig},
	}
	var b bytes.Buffer
	for _, obj := range []any{secret, destSecret, link} {
		y, err := yaml.Marshal(obj)
		if err != nil {
			return nil, err
		}
		b.WriteString("---\n")
		b.Write(removeNullTimestamp(y))
	}
	return b.Bytes(), nil
}

func removeNullTimestamp(y []byte) []byte {
	return bytes.ReplaceAll(y, []byte("  creationTimestamp: null\n"), nil)
}

func defaultStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// validName checks a cluster name is a DNS label (it suffixes Service names).
func validName(s string) string {
	if len(s) > 63 {
		return "longer than 63 characters"
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' && i > 0 && i < len(s)-1
		if !ok {
			return "must be a DNS label: lower-case letters, digits and inner '-'"
		}
	}
	return ""
}

// credentials builds the kubeconfig the source cluster's service mirror uses: the API
// server address and CA, and the token of the target's remote-access ServiceAccount.
func credentials(ctx context.Context, kube kubernetes.Interface, ns string, o LinkOptions) ([]byte, error) {
	tokenSecret := o.ServiceAccount + "-token"
	s, err := kube.CoreV1().Secrets(ns).Get(ctx, tokenSecret, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("no token Secret %s/%s for ServiceAccount %s in the target cluster: install the extension there first (`linkerd multicluster install`), or create the account with `linkerd multicluster allow --service-account-name %s`",
			ns, tokenSecret, o.ServiceAccount, o.ServiceAccount)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the token Secret %s/%s in the target cluster: %w", ns, tokenSecret, err)
	}
	token := s.Data[corev1.ServiceAccountTokenKey]
	if len(token) == 0 {
		return nil, fmt.Errorf("the token Secret %s/%s in the target cluster holds no token yet (the token controller fills it): try again in a moment", ns, tokenSecret)
	}
	ca := o.CAData
	if len(ca) == 0 {
		ca = s.Data[corev1.ServiceAccountRootCAKey]
	}
	server := defaultStr(o.APIServerAddress, o.Server)
	if server == "" {
		return nil, fmt.Errorf("no API server address for the target cluster: pass --api-server-address")
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters[o.ClusterName] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	kc.AuthInfos[o.ServiceAccount] = &clientcmdapi.AuthInfo{Token: string(token)}
	kc.Contexts[o.ClusterName] = &clientcmdapi.Context{Cluster: o.ClusterName, AuthInfo: o.ServiceAccount}
	kc.CurrentContext = o.ClusterName
	out, err := clientcmd.Write(*kc)
	if err != nil {
		return nil, fmt.Errorf("writing the link's kubeconfig: %w", err)
	}
	return out, nil
}

// gatewaySpec fills the Link's gateway fields from the target's gateway Service.
func gatewaySpec(ctx context.Context, kube kubernetes.Interface, ns string, o LinkOptions, spec *mc.LinkSpec) error {
	svc, err := kube.CoreV1().Services(ns).Get(ctx, mc.GatewayName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("no gateway Service %s/%s in the target cluster: install the extension with its gateway there (`linkerd multicluster install`), or link pod to pod with --gateway=false", ns, mc.GatewayName)
	}
	if err != nil {
		return fmt.Errorf("reading the gateway Service %s/%s in the target cluster: %w", ns, mc.GatewayName, err)
	}
	identity := svc.Annotations[mc.AnnGatewayIdentity]
	if identity == "" {
		return fmt.Errorf("the gateway Service %s/%s has no %s annotation", ns, mc.GatewayName, mc.AnnGatewayIdentity)
	}
	addrs := o.GatewayAddresses
	if addrs == "" {
		var found []string
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if in.IP != "" {
				found = append(found, in.IP)
			} else if in.Hostname != "" {
				found = append(found, in.Hostname)
			}
		}
		if len(found) == 0 {
			found = svc.Spec.ExternalIPs
		}
		if len(found) == 0 {
			return fmt.Errorf("the gateway Service %s/%s has no external address (no load balancer ingress yet): pass --gateway-addresses", ns, mc.GatewayName)
		}
		addrs = strings.Join(found, ",")
	}
	for _, a := range strings.Split(addrs, ",") {
		if a == "" || strings.ContainsAny(a, "/: ") && net.ParseIP(a) == nil {
			return fmt.Errorf("--gateway-addresses %q: %q is not an IP address or host name", addrs, a)
		}
	}
	port, probePort := 0, 0
	nodePorts := svc.Spec.Type == corev1.ServiceTypeNodePort
	for _, p := range svc.Spec.Ports {
		v := int(p.Port)
		if nodePorts && p.NodePort != 0 {
			v = int(p.NodePort)
		}
		switch p.Name {
		case mc.GatewayPortName:
			port = v
		case mc.ProbePortName:
			probePort = v
		}
	}
	if o.GatewayPort != 0 {
		port = o.GatewayPort
	}
	if port == 0 || probePort == 0 {
		return fmt.Errorf("the gateway Service %s/%s lacks the %s or %s port", ns, mc.GatewayName, mc.GatewayPortName, mc.ProbePortName)
	}
	period := svc.Annotations[mc.AnnProbePeriod]
	if period != "" && !strings.HasSuffix(period, "s") {
		period += "s"
	}
	spec.GatewayAddress = addrs
	spec.GatewayPort = strconv.Itoa(port)
	spec.GatewayIdentity = identity
	spec.ProbeSpec = mc.ProbeSpec{
		Path:             defaultStr(svc.Annotations[mc.AnnProbePath], mc.ProbePath),
		Port:             strconv.Itoa(probePort),
		Period:           defaultStr(period, "3s"),
		Timeout:          "30s",
		FailureThreshold: strconv.Itoa(mc.ProbeFailureThreshold),
	}
	return nil
}
