package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Webhook describes an admission webhook registered by RegisterMutatingWebhook or
// RegisterValidatingWebhook. The API server calls it by URL; service references are not
// supported because nothing routes service IPs.
type Webhook struct {
	// Name is the webhook's name, a domain with at least three segments (e.g. "inject.l5d.test").
	Name string
	// URL is the https URL the API server posts AdmissionReviews to.
	URL string
	// CABundle is the PEM of the CA that signed the server's certificate.
	CABundle []byte
	// Rules select the requests sent; empty means CREATE of v1 pods.
	Rules []admissionregistrationv1.RuleWithOperations
	// Namespaces limits the webhook to namespaces with these names. Combined (AND) with
	// NamespaceSelector. With neither, the webhook sees every namespace — including those
	// of other tests in the package.
	Namespaces []string
	// NamespaceSelector selects namespaces by label.
	NamespaceSelector *metav1.LabelSelector
	// ObjectSelector selects objects by label.
	ObjectSelector *metav1.LabelSelector
	// FailurePolicy defaults to Fail.
	FailurePolicy admissionregistrationv1.FailurePolicyType
	// SideEffects defaults to None.
	SideEffects admissionregistrationv1.SideEffectClass
	// TimeoutSeconds defaults to 10.
	TimeoutSeconds int32
	// ReinvocationPolicy applies to mutating webhooks only; it defaults to Never.
	ReinvocationPolicy admissionregistrationv1.ReinvocationPolicyType
}

// podCreateRules are the default Webhook rules.
var podCreateRules = []admissionregistrationv1.RuleWithOperations{{
	Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
	Rule: admissionregistrationv1.Rule{
		APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
	},
}}

// webhookParts are the fields mutating and validating webhooks share, with defaults applied.
type webhookParts struct {
	client        admissionregistrationv1.WebhookClientConfig
	rules         []admissionregistrationv1.RuleWithOperations
	nsSelector    *metav1.LabelSelector
	objSelector   *metav1.LabelSelector
	failurePolicy *admissionregistrationv1.FailurePolicyType
	sideEffects   *admissionregistrationv1.SideEffectClass
	timeout       *int32
}

func (w Webhook) parts() (webhookParts, error) {
	if w.Name == "" || strings.Count(w.Name, ".") < 2 {
		return webhookParts{}, fmt.Errorf("webhook name %q must be a domain with at least three segments", w.Name)
	}
	if !strings.HasPrefix(w.URL, "https://") {
		return webhookParts{}, fmt.Errorf("webhook %s: URL %q must start with https://", w.Name, w.URL)
	}
	url := w.URL
	p := webhookParts{
		client:      admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: w.CABundle},
		rules:       w.Rules,
		objSelector: w.ObjectSelector,
	}
	if len(p.rules) == 0 {
		p.rules = podCreateRules
	}
	if w.NamespaceSelector != nil {
		p.nsSelector = w.NamespaceSelector.DeepCopy()
	}
	if len(w.Namespaces) > 0 {
		if p.nsSelector == nil {
			p.nsSelector = &metav1.LabelSelector{}
		}
		p.nsSelector.MatchExpressions = append(p.nsSelector.MatchExpressions, metav1.LabelSelectorRequirement{
			Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpIn, Values: w.Namespaces,
		})
	}
	fp := w.FailurePolicy
	if fp == "" {
		fp = admissionregistrationv1.Fail
	}
	se := w.SideEffects
	if se == "" {
		se = admissionregistrationv1.SideEffectClassNone
	}
	timeout := w.TimeoutSeconds
	if timeout == 0 {
		timeout = 10
	}
	p.failurePolicy, p.sideEffects, p.timeout = &fp, &se, &timeout
	return p, nil
}

