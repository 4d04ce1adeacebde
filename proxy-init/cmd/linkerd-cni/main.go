// Command linkerd-cni is the l5d CNI plugin (CNI spec 1.0), chained after the cluster's
// primary plugin. On ADD it reads the pod from the API server (CNI_ARGS carry
// K8S_POD_NAMESPACE and K8S_POD_NAME) with the kubeconfig the linkerd-cni DaemonSet writes,
// and for a meshed pod installs in its network namespace the rules proxy-init would, built
// by the same package (proxy-init/iptables) from the configuration's "linkerd" section and
// the pod's config.linkerd.io annotations; other pods are left alone. DEL removes the
// rules; CHECK verifies them. The previous plugin's result is passed on unchanged.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/l5d-go/l5d/pkg/k8s"
	"github.com/l5d-go/l5d/pkg/logging"
	"github.com/l5d-go/l5d/proxy-init/cni"
	"github.com/l5d-go/l5d/proxy-init/iptables"
)

// apiTimeout bounds the plugin's calls to the API server, so that a pod's sandbox is never
// held up indefinitely.
const apiTimeout = 30 * time.Second

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck},
		version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"),
		"linkerd-cni: redirects meshed pods' TCP traffic through the Linkerd proxy")
}

// k8sArgs are the CNI_ARGS the kubelet's runtime passes.
type k8sArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE types.UnmarshallableString //nolint:revive // the key's name
	K8S_POD_NAME      types.UnmarshallableString //nolint:revive // the key's name
}

// setup parses the configuration and makes the logger; a bad configuration is a CNI
// "invalid network config" error naming the setting.
func setup(args *skel.CmdArgs) (*cni.Settings, *slog.Logger, error) {
	s, err := cni.Parse(args.StdinData)
	if err != nil {
		return nil, nil, types.NewError(types.ErrInvalidNetworkConfig, "linkerd-cni: "+err.Error(), "")
	}
	lc := &logging.Config{Level: s.Conf.LogLevel}
	log, err := lc.New(os.Stderr)
	if err != nil {
		return nil, nil, types.NewError(types.ErrInvalidNetworkConfig, "linkerd-cni: log_level: "+err.Error(), "")
	}
	return s, log.With("container", args.ContainerID, "netns", args.Netns), nil
}

// podOf reads the pod CNI_ARGS name and its namespace's annotations; ok is false when the
// runtime passed no pod (not a Kubernetes sandbox).
func podOf(ctx context.Context, s *cni.Settings, args *skel.CmdArgs) (pod *corev1.Pod, nsAnn map[string]string, ok bool, err error) {
	var ka k8sArgs
	if err := types.LoadArgs(args.Args, &ka); err != nil {
		return nil, nil, false, types.NewError(types.ErrInvalidEnvironmentVariables, "linkerd-cni: CNI_ARGS: "+err.Error(), "")
	}
	ns, name := string(ka.K8S_POD_NAMESPACE), string(ka.K8S_POD_NAME)
	if ns == "" || name == "" {
		return nil, nil, false, nil
	}
	kc := &k8s.Config{Kubeconfig: s.Conf.Kubernetes.Kubeconfig, UserAgent: cni.PluginType}
	rc, err := kc.RESTConfig()
	if err != nil {
		return nil, nil, false, fmt.Errorf("linkerd-cni: kubernetes.kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, false, fmt.Errorf("linkerd-cni: Kubernetes client: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	pod, err = client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, false, fmt.Errorf("linkerd-cni: reading pod %s/%s: %w", ns, name, err)
	}
	nsObj, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, nil, false, fmt.Errorf("linkerd-cni: reading namespace %s: %w", ns, err)
	default:
		nsAnn = nsObj.Annotations
	}
	return pod, nsAnn, true, nil
}

// installer returns the installer for a meshed pod, or nil when the rules are not the
// plugin's to install.
func installer(ctx context.Context, s *cni.Settings, args *skel.CmdArgs, log *slog.Logger) (*iptables.Installer, error) {
	pod, nsAnn, ok, err := podOf(ctx, s, args)
	if err != nil {
		return nil, err
	}
	if !ok {
		log.Debug("no K8S_POD_NAMESPACE/K8S_POD_NAME in CNI_ARGS: not a pod, nothing to do")
		return nil, nil
	}
	log = log.With("pod", pod.Namespace+"/"+pod.Name)
	if meshed, why := cni.Meshed(pod); !meshed {
		log.Debug("pod left alone", "reason", why)
		return nil, nil
	}
	cfg, err := cni.PodConfig(s.Base, pod.Annotations, nsAnn)
	if err != nil {
		return nil, fmt.Errorf("linkerd-cni: pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return &iptables.Installer{
		Config:   cfg,
		Backends: s.Backends,
		Wait:     s.Conf.Linkerd.UseWaitFlag,
		NetNS:    args.Netns,
		Log:      log,
	}, nil
}

// passOn prints the previous plugin's result, as a chained plugin must, or an empty
// result when there is none.
func passOn(s *cni.Settings) error {
	if s.Conf.PrevResult != nil {
		return types.PrintResult(s.Conf.PrevResult, s.Conf.CNIVersion)
	}
	return types.PrintResult(&current.Result{CNIVersion: current.ImplementedSpecVersion}, s.Conf.CNIVersion)
}

func cmdAdd(args *skel.CmdArgs) error {
	s, log, err := setup(args)
	if err != nil {
		return err
	}
	ctx := context.Background()
	in, err := installer(ctx, s, args, log)
	if err != nil {
		return err
	}
	if in != nil {
		if s.Conf.Linkerd.Simulate {
			var b bytes.Buffer
			if err := in.Simulate(ctx, &b); err != nil {
				return fmt.Errorf("linkerd-cni: %w", err)
			}
			log.Info("simulate: rules not installed", "iptables-restore", b.String())
		} else if err := in.Apply(ctx); err != nil {
			return fmt.Errorf("linkerd-cni: %w", err)
		}
	}
	return passOn(s)
}

func cmdDel(args *skel.CmdArgs) error {
	s, log, err := setup(args)
	if err != nil {
		return err
	}
	if args.Netns == "" || s.Conf.Linkerd.Simulate {
		return nil
	}
	if _, err := os.Stat(args.Netns); errors.Is(err, os.ErrNotExist) {
		log.Debug("the network namespace is gone: nothing to remove")
		return nil
	}
	in := &iptables.Installer{Backends: s.Backends, Wait: s.Conf.Linkerd.UseWaitFlag, NetNS: args.Netns, Log: log}
	if err := in.Remove(context.Background()); err != nil {
		return fmt.Errorf("linkerd-cni: %w", err)
	}
	return nil
}

func cmdCheck(args *skel.CmdArgs) error {
	s, log, err := setup(args)
	if err != nil {
		return err
	}
	ctx := context.Background()
	in, err := installer(ctx, s, args, log)
	if err != nil || in == nil || s.Conf.Linkerd.Simulate {
		return err
	}
	if err := in.Check(ctx); err != nil {
		return fmt.Errorf("linkerd-cni: %w", err)
	}
	return nil
}
