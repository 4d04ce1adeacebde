package check

import (
	"context"
	"errors"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// JaegerOptions configure RunJaeger.
type JaegerOptions struct {
	// CLIVersion is compared with the extension's proxies' versions.
	CLIVersion string
}

const jaegerSelector = "linkerd.io/extension=jaeger"

// RunJaeger checks the jaeger extension as `linkerd jaeger check` does: its namespace, its
// pods meshed, running and with healthy proxies of the CLI's version, and the injector's
// webhook configuration.
func RunJaeger(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, o JaegerOptions) Report {
	v := &vizRunner{runner: runner{kube: kube, dyn: dyn, o: Options{CLIVersion: o.CLIVersion}}, vo: VizOptions{CLIVersion: o.CLIVersion}}
	return runGroups(ctx, []func() group{func() group { return jaegerGroup(v) }})
}

// jaegerGroup reuses the viz runner's checks of an extension's pods (v.ns is the jaeger
// namespace).
func jaegerGroup(v *vizRunner) group {
	return group{"linkerd-jaeger", []check{
		{name: "linkerd-jaeger extension Namespace exists", hint: "l5d-jaeger-ns-exists", fatal: true, run: func(ctx context.Context) error {
			if v.kube == nil {
				return errors.New("no Kubernetes client")
			}
			l, err := v.kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: jaegerSelector})
			if err != nil {
				return err
			}
			if len(l.Items) == 0 {
				return errors.New("could not find the linkerd-jaeger extension (no namespace labelled linkerd.io/extension=jaeger): install it with `linkerd jaeger install | kubectl apply -f -`")
			}
			v.ns = l.Items[0].Name
			return nil
		}},
		{name: "jaeger extension pods are injected", hint: "l5d-jaeger-pods-injection", run: v.podsInjected},
		{name: "jaeger injector pods are running", hint: "l5d-jaeger-pods-running", run: func(ctx context.Context) error {
			pods, err := v.pods(ctx)
			if err != nil {
				return err
			}
			for _, p := range pods {
				if p.Labels["component"] == "jaeger-injector" && ready(&p) {
					return nil
				}
			}
			//lint:ignore ST1005 the wording is Linkerd's check output
			return errors.New("No running pods for \"jaeger-injector\"")
		}},
		{name: "jaeger extension proxies are healthy", hint: "l5d-jaeger-proxy-healthy", run: v.proxiesHealthy},
		{name: "jaeger extension proxies and cli versions match", hint: "l5d-jaeger-proxy-cli-version", warning: true, run: v.proxyVersions},
		{name: "jaeger injector webhook is configured", hint: "l5d-jaeger-webhook", run: func(ctx context.Context) error {
			l, err := v.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{LabelSelector: jaegerSelector})
			if err != nil {
				return err
			}
			if len(l.Items) == 0 {
				return errors.New("no MutatingWebhookConfiguration labelled linkerd.io/extension=jaeger: new pods will not send spans")
			}
			return nil
		}},
	}}
}