func (w Webhook) mutating() (admissionregistrationv1.MutatingWebhook, error) {
	p, err := w.parts()
	if err != nil {
		return admissionregistrationv1.MutatingWebhook{}, err
	}
	rp := w.ReinvocationPolicy
	if rp == "" {
		rp = admissionregistrationv1.NeverReinvocationPolicy
	}
	return admissionregistrationv1.MutatingWebhook{
		Name: w.Name, ClientConfig: p.client, Rules: p.rules, NamespaceSelector: p.nsSelector,
		ObjectSelector: p.objSelector, FailurePolicy: p.failurePolicy, SideEffects: p.sideEffects,
		TimeoutSeconds: p.timeout, AdmissionReviewVersions: []string{"v1"}, ReinvocationPolicy: &rp,
	}, nil
}

func (w Webhook) validating() (admissionregistrationv1.ValidatingWebhook, error) {
	p, err := w.parts()
	if err != nil {
		return admissionregistrationv1.ValidatingWebhook{}, err
	}
	return admissionregistrationv1.ValidatingWebhook{
		Name: w.Name, ClientConfig: p.client, Rules: p.rules, NamespaceSelector: p.nsSelector,
		ObjectSelector: p.objSelector, FailurePolicy: p.failurePolicy, SideEffects: p.sideEffects,
		TimeoutSeconds: p.timeout, AdmissionReviewVersions: []string{"v1"},
	}, nil
}

// RegisterMutatingWebhook creates a MutatingWebhookConfiguration holding w and returns once
// the API server calls it; when the test ends the configuration is deleted and the API
// server has stopped calling it. It returns the configuration's name.
func (c *Cluster) RegisterMutatingWebhook(t testing.TB, w Webhook) string {
	t.Helper()
	hook, err := w.mutating()
	if err != nil {
		t.Fatalf("kube: RegisterMutatingWebhook: %v", err)
	}
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: uniqueName(w.Name, 50)},
		Webhooks:   []admissionregistrationv1.MutatingWebhook{hook},
	}
	api := c.client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	c.registerWebhook(t, mutatingKind, cfg.Name, func(ctx context.Context) error {
		_, err := api.Create(ctx, cfg, metav1.CreateOptions{})
		return err
	}, func(ctx context.Context) error {
		return api.Delete(ctx, cfg.Name, metav1.DeleteOptions{})
	})
	return cfg.Name
}

// RegisterValidatingWebhook is RegisterMutatingWebhook for a ValidatingWebhookConfiguration.
func (c *Cluster) RegisterValidatingWebhook(t testing.TB, w Webhook) string {
	t.Helper()
	hook, err := w.validating()
	if err != nil {
		t.Fatalf("kube: RegisterValidatingWebhook: %v", err)
	}
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: uniqueName(w.Name, 50)},
		Webhooks:   []admissionregistrationv1.ValidatingWebhook{hook},
	}
	api := c.client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	c.registerWebhook(t, validatingKind, cfg.Name, func(ctx context.Context) error {
		_, err := api.Create(ctx, cfg, metav1.CreateOptions{})
		return err
	}, func(ctx context.Context) error {
		return api.Delete(ctx, cfg.Name, metav1.DeleteOptions{})
	})
	return cfg.Name
}

func (c *Cluster) registerWebhook(t testing.TB, kind webhookKind, name string, create, del func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := create(ctx); err != nil {
		t.Fatalf("kube: creating %s webhook configuration %s: %v", kind, name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := ignoreNotFound(del(ctx)); err != nil {
			t.Errorf("kube: deleting %s webhook configuration %s: %v", kind, name, err)
			return
		}
		if err := c.syncWebhooks(ctx, kind); err != nil {
			t.Errorf("kube: after deleting %s: %v", name, err)
		}
	})
	if err := c.syncWebhooks(ctx, kind); err != nil {
		t.Fatalf("kube: after creating %s: %v", name, err)
	}
}

// webhookKind is mutating or validating.
type webhookKind string

const (
	mutatingKind   webhookKind = "mutating"
	validatingKind webhookKind = "validating"
)

// The API server reads webhook configurations through an informer, so a new configuration
// takes effect a moment after it is created. To know when, the cluster keeps one sentinel
// configuration of each kind pointing at its own HTTPS server: a sync moves the sentinel's
// object selector to a fresh token and dry-run creates config maps carrying the token until
// the sentinel denies one. Watch events of one kind arrive in order, so once the API server
// uses the updated sentinel it also sees every configuration change made before it.
type webhookSync struct {
	mu     sync.Mutex // serialises syncs and guards srv
	srv    *HTTPSServer
	closed bool
}

