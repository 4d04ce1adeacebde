package webhook

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
)

// SupportsNativeSidecars reports whether the API server is Kubernetes 1.29 or later, where
// restartable init containers (native sidecars) are on by default.
func SupportsNativeSidecars(d discovery.ServerVersionInterface) (bool, string, error) {
	info, err := d.ServerVersion()
	if err != nil {
		return false, "", fmt.Errorf("reading the API server version: %w", err)
	}
	major, _ := strconv.Atoi(strings.TrimRight(info.Major, "+"))
	minor, _ := strconv.Atoi(strings.TrimRight(info.Minor, "+"))
	return major > 1 || major == 1 && minor >= 29, info.GitVersion, nil
}

// TrustAnchorsFromConfigMap reads the trust anchors PEM from key of ConfigMap ns/name (Linkerd
// keeps them in linkerd-identity-trust-roots under ca-bundle.crt).
func TrustAnchorsFromConfigMap(ctx context.Context, client kubernetes.Interface, ns, name, key string) (string, error) {
	cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("trust anchors ConfigMap %s/%s: %w", ns, name, err)
	}
	pem := cm.Data[key]
	if !strings.Contains(pem, "-----BEGIN CERTIFICATE-----") {
		return "", fmt.Errorf("trust anchors ConfigMap %s/%s: key %s holds no PEM certificate", ns, name, key)
	}
	return pem, nil
}
