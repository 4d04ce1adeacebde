// Package check runs the health checks of `linkerd check` against a cluster and prints
// them in Linkerd's table or JSON format.
package check

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/pkg/inject"
	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// Options select and parameterise the checks.
type Options struct {
	// Pre runs the pre-installation checks instead of the control-plane checks.
	Pre bool
	// Namespace is the control-plane namespace.
	Namespace string
	// Now is the clock for certificate validity (default time.Now).
	Now func() time.Time
	// Proxy adds the linkerd-data-plane checks for the meshed pods of DataPlaneNamespace
	// (all namespaces when empty).
	Proxy              bool
	DataPlaneNamespace string
	// CLIVersion is compared with the control plane's and the proxies' versions.
	CLIVersion string
	// ExpectedVersion is the version the CLI, control plane and proxies should run
	// (`--expected-version`); without it the up-to-date checks are skipped, since l5d has no
	// version-check service to ask for the latest release.
	ExpectedVersion string
	// CRDs runs only the Kubernetes API and CRD checks (`--crds`).
	CRDs bool
	// CNIEnabled adds the linkerd-cni-plugin checks (--linkerd-cni-enabled), before and
	// after installation.
	CNIEnabled bool
}

// Result is the outcome of one check.
type Result struct {
	Name    string `json:"description"`
	Result  string `json:"result"` // success, warning or error
	Error   string `json:"error,omitempty"`
	Hint    string `json:"hint,omitempty"`
	warning bool
}

// Category is a named group of results.
type Category struct {
	Name   string   `json:"categoryName"`
	Checks []Result `json:"checks"`
}

// Report is the outcome of a run.
type Report struct {
	Success    bool       `json:"success"`
	Categories []Category `json:"categories"`
}

type check struct {
	name    string
	hint    string
	warning bool // a failure is only a warning
	fatal   bool // a failure stops the run
	run     func(ctx context.Context) error
}

type group struct {
	name   string
	checks []check
}

const hintBase = "https://linkerd.io/2/checks/#"

// Run runs the checks against the cluster reached by kube and dyn.
func Run(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, o Options) Report {
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &runner{kube: kube, dyn: dyn, o: o}
	groups := []func() group{r.kubernetesAPI, r.kubernetesVersion}
	switch {
	case o.CRDs:
		groups = append(groups, r.crds)
	case o.Pre:
		groups = append(groups, r.preSetup, r.linkerdVersion)
		if o.CNIEnabled {
			groups = append(groups, r.cniPlugin)
		}
	default:
		if o.CNIEnabled {
			groups = append(groups, r.cniPlugin)
		}
		groups = append(groups, r.existence, r.config, r.identity, r.webhooks, r.linkerdVersion,
			r.controlPlaneVersion, r.controlPlaneProxy, r.ha)
		if o.Proxy {
			groups = append(groups, r.identityDataPlane, r.dataPlane, r.opaquePorts)
		}
		groups = append(groups, r.extensions)
	}
	return runGroups(ctx, groups)
}

// runGroups runs the checks of each group in order. A group is built only when the
// previous groups have run, so that it can use what they found; a failed fatal check ends
// the run.
func runGroups(ctx context.Context, groups []func() group) Report {
	rep := Report{Success: true}
	for _, build := range groups {
		g := build()
		cat := Category{Name: g.name}
		stop := false
		for _, c := range g.checks {
			err := c.run(ctx)
			if errors.Is(err, errSkip) {
				continue
			}
			res := Result{Name: c.name, Result: "success"}
			if err != nil {
				res.Error, res.Hint = err.Error(), hintBase+c.hint
				if c.warning {
					res.Result, res.warning = "warning", true
				} else {
					res.Result = "error"
					rep.Success = false
				}
			}
			cat.Checks = append(cat.Checks, res)
			if err != nil && c.fatal {
				stop = true
				break
			}
		}
		if len(cat.Checks) > 0 {
			rep.Categories = append(rep.Categories, cat)
		}
		if stop {
			break
		}
	}
	return rep
}

