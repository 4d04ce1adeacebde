// Package tap is linkerd-viz's tap API: an aggregated Kubernetes API (group
// tap.linkerd.io, version v1alpha1, as Linkerd's) that streams the live requests of a
// resource's pods. The Kubernetes API server authenticates the caller and forwards the
// request with its front-proxy certificate and the caller's identity in headers; the
// server checks both (RequestHeader), asks the API server whether the caller may "watch"
// the resource's "tap" subresource (a SubjectAccessReview), then opens
// io.linkerd.proxy.tap.Tap/Observe on the tap port of every running meshed pod of the
// resource and streams their events back, one JSON TapEvent per line (see viz/api).
package tap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/l5d-go/l5d/pkg/inject"
	"github.com/l5d-go/l5d/pkg/vizapi"
	"github.com/l5d-go/l5d/viz/metricsapi/cluster"
)

// maxRequestBytes bounds a TapByResourceRequest body.
const maxRequestBytes = 64 << 10

// Server serves the tap API. Kube makes the SubjectAccessReviews; Cache (started)
// resolves resources to pods and addresses to pods; Auth authenticates the API server's
// forwarded requests; Proxies opens the pods' tap streams.
type Server struct {
	Kube    kubernetes.Interface
	Cache   *cluster.Cache
	Auth    *RequestHeader
	Proxies Proxies
	Log     *slog.Logger
}

// Handler returns the API's routes: discovery documents, readable without
// authentication (the API server's availability checks present no user), and the tap
// streams.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	base := "/apis/" + vizapi.TapGroup + "/" + vizapi.TapVersion
	mux.HandleFunc("GET /apis/"+vizapi.TapGroup, s.group)
	mux.HandleFunc("GET "+base, s.resources)
	mux.HandleFunc("POST "+base+"/watch/namespaces/{ns}/tap", s.tap)
	mux.HandleFunc("POST "+base+"/watch/namespaces/{ns}/{resource}/{name}/tap", s.tap)
	return mux
}

func (s *Server) group(w http.ResponseWriter, _ *http.Request) {
	gv := metav1.GroupVersionForDiscovery{GroupVersion: vizapi.TapGroup + "/" + vizapi.TapVersion, Version: vizapi.TapVersion}
	writeJSON(w, http.StatusOK, &metav1.APIGroup{
		TypeMeta: metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"},
		Name:     vizapi.TapGroup, Versions: []metav1.GroupVersionForDiscovery{gv}, PreferredVersion: gv,
	})
}

func (s *Server) resources(w http.ResponseWriter, _ *http.Request) {
	list := &metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: vizapi.TapGroup + "/" + vizapi.TapVersion,
	}
	for _, t := range sortedTypes() {
		plural := vizapi.TapResources[t]
		namespaced := t != vizapi.Namespace
		list.APIResources = append(list.APIResources,
			metav1.APIResource{Name: plural, Namespaced: namespaced, Kind: t, Verbs: metav1.Verbs{"list"}},
			metav1.APIResource{Name: plural + "/" + vizapi.TapSubresource, Namespaced: namespaced, Kind: "Tap", Verbs: metav1.Verbs{"watch"}})
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) tap(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	user, err := s.Auth.Authenticate(r)
	if err != nil {
		s.Log.Warn("tap request refused", "remote", r.RemoteAddr, "err", err)
		writeStatus(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, err.Error())
		return
	}
	ns, name, plural := r.PathValue("ns"), r.PathValue("name"), r.PathValue("resource")
	typ := vizapi.Namespace
	if plural == "" {
		plural, name = vizapi.TapResources[vizapi.Namespace], ns
	} else if typ = typeOf(plural); typ == "" || typ == vizapi.Namespace {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, fmt.Sprintf("the tap API serves no resource %q", plural))
		return
	}
	var req vizapi.TapByResourceRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxRequestBytes)).Decode(&req); err != nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, fmt.Sprintf("decoding the TapByResourceRequest: %v", err))
		return
	}
	req.Target.Resource = vizapi.Resource{Namespace: ns, Type: typ, Name: name}
	if typ == vizapi.Namespace {
		req.Target.Resource.Namespace = ""
	}
	allowed, reason, err := Authorize(ctx, s.Kube, user, vizapi.TapGroup, vizapi.TapVersion, plural, vizapi.TapSubresource, ns, name)
	if err != nil {
		s.Log.Error("tap authorization failed", "user", user.Name, "err", err)
		writeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error())
		return
	}
	if !allowed {
		msg := fmt.Sprintf("%s.%s %q is forbidden: User %q cannot watch resource %q in API group %q in the namespace %q",
			plural, vizapi.TapGroup, name, user.Name, plural+"/"+vizapi.TapSubresource, vizapi.TapGroup, ns)
		if reason != "" {
			msg += ": " + reason
		}
		s.Log.Info("tap forbidden", "user", user.Name, "resource", plural, "namespace", ns, "name", name)
		writeStatus(w, http.StatusForbidden, metav1.StatusReasonForbidden, msg)
		return
	}
	obs, err := s.plan(req)
	if err != nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
		return
	}
	if len(obs.pods) == 0 {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, fmt.Sprintf("no running meshed pods to tap for %s/%s in namespace %s", typ, name, ns))
		return
	}
	s.Log.Info("tap started", "user", user.Name, "resource", typ+"/"+name, "namespace", ns, "pods", len(obs.pods))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flush := func() {}
	if f, ok := w.(http.Flusher); ok {
		flush = f.Flush
		flush()
	}
	var mu sync.Mutex
	err = s.observe(ctx, obs, func(line []byte) error {
		mu.Lock()
		defer mu.Unlock()
		if _, err := w.Write(append(line, '\n')); err != nil {
			return err
		}
		flush()
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		s.Log.Warn("tap ended", "user", user.Name, "err", err)
	}
}

// tappable reports whether p's proxy can be tapped: running, with an IP and a proxy.
func tappable(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" && p.DeletionTimestamp == nil && inject.HasProxy(&p.Spec)
}

func typeOf(plural string) string {
	for t, p := range vizapi.TapResources {
		if p == plural {
			return t
		}
	}
	return ""
}

func sortedTypes() []string {
	out := make([]string, 0, len(vizapi.TapResources))
	for _, t := range []string{vizapi.CronJob, vizapi.DaemonSet, vizapi.Deployment, vizapi.Job, vizapi.Namespace, vizapi.Pod, vizapi.ReplicaSet, vizapi.ReplicationController, vizapi.Service, vizapi.StatefulSet} {
		if _, ok := vizapi.TapResources[t]; ok {
			out = append(out, t)
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeStatus answers with a Kubernetes Status, which kubectl and client-go print.
func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	writeJSON(w, code, &metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Code: int32(code), Reason: reason, Message: msg,
	})
}

// retryAfter is how long a pod's tap waits before reopening a stream that failed.
const retryAfter = time.Second
