package tap

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The API server publishes how it vouches for the callers it proxies to aggregated APIs
// in this ConfigMap (readable through the extension-apiserver-authentication-reader Role).
const (
	AuthConfigMapNamespace = "kube-system"
	AuthConfigMapName      = "extension-apiserver-authentication"
)

// RequestHeader authenticates requests the Kubernetes API server forwards: the
// connection presents a client certificate signed by ClientCAs whose common name is one
// of AllowedNames (any, when empty), and the caller's user, groups and extra attributes
// are in the headers named here.
type RequestHeader struct {
	ClientCAs       *x509.CertPool
	AllowedNames    []string
	UsernameHeaders []string
	UIDHeaders      []string
	GroupHeaders    []string
	ExtraPrefixes   []string
}

// User is the authenticated caller of a request.
type User struct {
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

// LoadRequestHeader reads the front-proxy settings from the API server's
// extension-apiserver-authentication ConfigMap. It fails when the ConfigMap has no
// requestheader-client-ca-file (the API server runs without --requestheader-client-ca-file,
// so it cannot call aggregated APIs).
func LoadRequestHeader(ctx context.Context, client kubernetes.Interface) (*RequestHeader, error) {
	cm, err := client.CoreV1().ConfigMaps(AuthConfigMapNamespace).Get(ctx, AuthConfigMapName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading ConfigMap %s/%s: %w", AuthConfigMapNamespace, AuthConfigMapName, err)
	}
	caPEM := cm.Data["requestheader-client-ca-file"]
	if caPEM == "" {
		return nil, fmt.Errorf("ConfigMap %s/%s has no requestheader-client-ca-file: the API server cannot authenticate to aggregated APIs (start it with --requestheader-client-ca-file)", AuthConfigMapNamespace, AuthConfigMapName)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		return nil, fmt.Errorf("ConfigMap %s/%s: requestheader-client-ca-file holds no PEM certificate", AuthConfigMapNamespace, AuthConfigMapName)
	}
	rh := &RequestHeader{ClientCAs: pool}
	for key, dst := range map[string]*[]string{
		"requestheader-allowed-names":        &rh.AllowedNames,
		"requestheader-username-headers":     &rh.UsernameHeaders,
		"requestheader-uid-headers":          &rh.UIDHeaders,
		"requestheader-group-headers":        &rh.GroupHeaders,
		"requestheader-extra-headers-prefix": &rh.ExtraPrefixes,
	} {
		v := cm.Data[key]
		if v == "" {
			continue
		}
		if err := json.Unmarshal([]byte(v), dst); err != nil {
			return nil, fmt.Errorf("ConfigMap %s/%s: %s %q is not a JSON list of strings: %w", AuthConfigMapNamespace, AuthConfigMapName, key, v, err)
		}
	}
	if len(rh.UsernameHeaders) == 0 {
		return nil, fmt.Errorf("ConfigMap %s/%s names no requestheader-username-headers", AuthConfigMapNamespace, AuthConfigMapName)
	}
	return rh, nil
}

// errUnauthenticated is wrapped by Authenticate's errors.
var errUnauthenticated = errors.New("unauthenticated")

// Authenticate returns the caller the API server vouches for. The TLS server must ask
// for client certificates (tls.VerifyClientCertIfGiven or stricter); Authenticate checks
// the chain against ClientCAs itself, so one listener can also serve unauthenticated
// discovery.
func (a *RequestHeader) Authenticate(r *http.Request) (User, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return User{}, fmt.Errorf("%w: no client certificate (only the Kubernetes API server may call the tap API)", errUnauthenticated)
	}
	leaf := r.TLS.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range r.TLS.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: a.ClientCAs, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return User{}, fmt.Errorf("%w: client certificate %q: %w", errUnauthenticated, leaf.Subject.CommonName, err)
	}
	if len(a.AllowedNames) > 0 && !slices.Contains(a.AllowedNames, leaf.Subject.CommonName) {
		return User{}, fmt.Errorf("%w: client certificate %q is not one of the allowed front proxies %v", errUnauthenticated, leaf.Subject.CommonName, a.AllowedNames)
	}
	u := User{Name: first(r.Header, a.UsernameHeaders), UID: first(r.Header, a.UIDHeaders)}
	if u.Name == "" {
		return User{}, fmt.Errorf("%w: no user in headers %v", errUnauthenticated, a.UsernameHeaders)
	}
	for _, h := range a.GroupHeaders {
		u.Groups = append(u.Groups, r.Header.Values(h)...)
	}
	for name, vals := range r.Header {
		for _, p := range a.ExtraPrefixes {
			if len(name) > len(p) && strings.EqualFold(name[:len(p)], p) {
				if u.Extra == nil {
					u.Extra = map[string][]string{}
				}
				key := strings.ToLower(name[len(p):])
				u.Extra[key] = append(u.Extra[key], vals...)
			}
		}
	}
	return u, nil
}

func first(h http.Header, names []string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}

// Authorize asks the API server (a SubjectAccessReview) whether u may watch the tap
// subresource of resource (plural) name in namespace of group tap.linkerd.io. It returns
// the reason of a denial, or an error when the review could not be made.
func Authorize(ctx context.Context, client kubernetes.Interface, u User, group, version, resource, subresource, namespace, name string) (allowed bool, reason string, err error) {
	extra := map[string]authzv1.ExtraValue{}
	for k, v := range u.Extra {
		extra[k] = v
	}
	sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User: u.Name, UID: u.UID, Groups: u.Groups, Extra: extra,
		ResourceAttributes: &authzv1.ResourceAttributes{
			Namespace: namespace, Verb: "watch", Group: group, Version: version,
			Resource: resource, Subresource: subresource, Name: name,
		},
	}}
	res, err := client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return false, "", fmt.Errorf("SubjectAccessReview for %s: %w", u.Name, err)
	}
	return res.Status.Allowed, res.Status.Reason, nil
}
