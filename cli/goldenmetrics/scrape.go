package goldenmetrics

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/l5d-go/l5d/cli/podconn"
	"github.com/l5d-go/l5d/cli/resource"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// AdminPort is the proxy's admin port, serving /metrics.
const AdminPort = 4191

// Scraper reads the proxies' metrics of the pods of a set of resources through the API
// server's pods/proxy subresource, so it works wherever the API server reaches pods.
type Scraper struct {
	Client kubernetes.Interface
	// Namespace holds the resources; with Kind resource.Namespace and no Name, empty
	// means every namespace.
	Namespace string
	// Kind groups the pods: resource.Deployment (the default: pods matched by each
	// deployment's selector), resource.Service (by each Service's selector; the pods'
	// inbound traffic, whichever way it came), resource.Pod (each pod alone) or
	// resource.Namespace.
	Kind string
	// Name limits the scrape to the one resource of that name; empty means all of Kind.
	Name string
}

// Snapshot is one scrape of every selected resource.
type Snapshot struct {
	At        time.Time
	Resources []ResourceScrape
}

// ResourceScrape is one resource's pods and the metrics of its meshed ones.
type ResourceScrape struct {
	Name string
	// Pods counts the resource's pods that are not finished, Meshed those of them with
	// a proxy container.
	Pods, Meshed int
	// Counters holds each scraped pod's counters by pod UID.
	Counters map[types.UID]Counters
	// Errors are the pods that could not be scraped, with why.
	Errors []error
}

// group is a resource and the pods it selects.
type group struct {
	name string
	pods []*corev1.Pod
}

// Scrape lists the resources and their pods and scrapes every running meshed pod.
// Failing to list (or a named resource that does not exist) is an error; a pod that
// cannot be scraped is recorded in its resource's Errors.
func (s *Scraper) Scrape(ctx context.Context) (Snapshot, error) {
	groups, err := s.groups(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	snap := Snapshot{At: time.Now()}
	for _, g := range groups {
		rs := ResourceScrape{Name: g.name, Counters: map[types.UID]Counters{}}
		for _, p := range g.pods {
			rs.Pods++
			if !resource.Meshed(p) {
				continue
			}
			rs.Meshed++
			if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
				continue
			}
			c, err := ScrapePod(ctx, s.Client, p.Namespace, p.Name)
			if err != nil {
				rs.Errors = append(rs.Errors, err)
				continue
			}
			rs.Counters[p.UID] = c
		}
		snap.Resources = append(snap.Resources, rs)
	}
	return snap, nil
}

