// Command l5d-demo-stat prints the golden metrics of every deployment in a namespace,
// like `linkerd viz stat deploy`, computed from two scrapes of the meshed pods' proxies
// (through the API server's pods/proxy subresource) -interval apart: once with -once,
// otherwise every interval until interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/l5d-go/l5d/cli/goldenmetrics"
)

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
	namespace := flag.String("namespace", "l5d-demo", "namespace whose deployments to report")
	interval := flag.Duration("interval", 10*time.Second, "time between the two scrapes a figure is computed from")
	once := flag.Bool("once", false, "print one table and exit")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, os.Stderr, *kubeconfig, *namespace, *interval, *once); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "l5d-demo-stat:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out, warn io.Writer, kubeconfig, namespace string, interval time.Duration, once bool) error {
	if interval <= 0 {
		return fmt.Errorf("-interval %v must be positive", interval)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return fmt.Errorf("loading the kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("building the Kubernetes client: %w", err)
	}
	s := &goldenmetrics.Scraper{Client: client, Namespace: namespace}
	before, err := scrape(ctx, s, warn)
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
		after, err := scrape(ctx, s, warn)
		if err != nil {
			return err
		}
		if err := goldenmetrics.WriteTable(out, goldenmetrics.Stats(before, after)); err != nil {
			return err
		}
		if once {
			return nil
		}
		fmt.Fprintln(out)
		before = after
	}
}

// scrape takes a snapshot and reports the pods it could not scrape on warn.
func scrape(ctx context.Context, s *goldenmetrics.Scraper, warn io.Writer) (goldenmetrics.Snapshot, error) {
	snap, err := s.Scrape(ctx)
	if err != nil {
		return goldenmetrics.Snapshot{}, err
	}
	for _, d := range snap.Resources {
		for _, e := range d.Errors {
			fmt.Fprintln(warn, "warning:", e)
		}
	}
	return snap, nil
}