// WriteTable prints rep the way `linkerd check` does.
func WriteTable(w io.Writer, rep Report) {
	for _, c := range rep.Categories {
		fmt.Fprintf(w, "%s\n%s\n", c.Name, dashes(len(c.Name)))
		for _, r := range c.Checks {
			switch r.Result {
			case "success":
				fmt.Fprintf(w, "√ %s\n", r.Name)
			case "warning":
				fmt.Fprintf(w, "‼ %s\n    %s\n    see %s for hints\n", r.Name, r.Error, r.Hint)
			default:
				fmt.Fprintf(w, "× %s\n    %s\n    see %s for hints\n", r.Name, r.Error, r.Hint)
			}
		}
		fmt.Fprintln(w)
	}
	if rep.Success {
		fmt.Fprintln(w, "Status check results are √")
	} else {
		fmt.Fprintln(w, "Status check results are ×")
	}
}

// WriteShort prints rep the way `linkerd check -o short` does: only the checks that did not
// succeed, under their category, then the status line.
func WriteShort(w io.Writer, rep Report) {
	var short Report
	short.Success = rep.Success
	for _, c := range rep.Categories {
		var bad []Result
		for _, r := range c.Checks {
			if r.Result != "success" {
				bad = append(bad, r)
			}
		}
		if len(bad) > 0 {
			short.Categories = append(short.Categories, Category{Name: c.Name, Checks: bad})
		}
	}
	WriteTable(w, short)
}

// WriteJSON prints rep as JSON.
func WriteJSON(w io.Writer, rep Report) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(rep)
}

func dashes(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = '-'
	}
	return string(b)
}

type runner struct {
	kube kubernetes.Interface
	dyn  dynamic.Interface
	o    Options
	// webhooks the installed chart enables, from linkerd-config's values
	spValidator, policyValidator bool
	// haInstall is webhookFailurePolicy Fail (values-ha.yaml); clusterNets the
	// clusterNetworks value.
	haInstall   bool
	clusterNets string
}

func (r *runner) kubernetesAPI() group {
	return group{"kubernetes-api", []check{
		{name: "can initialize the client", hint: "k8s-api", fatal: true, run: func(context.Context) error {
			if r.kube == nil {
				return errors.New("no Kubernetes client")
			}
			return nil
		}},
		{name: "can query the Kubernetes API", hint: "k8s-api", fatal: true, run: func(context.Context) error {
			_, err := r.kube.Discovery().ServerVersion()
			return err
		}},
	}}
}

func (r *runner) kubernetesVersion() group {
	return group{"kubernetes-version", []check{
		{name: "is running the minimum Kubernetes API version", hint: "k8s-version", run: func(context.Context) error {
			v, err := r.kube.Discovery().ServerVersion()
			if err != nil {
				return err
			}
			var major, minor int
			if _, err := fmt.Sscanf(v.Major+"."+v.Minor, "%d.%d", &major, &minor); err != nil {
				return fmt.Errorf("unparsable server version %s.%s", v.Major, v.Minor)
			}
			if major < 1 || (major == 1 && minor < 22) {
				//lint:ignore ST1005 the wording is Linkerd's check output
				return fmt.Errorf("Kubernetes is on version [%s.%s], but version [1.22] or more recent is required", v.Major, v.Minor)
			}
			return nil
		}},
	}}
}

