package golden

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// ProxyContainer is the name of the proxy container the injector adds to a meshed pod.
const ProxyContainer = "linkerd-proxy"

// AdminPort is the proxy's admin port, serving /metrics.
const AdminPort = 4191

// Scraper reads the proxies' metrics of every deployment in a namespace through the API
// server's pods/proxy subresource, so it works wherever the API server reaches pods.
type Scraper struct {
	Client    kubernetes.Interface
	Namespace string
}

// Snapshot is one scrape of every deployment of a namespace.
type Snapshot struct {
	At          time.Time
	Deployments []DeploymentScrape
}

// DeploymentScrape is one deployment's pods and the metrics of its meshed ones.
type DeploymentScrape struct {
	Name string
	// Pods counts the deployment's pods that are not finished, Meshed those of them
	// with a proxy container.
	Pods, Meshed int
	// Counters holds each scraped pod's counters by pod UID.
	Counters map[types.UID]Counters
	// Errors are the pods that could not be scraped, with why.
	Errors []error
}

// Scrape lists the namespace's deployments and pods and scrapes every running meshed
// pod. Failing to list is an error; a pod that cannot be scraped is recorded in its
// deployment's Errors.
func (s *Scraper) Scrape(ctx context.Context) (Snapshot, error) {
	deps, err := s.Client.AppsV1().Deployments(s.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return Snapshot{}, fmt.Errorf("listing deployments in %s: %w", s.Namespace, err)
	}
	pods, err := s.Client.CoreV1().Pods(s.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return Snapshot{}, fmt.Errorf("listing pods in %s: %w", s.Namespace, err)
	}
	items := deps.Items
	slices.SortFunc(items, func(a, b appsv1.Deployment) int { return strings.Compare(a.Name, b.Name) })
	snap := Snapshot{At: time.Now()}
	for _, d := range items {
		ds := DeploymentScrape{Name: d.Name, Counters: map[types.UID]Counters{}}
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil {
			ds.Errors = append(ds.Errors, fmt.Errorf("deployment %s has an invalid selector: %w", d.Name, err))
			snap.Deployments = append(snap.Deployments, ds)
			continue
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			if sel.Empty() || !sel.Matches(labels.Set(p.Labels)) || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				continue
			}
			ds.Pods++
			if !Meshed(p) {
				continue
			}
			ds.Meshed++
			if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
				continue
			}
			c, err := s.ScrapePod(ctx, p.Name)
			if err != nil {
				ds.Errors = append(ds.Errors, err)
				continue
			}
			ds.Counters[p.UID] = c
		}
		snap.Deployments = append(snap.Deployments, ds)
	}
	return snap, nil
}

// ScrapePod reads one pod's proxy /metrics through the API server and parses it.
func (s *Scraper) ScrapePod(ctx context.Context, pod string) (Counters, error) {
	body, err := s.Client.CoreV1().RESTClient().Get().
		Namespace(s.Namespace).Resource("pods").Name(pod + ":" + strconv.Itoa(AdminPort)).
		SubResource("proxy").Suffix("metrics").Do(ctx).Raw()
	if err != nil {
		// The body of a refusal says why (pod not found, address not proxyable, ...).
		if why := strings.TrimSpace(string(body)); why != "" && len(why) < 512 {
			return Counters{}, fmt.Errorf("scraping the proxy of pod %s/%s: %w: %s", s.Namespace, pod, err, why)
		}
		return Counters{}, fmt.Errorf("scraping the proxy of pod %s/%s: %w", s.Namespace, pod, err)
	}
	c, err := Parse(bytes.NewReader(body))
	if err != nil {
		return Counters{}, fmt.Errorf("pod %s/%s: %w", s.Namespace, pod, err)
	}
	return c, nil
}

// Meshed reports whether the pod has a proxy container, as a regular or a native
// sidecar (restartable init) container.
func Meshed(p *corev1.Pod) bool {
	for _, cs := range [][]corev1.Container{p.Spec.Containers, p.Spec.InitContainers} {
		for _, c := range cs {
			if c.Name == ProxyContainer {
				return true
			}
		}
	}
	return false
}

// Row is one deployment's line of the stat table.
type Row struct {
	Name         string
	Pods, Meshed int
	Golden
}

// Stats computes each deployment's golden metrics between two snapshots. Only pods
// scraped in both count; a deployment missing from before has no traffic figures.
func Stats(before, after Snapshot) []Row {
	interval := after.At.Sub(before.At)
	prev := map[string]DeploymentScrape{}
	for _, d := range before.Deployments {
		prev[d.Name] = d
	}
	rows := make([]Row, 0, len(after.Deployments))
	for _, d := range after.Deployments {
		var deltas []Counters
		for uid, c := range d.Counters {
			if b, ok := prev[d.Name].Counters[uid]; ok {
				deltas = append(deltas, Delta(b, c))
			}
		}
		rows = append(rows, Row{Name: d.Name, Pods: d.Pods, Meshed: d.Meshed, Golden: Compute(Add(deltas...), interval)})
	}
	return rows
}