const (
	sentinelName  = "l5d-test-webhook-sentinel"
	sentinelHook  = "sentinel.webhook.l5d.test"
	sentinelLabel = "l5d.test/webhook-sync"
	sentinelDeny  = "l5d webhook sentinel token "
)

// sentinelHandler denies every request, naming the token label of the object.
var sentinelHandler = AdmissionFunc(func(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	var obj metav1.PartialObjectMetadata
	_ = json.Unmarshal(req.Object.Raw, &obj)
	return Denied(sentinelDeny + obj.Labels[sentinelLabel])
})

func (ws *webhookSync) close() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.closed = true
	if ws.srv != nil {
		ws.srv.Close()
	}
}

// webhookSyncTimeout bounds the wait for the API server to pick up a configuration change.
const webhookSyncTimeout = 30 * time.Second

// syncWebhooks returns once the API server acts on every configuration change of kind made
// before the call.
func (c *Cluster) syncWebhooks(ctx context.Context, kind webhookKind) error {
	ws := &c.webhooks
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed {
		return fmt.Errorf("the control plane is stopped")
	}
	if ws.srv == nil {
		srv, err := newHTTPSServer(sentinelHandler)
		if err != nil {
			return fmt.Errorf("starting the webhook sentinel: %w", err)
		}
		ws.srv = srv
	}
	token := randomSuffix(12)
	if err := c.putSentinel(ctx, kind, token); err != nil {
		return err
	}
	probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		GenerateName: "webhook-sync-", Namespace: metav1.NamespaceDefault,
		Labels: map[string]string{sentinelLabel: token},
	}}
	deadline := time.Now().Add(webhookSyncTimeout)
	for {
		_, err := c.client.CoreV1().ConfigMaps(metav1.NamespaceDefault).Create(ctx, probe,
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil && strings.Contains(err.Error(), sentinelDeny+token) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the API server did not pick up the %s webhook configuration within %v (last probe: %v)", kind, webhookSyncTimeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond): // polling interval
		}
	}
}

// putSentinel creates or updates the sentinel configuration of kind to match token.
func (c *Cluster) putSentinel(ctx context.Context, kind webhookKind, token string) error {
	w := Webhook{
		Name: sentinelHook, URL: c.webhooks.srv.URL, CABundle: c.webhooks.srv.CABundle,
		Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule: admissionregistrationv1.Rule{
				APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"},
			},
		}},
		Namespaces:     []string{metav1.NamespaceDefault},
		ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{sentinelLabel: token}},
		TimeoutSeconds: 5,
	}
	meta := metav1.ObjectMeta{Name: sentinelName}
	var err error
	switch kind {
	case mutatingKind:
		hook, herr := w.mutating()
		if herr != nil {
			return herr
		}
		api := c.client.AdmissionregistrationV1().MutatingWebhookConfigurations()
		cfg := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: meta, Webhooks: []admissionregistrationv1.MutatingWebhook{hook}}
		var cur *admissionregistrationv1.MutatingWebhookConfiguration
		if cur, err = api.Get(ctx, sentinelName, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			_, err = api.Create(ctx, cfg, metav1.CreateOptions{})
		} else if err == nil {
			cfg.ResourceVersion = cur.ResourceVersion
			_, err = api.Update(ctx, cfg, metav1.UpdateOptions{})
		}
	case validatingKind:
		hook, herr := w.validating()
		if herr != nil {
			return herr
		}
		api := c.client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
		cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: meta, Webhooks: []admissionregistrationv1.ValidatingWebhook{hook}}
		var cur *admissionregistrationv1.ValidatingWebhookConfiguration
		if cur, err = api.Get(ctx, sentinelName, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			_, err = api.Create(ctx, cfg, metav1.CreateOptions{})
		} else if err == nil {
			cfg.ResourceVersion = cur.ResourceVersion
			_, err = api.Update(ctx, cfg, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("writing the %s webhook sentinel: %w", kind, err)
	}
	return nil
}