func (r *runner) can(ctx context.Context, verb, group, resource, ns string) error {
	rev, err := r.kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authv1.SelfSubjectAccessReview{
		Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authv1.ResourceAttributes{
			Verb: verb, Group: group, Resource: resource, Namespace: ns,
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	if !rev.Status.Allowed {
		return fmt.Errorf("missing permission to %s %s", verb, resource)
	}
	return nil
}

func (r *runner) preSetup() group {
	ns := r.o.Namespace
	canCheck := func(name, verb, grp, res, ns string) check {
		return check{name: name, hint: "pre-k8s", run: func(ctx context.Context) error { return r.can(ctx, verb, grp, res, ns) }}
	}
	return group{"pre-kubernetes-setup", []check{
		{name: "control plane namespace does not already exist", hint: "pre-ns", run: func(ctx context.Context) error {
			_, err := r.kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if err == nil {
				//lint:ignore ST1005 the wording is Linkerd's check output
				return fmt.Errorf("The \"%s\" namespace already exists", ns)
			}
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}},
		canCheck("can create non-namespaced resources", "create", "", "namespaces", ""),
		canCheck("can create ServiceAccounts", "create", "", "serviceaccounts", ns),
		canCheck("can create Services", "create", "", "services", ns),
		canCheck("can create Deployments", "create", "apps", "deployments", ns),
		canCheck("can create CronJobs", "create", "batch", "cronjobs", ns),
		canCheck("can create ConfigMaps", "create", "", "configmaps", ns),
		canCheck("can create Secrets", "create", "", "secrets", ns),
		canCheck("can read Secrets", "get", "", "secrets", ns),
		canCheck("can read extension-apiserver-authentication configmap", "get", "", "configmaps", "kube-system"),
		{name: "no clock skew detected", hint: "pre-k8s-clock-skew", warning: true, run: r.clockSkew},
		r.gatewayAPICheck(),
	}}
}

func (r *runner) existence() group {
	ns := r.o.Namespace
	return group{"linkerd-existence", append([]check{
		{name: "'linkerd-config' config map exists", hint: "l5d-existence-linkerd-config", fatal: true, run: func(ctx context.Context) error {
			cm, err := r.kube.CoreV1().ConfigMaps(ns).Get(ctx, "linkerd-config", metav1.GetOptions{})
			if err != nil {
				return err
			}
			var vals struct {
				ProfileValidator     struct{ Enabled bool } `json:"profileValidator"`
				PolicyValidator      struct{ Enabled bool } `json:"policyValidator"`
				WebhookFailurePolicy string                 `json:"webhookFailurePolicy"`
				ClusterNetworks      string                 `json:"clusterNetworks"`
			}
			if err := yaml.Unmarshal([]byte(cm.Data["values"]), &vals); err != nil {
				return fmt.Errorf("linkerd-config values: %w", err)
			}
			r.spValidator, r.policyValidator = vals.ProfileValidator.Enabled, vals.PolicyValidator.Enabled
			r.haInstall, r.clusterNets = vals.WebhookFailurePolicy == "Fail", vals.ClusterNetworks
			return nil
		}},
		{name: "control plane pods are ready", hint: "l5d-api-control-ready", run: func(ctx context.Context) error {
			for _, c := range []string{"identity", "destination", "proxy-injector"} {
				pods, err := r.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "linkerd.io/control-plane-component=" + c})
				if err != nil {
					return err
				}
				ready := 0
				for _, p := range pods.Items {
					for _, cond := range p.Status.Conditions {
						if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
							ready++
						}
					}
				}
				if ready == 0 {
					//lint:ignore ST1005 the wording is Linkerd's check output
					return fmt.Errorf("No running pods for \"linkerd-%s\"", c)
				}
			}
			return nil
		}},
	}, r.clusterNetworks()...)}
}

