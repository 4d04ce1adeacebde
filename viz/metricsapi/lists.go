package metricsapi

import (
	"context"

	corev1 "k8s.io/api/core/v1"

	"github.com/l5d-go/l5d/pkg/inject"
	"github.com/l5d-go/l5d/pkg/vizapi"
)

// ListPods answers a ListPodsRequest: the cached pods of the selected namespace (every
// namespace without one), narrowed by its label selector, with whether each is meshed
// (Added) and its proxy ready, and the workload that owns it.
func (s *Server) ListPods(_ context.Context, req *vizapi.ListPodsRequest) (*vizapi.ListPodsResponse, error) {
	ns, selector := "", ""
	if req.Selector != nil {
		ns, selector = req.Selector.Resource.Namespace, req.Selector.LabelSelector
	}
	pods, err := s.Cache.AllPods(ns, selector)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	rsp := &vizapi.ListPodsResponse{Pods: []vizapi.PodInfo{}}
	for _, p := range pods {
		kind, name := s.Cache.Owner(p)
		info := vizapi.PodInfo{
			Name: p.Namespace + "/" + p.Name, PodIP: p.Status.PodIP, Status: string(p.Status.Phase),
			Added: inject.HasProxy(&p.Spec), ControllerNamespace: p.Labels[inject.LabelControlPlaneNS],
			ResourceVersion: p.ResourceVersion, ServiceAccount: p.Spec.ServiceAccountName,
		}
		if kind != vizapi.Pod {
			info.OwnerKind, info.OwnerName = kind, name
		}
		for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.ContainerStatuses...), p.Status.InitContainerStatuses...) {
			if cs.Name == inject.ProxyContainerName {
				info.ProxyReady = cs.Ready
			}
		}
		rsp.Pods = append(rsp.Pods, info)
	}
	return rsp, nil
}

// ListServices answers a ListServicesRequest: the services of a namespace (every
// namespace without one).
func (s *Server) ListServices(_ context.Context, req *vizapi.ListServicesRequest) (*vizapi.ListServicesResponse, error) {
	svcs, err := s.Cache.Services(req.Namespace)
	if err != nil {
		return nil, err
	}
	rsp := &vizapi.ListServicesResponse{Services: []vizapi.ServiceInfo{}}
	for _, svc := range svcs {
		rsp.Services = append(rsp.Services, vizapi.ServiceInfo{Name: svc.Name, Namespace: svc.Namespace})
	}
	return rsp, nil
}
