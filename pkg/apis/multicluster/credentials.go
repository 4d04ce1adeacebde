package multicluster

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// RemoteConfig is the client configuration of a linked cluster, from its credentials
// Secret (the kubeconfig under CredentialsKey). The error names the Secret.
func RemoteConfig(secret *corev1.Secret) (*rest.Config, error) {
	kc, ok := secret.Data[CredentialsKey]
	if !ok || len(kc) == 0 {
		return nil, fmt.Errorf("secret %s/%s has no %q key holding a kubeconfig", secret.Namespace, secret.Name, CredentialsKey)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kc)
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s: the kubeconfig under %q: %w", secret.Namespace, secret.Name, CredentialsKey, err)
	}
	return cfg, nil
}