// groups lists the selected resources, sorted by name, with their unfinished pods.
func (s *Scraper) groups(ctx context.Context) ([]group, error) {
	kind := s.Kind
	if kind == "" {
		kind = resource.Deployment
	}
	podNS := s.Namespace
	if kind == resource.Namespace && s.Name != "" {
		podNS = s.Name
	}
	pl, err := s.Client.CoreV1().Pods(podNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing pods in %s: %w", nsName(podNS), err)
	}
	pods := make([]*corev1.Pod, 0, len(pl.Items))
	for i := range pl.Items {
		if !resource.Finished(&pl.Items[i]) {
			pods = append(pods, &pl.Items[i])
		}
	}
	var groups []group
	switch kind {
	case resource.Deployment:
		var names []string
		sels := map[string]labels.Selector{}
		if s.Name != "" {
			d, err := s.Client.AppsV1().Deployments(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("deployment %s/%s: %w", s.Namespace, s.Name, err)
			}
			names, sels[d.Name] = []string{d.Name}, selector(d.Spec.Selector)
		} else {
			dl, err := s.Client.AppsV1().Deployments(s.Namespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, fmt.Errorf("listing deployments in %s: %w", nsName(s.Namespace), err)
			}
			for _, d := range dl.Items {
				names = append(names, d.Name)
				sels[d.Name] = selector(d.Spec.Selector)
			}
		}
		for _, n := range names {
			g := group{name: n}
			for _, p := range pods {
				if sel := sels[n]; !sel.Empty() && sel.Matches(labels.Set(p.Labels)) {
					g.pods = append(g.pods, p)
				}
			}
			groups = append(groups, g)
		}
	case resource.Service:
		var svcs []corev1.Service
		if s.Name != "" {
			svc, err := s.Client.CoreV1().Services(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("service %s/%s: %w", s.Namespace, s.Name, err)
			}
			svcs = []corev1.Service{*svc}
		} else {
			sl, err := s.Client.CoreV1().Services(s.Namespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, fmt.Errorf("listing services in %s: %w", nsName(s.Namespace), err)
			}
			svcs = sl.Items
		}
		for _, svc := range svcs {
			g := group{name: svc.Name}
			if len(svc.Spec.Selector) > 0 { // a Service without a selector has no pods
				sel := labels.SelectorFromSet(svc.Spec.Selector)
				for _, p := range pods {
					if sel.Matches(labels.Set(p.Labels)) {
						g.pods = append(g.pods, p)
					}
				}
			}
			groups = append(groups, g)
		}
	case resource.Pod:
		for _, p := range pods {
			if s.Name == "" || p.Name == s.Name {
				groups = append(groups, group{name: p.Name, pods: []*corev1.Pod{p}})
			}
		}
		if s.Name != "" && len(groups) == 0 {
			return nil, fmt.Errorf("pod %s/%s: not found or finished", s.Namespace, s.Name)
		}
	case resource.Namespace:
		var names []string
		if s.Name != "" {
			if _, err := s.Client.CoreV1().Namespaces().Get(ctx, s.Name, metav1.GetOptions{}); err != nil {
				return nil, fmt.Errorf("namespace %s: %w", s.Name, err)
			}
			names = []string{s.Name}
		} else if s.Namespace != "" {
			names = []string{s.Namespace}
		} else {
			nl, err := s.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, fmt.Errorf("listing namespaces: %w", err)
			}
			for _, n := range nl.Items {
				names = append(names, n.Name)
			}
		}
		byNS := map[string][]*corev1.Pod{}
		for _, p := range pods {
			byNS[p.Namespace] = append(byNS[p.Namespace], p)
		}
		for _, n := range names {
			groups = append(groups, group{name: n, pods: byNS[n]})
		}
	default:
		return nil, fmt.Errorf("resource kind %q: stat covers deployments, services, pods and namespaces", kind)
	}
	slices.SortFunc(groups, func(a, b group) int { return strings.Compare(a.name, b.name) })
	return groups, nil
}

// selector converts a workload's label selector; an invalid one selects nothing.
func selector(ls *metav1.LabelSelector) labels.Selector {
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return labels.Nothing()
	}
	return sel
}

func nsName(ns string) string {
	if ns == "" {
		return "every namespace"
	}
	return "namespace " + ns
}

// ScrapePod reads one pod's proxy /metrics through the API server and parses it.
func ScrapePod(ctx context.Context, client kubernetes.Interface, ns, pod string) (Counters, error) {
	body, err := podconn.Get(ctx, client, ns, pod, AdminPort, "metrics")
	if err != nil {
		return Counters{}, fmt.Errorf("scraping the proxy of pod %s/%s: %w", ns, pod, err)
	}
	c, err := Parse(bytes.NewReader(body))
	if err != nil {
		return Counters{}, fmt.Errorf("pod %s/%s: %w", ns, pod, err)
	}
	return c, nil
}

// Row is one resource's line of the stat table.
type Row struct {
	Name         string
	Pods, Meshed int
	Golden
}

// Stats computes each resource's golden metrics between two snapshots. Only pods
// scraped in both count; a resource missing from before has no traffic figures.
func Stats(before, after Snapshot) []Row {
	interval := after.At.Sub(before.At)
	prev := map[string]ResourceScrape{}
	for _, d := range before.Resources {
		prev[d.Name] = d
	}
	rows := make([]Row, 0, len(after.Resources))
	for _, d := range after.Resources {
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
