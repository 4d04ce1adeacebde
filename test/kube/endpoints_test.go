package kube

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/pkg/eventually"
)

func TestDeploymentPodsReachEndpointSlice(t *testing.T) {
	t.Parallel()
	c := Shared(t)
	ns := c.Namespace(t)
	node := c.CreateNode(t, Node{InternalIP: "127.0.0.1"})
	c.Apply(t, ns, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {kubernetes.io/hostname: `+node.Name+`}
      containers:
      - {name: app, image: registry.invalid/web, ports: [{name: http, containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
`)

	// The deployment and replica set controllers make the pods; the scheduler binds them.
	ctx := context.Background()
	var names []string
	eventually.NoErrorWithin(t, time.Minute, "two scheduled web pods", func() error {
		pods, err := c.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return err
		}
		names = names[:0]
		for _, p := range pods.Items {
			if p.Spec.NodeName != node.Name {
				return fmt.Errorf("pod %s is on node %q", p.Name, p.Spec.NodeName)
			}
			names = append(names, p.Name)
		}
		if len(names) != 2 {
			return fmt.Errorf("%d pods", len(names))
		}
		return nil
	})
	var want []string
	for i, name := range names {
		ip := fmt.Sprintf("10.244.7.%d", i+10)
		c.SetPodStatus(t, ns, name, PodStatus{IPs: []string{ip}, Ready: true})
		want = append(want, ip)
	}

	eventually.NoErrorWithin(t, time.Minute, "an EndpointSlice with both ready pods", func() error {
		slices_, err := c.Client().DiscoveryV1().EndpointSlices(ns).List(ctx,
			metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		if err != nil {
			return err
		}
		var ready []string
		for _, s := range slices_.Items {
			for _, ep := range s.Endpoints {
				if ep.Conditions.Ready != nil && *ep.Conditions.Ready && ep.NodeName != nil && *ep.NodeName == node.Name {
					ready = append(ready, ep.Addresses...)
				}
			}
			if len(s.Ports) != 1 || s.Ports[0].Port == nil || *s.Ports[0].Port != 8080 {
				return fmt.Errorf("slice %s ports %v, want the named port resolved to 8080", s.Name, s.Ports)
			}
		}
		slices.Sort(ready)
		if !slices.Equal(ready, want) {
			return fmt.Errorf("ready addresses %v, want %v", ready, want)
		}
		return nil
	})
}