func (r *runner) config() group {
	ns := r.o.Namespace
	exists := func(name string, gvr schema.GroupVersionResource, namespaced bool, names ...string) check {
		return check{name: name, hint: "l5d-existence-" + gvr.Resource, run: func(ctx context.Context) error {
			for _, n := range names {
				ri := r.dyn.Resource(gvr)
				var err error
				if namespaced {
					_, err = ri.Namespace(ns).Get(ctx, n, metav1.GetOptions{})
				} else {
					_, err = ri.Get(ctx, n, metav1.GetOptions{})
				}
				if err != nil {
					return fmt.Errorf("missing %s: %s", gvr.Resource, n)
				}
			}
			return nil
		}}
	}
	rbac := func(res string) schema.GroupVersionResource {
		return schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: res}
	}
	adm := func(res string) schema.GroupVersionResource {
		return schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: res}
	}
	roles := []string{"linkerd-" + ns + "-identity", "linkerd-" + ns + "-destination", "linkerd-" + ns + "-proxy-injector", "linkerd-policy"}
	var vwcs []string
	if r.spValidator {
		vwcs = append(vwcs, "linkerd-sp-validator-webhook-config")
	}
	if r.policyValidator {
		vwcs = append(vwcs, "linkerd-policy-validator-webhook-config")
	}
	bindings := []string{"linkerd-" + ns + "-identity", "linkerd-" + ns + "-destination", "linkerd-" + ns + "-proxy-injector", "linkerd-destination-policy"}
	return group{"linkerd-config", []check{
		exists("control plane Namespace exists", schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}, false, ns),
		exists("control plane ClusterRoles exist", rbac("clusterroles"), false, roles...),
		exists("control plane ClusterRoleBindings exist", rbac("clusterrolebindings"), false, bindings...),
		exists("control plane ServiceAccounts exist", schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}, true,
			"linkerd-identity", "linkerd-destination", "linkerd-proxy-injector"),
		{name: "control plane CustomResourceDefinitions exist", hint: "l5d-existence-crd", run: r.crdsExist},
		r.gatewayAPICheck(),
		exists("control plane MutatingWebhookConfigurations exist", adm("mutatingwebhookconfigurations"), false,
			"linkerd-proxy-injector-webhook-config"),
		exists("control plane ValidatingWebhookConfigurations exist", adm("validatingwebhookconfigurations"), false, vwcs...),
	}}
}

// validity checks c against now and the 60-day warning window.
func validity(c *x509.Certificate, now time.Time, what string) (within, sixty error) {
	switch {
	case now.Before(c.NotBefore):
		within = fmt.Errorf("%s %s is not valid before %s", what, c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339))
	case now.After(c.NotAfter):
		within = fmt.Errorf("%s %s expired at %s", what, c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339))
	}
	if c.NotAfter.Sub(now) < 60*24*time.Hour {
		sixty = fmt.Errorf("%s %s will expire on %s", what, c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339))
	}
	return within, sixty
}

func (r *runner) identity() group {
	ns := r.o.Namespace
	var anchors []*x509.Certificate
	var issuer *x509.Certificate
	var inter []*x509.Certificate
	now := r.o.Now()
	ecdsa := func(cs []*x509.Certificate, what string) error {
		for _, c := range cs {
			if c.PublicKeyAlgorithm != x509.ECDSA {
				return fmt.Errorf("%s %s uses %s; ECDSA P-256 is required", what, c.Subject.CommonName, c.PublicKeyAlgorithm)
			}
		}
		return nil
	}
	return group{"linkerd-identity", []check{
		{name: "certificate config is valid", hint: "l5d-identity-cert-config-valid", fatal: true, run: func(ctx context.Context) error {
			cm, err := r.kube.CoreV1().ConfigMaps(ns).Get(ctx, "linkerd-identity-trust-roots", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if anchors, err = certs.ParseCertificatesPEM([]byte(cm.Data["ca-bundle.crt"])); err != nil {
				return fmt.Errorf("trust anchors in linkerd-identity-trust-roots: %w", err)
			}
			s, err := r.kube.CoreV1().Secrets(ns).Get(ctx, "linkerd-identity-issuer", metav1.GetOptions{})
			if err != nil {
				return err
			}
			crt, _ := IssuerPEM(s.Data)
			if issuer, inter, err = certs.DecodeChainPEM(crt); err != nil {
				return fmt.Errorf("issuer certificate in linkerd-identity-issuer: %w", err)
			}
			return nil
		}},
		{name: "trust anchors are using supported crypto algorithm", hint: "l5d-identity-trustAnchors-use-supported-crypto", run: func(context.Context) error {
			return ecdsa(anchors, "trust anchor")
		}},
		{name: "trust anchors are within their validity period", hint: "l5d-identity-trustAnchors-are-time-valid", run: func(context.Context) error {
			for _, a := range anchors {
				if err, _ := validity(a, now, "trust anchor"); err != nil {
					return err
				}
			}
			return nil
		}},
		{name: "trust anchors are valid for at least 60 days", hint: "l5d-identity-trustAnchors-not-expiring-soon", warning: true, run: func(context.Context) error {
			for _, a := range anchors {
				if _, err := validity(a, now, "trust anchor"); err != nil {
					return err
				}
			}
			return nil
		}},
		{name: "issuer cert is using supported crypto algorithm", hint: "l5d-identity-issuer-cert-uses-supported-crypto", run: func(context.Context) error {
			return ecdsa([]*x509.Certificate{issuer}, "issuer certificate")
		}},
		{name: "issuer cert is within its validity period", hint: "l5d-identity-issuer-cert-is-time-valid", run: func(context.Context) error {
			err, _ := validity(issuer, now, "issuer certificate")
			return err
		}},
		{name: "issuer cert is valid for at least 60 days", hint: "l5d-identity-issuer-cert-not-expiring-soon", warning: true, run: func(context.Context) error {
			_, err := validity(issuer, now, "issuer certificate")
			return err
		}},
		{name: "issuer cert is issued by the trust anchor", hint: "l5d-identity-issuer-cert-issued-by-trust-anchor", run: func(context.Context) error {
			return certs.VerifyIssuer(issuer, inter, anchors, now)
		}},
	}}
}

func (r *runner) webhooks() group {
	ns := r.o.Namespace
	now := r.o.Now()
	var checks []check
	for _, w := range []struct {
		name, secret string
		enabled      bool
	}{
		{"proxy-injector", "linkerd-proxy-injector-k8s-tls", true},
		{"sp-validator", "linkerd-sp-validator-k8s-tls", r.spValidator},
		{"policy-validator", "linkerd-policy-validator-k8s-tls", r.policyValidator},
	} {
		if !w.enabled {
			continue
		}
		var cert *x509.Certificate
		checks = append(checks,
			check{name: w.name + " webhook has valid cert", hint: "l5d-" + w.name + "-webhook-cert-valid", run: func(ctx context.Context) error {
				s, err := r.kube.CoreV1().Secrets(ns).Get(ctx, w.secret, metav1.GetOptions{})
				if err != nil {
					return err
				}
				if cert, err = certs.DecodeCertificatePEM(s.Data["tls.crt"]); err != nil {
					return fmt.Errorf("secret %s: %w", w.secret, err)
				}
				err, _ = validity(cert, now, w.name+" certificate")
				return err
			}},
			check{name: w.name + " cert is valid for at least 60 days", hint: "l5d-" + w.name + "-webhook-cert-not-expiring-soon", warning: true, run: func(context.Context) error {
				if cert == nil {
					return errors.New("no certificate")
				}
				_, err := validity(cert, now, w.name+" certificate")
				return err
			}},
		)
	}
	return group{"linkerd-webhooks-and-apisvc-tls", checks}
}

func (r *runner) controlPlaneVersion() group {
	var version string
	return group{"control-plane-version", []check{
		{name: "can retrieve the control plane version", hint: "l5d-version-control", fatal: true, run: func(ctx context.Context) error {
			cm, err := r.kube.CoreV1().ConfigMaps(r.o.Namespace).Get(ctx, "linkerd-config", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if version = cm.Labels["app.kubernetes.io/version"]; version == "" {
				return errors.New("linkerd-config has no app.kubernetes.io/version label")
			}
			return nil
		}},
		{name: "control plane is up-to-date", hint: "l5d-version-control", warning: true, run: func(context.Context) error {
			return r.upToDate(version)
		}},
		{name: "control plane and cli versions match", hint: "l5d-version-control", warning: true, run: func(context.Context) error {
			if version != r.o.CLIVersion {
				return fmt.Errorf("control plane running %s but cli running %s", version, r.o.CLIVersion)
			}
			return nil
		}},
	}}
}

// Meshed reports whether pod has a linkerd-proxy container (classic or native sidecar).
func Meshed(p *corev1.Pod) bool { return inject.HasProxy(&p.Spec) }

// dataPlaneNamespace is the first check of a data-plane category: none for all namespaces
// (ns empty), else that ns exists.
func (r *runner) dataPlaneNamespace(ns string) []check {
	if ns == "" {
		return nil
	}
	return []check{{name: "data plane namespace exists", hint: "l5d-data-plane-exists", fatal: true, run: func(ctx context.Context) error {
		_, err := r.kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			//lint:ignore ST1005 the wording is Linkerd's check output
			return fmt.Errorf("The \"%s\" namespace does not exist", ns)
		}
		return err
	}}}
}

func (r *runner) dataPlane() group {
	ns := r.o.DataPlaneNamespace
	var pods []corev1.Pod
	return group{"linkerd-data-plane", append(r.dataPlaneNamespace(ns),
		check{name: "data plane proxies are ready", hint: "l5d-data-plane-ready", run: func(ctx context.Context) error {
			l, err := r.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			pods = pods[:0]
			for _, p := range l.Items {
				if Meshed(&p) {
					pods = append(pods, p)
				}
			}
			if len(pods) == 0 {
				return errors.New("no meshed pods found")
			}
			for _, p := range pods {
				ready := false
				for _, st := range append(append([]corev1.ContainerStatus{}, p.Status.ContainerStatuses...), p.Status.InitContainerStatuses...) {
					if st.Name == "linkerd-proxy" && st.Ready {
						ready = true
					}
				}
				if !ready {
					//lint:ignore ST1005 the wording is Linkerd's check output
					return fmt.Errorf("The \"%s\" pod's proxy is not ready", p.Name)
				}
			}
			return nil
		}},
		check{name: "data plane is up-to-date", hint: "l5d-data-plane-version", warning: true, run: func(context.Context) error {
			return r.proxiesUpToDate(pods)
		}},
		check{name: "data plane and cli versions match", hint: "l5d-data-plane-cli-version", warning: true, run: func(context.Context) error {
			for _, p := range pods {
				if v := p.Annotations["linkerd.io/proxy-version"]; v != r.o.CLIVersion {
					return fmt.Errorf("%s running %s but cli running %s", p.Name, v, r.o.CLIVersion)
				}
			}
			return nil
		}},
		check{name: "data plane pod labels are configured correctly", hint: "l5d-data-plane-pod-labels", warning: true, run: func(context.Context) error {
			var objs []metav1.ObjectMeta
			for _, p := range pods {
				objs = append(objs, p.ObjectMeta)
			}
			return misplacedLabels("pods", objs)
		}},
		check{name: "data plane service labels are configured correctly", hint: "l5d-data-plane-services-labels", warning: true, run: func(ctx context.Context) error {
			svcs, err := r.kube.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			var objs []metav1.ObjectMeta
			for _, s := range svcs.Items {
				objs = append(objs, s.ObjectMeta)
			}
			return misplacedLabels("services", objs)
		}},
		check{name: "data plane service annotations are configured correctly", hint: "l5d-data-plane-services-annotations", warning: true, run: func(ctx context.Context) error {
			svcs, err := r.kube.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			return podOnlyServiceAnnotations(svcs.Items)
		}},
	)}
}

// IssuerPEM returns the issuer certificate chain and key from the data of the
// linkerd-identity-issuer Secret, whichever layout it has: crt.pem and key.pem
// (linkerd.io/tls, what install writes) or tls.crt and tls.key (kubernetes.io/tls, written
// by cert-manager and other external issuers).
func IssuerPEM(data map[string][]byte) (crt, key []byte) {
	if c, ok := data["crt.pem"]; ok {
		return c, data["key.pem"]
	}
	return data["tls.crt"], data["tls.key"]
}
