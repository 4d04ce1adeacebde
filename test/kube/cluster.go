package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options chooses the optional components of a control plane. etcd and kube-apiserver always run.
type Options struct {
	// ControllerManager runs kube-controller-manager with the controllers that make
	// workloads behave without kubelets: deployment, replicaset, statefulset, daemonset, job,
	// endpoints, endpointslice, endpointslice-mirroring, serviceaccount, serviceaccount-token,
	// root-ca-certificate-publisher, namespace, garbage-collector and
	// clusterrole-aggregation. Node lifecycle and pod garbage collection stay off, so nodes
	// made by CreateNode are never tainted or evicted.
	ControllerManager bool
	// Scheduler runs kube-scheduler, which binds pending pods to Ready nodes (see CreateNode).
	Scheduler bool
	// AdvertiseAddress, when set, is the API server's --advertise-address: the endpoint
	// reconciler then publishes it, with the secure port, as the endpoint of the default
	// "kubernetes" Service, and the serving certificate is also valid for it. The API
	// server still listens on 127.0.0.1 only; making the address reach it is the caller's
	// job. Empty leaves the Service without endpoints (nothing routes to it).
	AdvertiseAddress string
	// ServingHosts are extra names and IP addresses the control plane's serving
	// certificate is valid for.
	ServingHosts []string
	// APIServerArgs are extra kube-apiserver flags, appended after the package's own (a
	// repeated flag overrides it), e.g. --egress-selector-config-file=PATH.
	APIServerArgs []string
	// ControllerManagerArgs are extra kube-controller-manager flags, appended after the
	// package's own, e.g. --cluster-cidr=10.244.0.0/16.
	ControllerManagerArgs []string
	// ServiceCIDR is the Service cluster IP range (the API server's
	// --service-cluster-ip-range); empty means the package's ServiceCIDR. Its first address
	// is the "kubernetes" Service's: give it in ServingHosts when it is not 10.96.0.1.
	ServiceCIDR string
}

// ServiceAccountIssuer is the issuer of service-account tokens and one of the API audiences.
const ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// ServiceCIDR is the service cluster IP range. Nothing routes to it unless a kube-proxy
// runs somewhere (test/localcluster runs one in its node namespace).
const ServiceCIDR = "10.96.0.0/16"

// serviceCIDR is the cluster's Service range: Options.ServiceCIDR or ServiceCIDR.
func (c *Cluster) serviceCIDR() string {
	if c.opts.ServiceCIDR != "" {
		return c.opts.ServiceCIDR
	}
	return ServiceCIDR
}

// startTimeout bounds the wait for each component to become ready on a loaded machine.
const startTimeout = 2 * time.Minute

// errAddrInUse marks a start that lost a race for a loopback port; Start retries it.
var errAddrInUse = errors.New("a loopback port was taken by another process")

// Cluster is a running private control plane: etcd and kube-apiserver on loopback ports,
// optionally kube-controller-manager and kube-scheduler. Every client it hands out
// authenticates as a member of system:masters. Its methods are safe for concurrent use.
type Cluster struct {
	opts    Options
	dir     string
	pki     *clusterPKI
	sup     *supervisor
	host    string
	cfg     *rest.Config
	kubecfg string

	client  kubernetes.Interface
	dyn     dynamic.Interface
	apiext  apiextensionsclient.Interface
	mapper  *restmapper.DeferredDiscoveryRESTMapper
	procs   map[string]*process
	stopped sync.Once

	webhooks webhookSync
}

// live holds the clusters of this process so a signal handler can stop them all.
var live = struct {
	sync.Mutex
	clusters map[*Cluster]struct{}
}{clusters: map[*Cluster]struct{}{}}

// Start runs a new control plane and returns when it is ready. It fails with a message
// naming `make kube-bins` when the binaries are missing. The caller must call Stop; if the
// process dies first, the components die with it (Pdeathsig) and the next Start removes
// the leftovers. Tests normally use Main and Shared instead.
func Start(opts Options) (*Cluster, error) {
	bins, err := findBinaries(opts)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		c, err := start(opts, bins)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, errAddrInUse) || attempt == 3 {
			return nil, err
		}
	}
}

func start(opts Options, bins map[string]string) (_ *Cluster, err error) {
	dir, err := newRunDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, dir: dir, sup: newSupervisor(dir), procs: map[string]*process{}}
	live.Lock()
	live.clusters[c] = struct{}{}
	live.Unlock()
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	hosts := append(append([]string(nil), servingHosts...), opts.ServingHosts...)
	if opts.AdvertiseAddress != "" {
		hosts = append(hosts, opts.AdvertiseAddress)
	}
	if c.pki, err = newClusterPKI(filepath.Join(dir, "pki"), hosts); err != nil {
		return nil, err
	}
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	etcdClient, etcdPeer, apiPort, kcmPort, schedPort := ports[0], ports[1], ports[2], ports[3], ports[4]

	if err := c.startEtcd(bins["etcd"], etcdClient, etcdPeer); err != nil {
		return nil, err
	}
	if err := c.startAPIServer(bins["kube-apiserver"], apiPort, etcdClient); err != nil {
		return nil, err
	}
	if opts.ControllerManager {
		if err := c.startControllerManager(bins["kube-controller-manager"], kcmPort); err != nil {
			return nil, err
		}
	}
	if opts.Scheduler {
		if err := c.startScheduler(bins["kube-scheduler"], schedPort); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// freePorts reserves n distinct loopback TCP ports by binding them at once, then frees them
// for the components. Another process may grab one in between; Start retries then.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserving a loopback port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (c *Cluster) run(name, bin string, args ...string) (*process, error) {
	p, err := c.sup.start(name, bin, args...)
	if p != nil {
		c.procs[name] = p
	}
	return p, err
}

// waitReady polls check every 100ms until it succeeds, the process exits or startTimeout
// passes; failures carry the tail of the component's log.
func (c *Cluster) waitReady(p *process, check func(context.Context) error) error {
	deadline := time.Now().Add(startTimeout)
	var last error
	for {
		if done, werr := p.exited(); done {
			return c.componentError(p, fmt.Errorf("%s exited during start (%v)", p.name, werr))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		last = check(ctx)
		cancel()
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return c.componentError(p, fmt.Errorf("%s not ready after %v: %w", p.name, startTimeout, last))
		}
		time.Sleep(100 * time.Millisecond) // polling interval, not synchronisation
	}
}

// componentError adds the tail of p's log to err, marking port clashes with errAddrInUse.
func (c *Cluster) componentError(p *process, err error) error {
	tail := tailLog(p.logPath, 0, 40)
	if strings.Contains(tail, "address already in use") {
		err = fmt.Errorf("%w: %w", errAddrInUse, err)
	}
	return fmt.Errorf("kube: %w\n--- last lines of %s ---\n%s", err, p.logPath, tail)
}

func (c *Cluster) startEtcd(bin string, clientPort, peerPort int) error {
	clientURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	p, err := c.run("etcd", bin,
		"--name=l5d-test",
		"--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls="+clientURL,
		"--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=l5d-test="+peerURL,
		"--unsafe-no-fsync", // the data is thrown away; fsync only slows a loaded machine
		"--log-level=warn",
	)
	if err != nil {
		return err
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	return c.waitReady(p, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientURL+"/health", nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"health":"true"`) {
			return fmt.Errorf("etcd /health: %s %s", resp.Status, body)
		}
		return nil
	})
}

func (c *Cluster) startAPIServer(bin string, port, etcdPort int) error {
	pki := c.pki
	// Endpoints may not hold loopback addresses: without an advertised address the
	// "kubernetes" Service gets none (nothing routes to it anyway).
	advertise := []string{"--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none"}
	if c.opts.AdvertiseAddress != "" {
		advertise = []string{"--advertise-address=" + c.opts.AdvertiseAddress, "--endpoint-reconciler-type=lease"}
	}
	args := append([]string{
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(etcdPort),
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
	}, advertise...)
	args = append(args,
		"--cert-dir="+filepath.Join(c.dir, "apiserver-certs"),
		"--tls-cert-file="+pki.certFile,
		"--tls-private-key-file="+pki.keyFile,
		"--client-ca-file="+pki.caFile,
		"--service-account-issuer="+ServiceAccountIssuer,
		"--service-account-key-file="+pki.saPubFile,
		"--service-account-signing-key-file="+pki.saKeyFile,
		"--api-audiences="+ServiceAccountIssuer,
		"--service-cluster-ip-range="+c.serviceCIDR(),
		"--authorization-mode=Node,RBAC",
		"--requestheader-client-ca-file="+pki.frontProxyCAFile,
		"--requestheader-allowed-names="+frontProxyUser,
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file="+pki.frontProxyCertFile,
		"--proxy-client-key-file="+pki.frontProxyKeyFile,
		"--kubelet-client-certificate="+pki.kubeletClientCertFile,
		"--kubelet-client-key="+pki.kubeletClientKeyFile,
		"--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
		// Without a node lifecycle controller nothing would ever lift the not-ready taint.
		"--disable-admission-plugins=TaintNodesByCondition",
		"--allow-privileged=true",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=1",
	)
	p, err := c.run("kube-apiserver", bin, append(args, c.opts.APIServerArgs...)...)
	if err != nil {
		return err
	}
	c.host = "https://127.0.0.1:" + strconv.Itoa(port)
	if err := c.buildClients(); err != nil {
		return err
	}
	rc := c.client.Discovery().RESTClient()
	return c.waitReady(p, func(ctx context.Context) error {
		body, err := rc.Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return fmt.Errorf("/readyz: %w: %s", err, body)
		}
		return nil
	})
}

func (c *Cluster) buildClients() error {
	c.cfg = &rest.Config{
		Host: c.host,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   c.pki.ca.certPEM,
			CertData: c.pki.admin.certPEM,
			KeyData:  c.pki.admin.keyPEM,
		},
		// Tests must not be slowed by client-side throttling.
		QPS:   500,
		Burst: 1000,
		// Deprecation warnings (namespace cleanup lists v1 Endpoints) would interleave
		// with test and benchmark output.
		WarningHandler: rest.NoWarnings{},
	}
	var err error
	if c.client, err = kubernetes.NewForConfig(c.cfg); err != nil {
		return fmt.Errorf("kube: building client: %w", err)
	}
	if c.dyn, err = dynamic.NewForConfig(c.cfg); err != nil {
		return fmt.Errorf("kube: building dynamic client: %w", err)
	}
	if c.apiext, err = apiextensionsclient.NewForConfig(c.cfg); err != nil {
		return fmt.Errorf("kube: building apiextensions client: %w", err)
	}
	disco, err := discovery.NewDiscoveryClientForConfig(c.cfg)
	if err != nil {
		return fmt.Errorf("kube: building discovery client: %w", err)
	}
	c.mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))

	c.kubecfg = filepath.Join(c.dir, "kubeconfig")
	return c.WriteKubeconfig(c.kubecfg, c.host)
}

// WriteKubeconfig writes an admin kubeconfig for the API server at URL server (Host(), or
// an address that leads to it, such as a relay, valid for the serving certificate) to
// path, mode 0600.
func (c *Cluster) WriteKubeconfig(path, server string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["l5d-test"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: c.pki.ca.certPEM}
	kc.AuthInfos[adminUser] = &clientcmdapi.AuthInfo{ClientCertificateData: c.pki.admin.certPEM, ClientKeyData: c.pki.admin.keyPEM}
	kc.Contexts["l5d-test"] = &clientcmdapi.Context{Cluster: "l5d-test", AuthInfo: adminUser, Namespace: "default"}
	kc.CurrentContext = "l5d-test"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("kube: writing kubeconfig %s: %w", path, err)
	}
	return nil
}

// componentArgs are the flags kube-controller-manager and kube-scheduler share: admin
// credentials, our serving certificate on a loopback port, no leader election.
func (c *Cluster) componentArgs(port int) []string {
	return []string{
		"--kubeconfig=" + c.kubecfg,
		"--authentication-kubeconfig=" + c.kubecfg,
		"--authorization-kubeconfig=" + c.kubecfg,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + c.pki.certFile,
		"--tls-private-key-file=" + c.pki.keyFile,
		"--leader-elect=false",
		"--v=1",
	}
}

// healthz returns a check of https://127.0.0.1:port/healthz made with the admin certificate.
func (c *Cluster) healthz(port int) (func(context.Context) error, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.pki.ca.certPEM)
	cert, err := c.pki.admin.tlsCertificate()
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
	}}
	url := "https://127.0.0.1:" + strconv.Itoa(port) + "/healthz"
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/healthz: %s %s", resp.Status, body)
		}
		return nil
	}, nil
}

// controllers is the --controllers list of kube-controller-manager; see Options.
var controllers = []string{
	"deployment-controller", "replicaset-controller", "statefulset-controller",
	"daemonset-controller", "job-controller", "endpoints-controller",
	"endpointslice-controller", "endpointslice-mirroring-controller",
	"serviceaccount-controller", "serviceaccount-token-controller",
	"root-ca-certificate-publisher-controller", "namespace-controller",
	"garbage-collector-controller", "clusterrole-aggregation-controller",
}

func (c *Cluster) startControllerManager(bin string, port int) error {
	args := append(c.componentArgs(port),
		"--controllers="+strings.Join(controllers, ","),
		"--service-account-private-key-file="+c.pki.saKeyFile,
		"--root-ca-file="+c.pki.caFile,
		"--use-service-account-credentials=false",
	)
	args = append(args, c.opts.ControllerManagerArgs...)
	p, err := c.run("kube-controller-manager", bin, args...)
	if err != nil {
		return err
	}
	health, err := c.healthz(port)
	if err != nil {
		return err
	}
	// Healthy is not enough: wait until the controllers act, shown by the service-account
	// and root-CA publisher controllers having filled the default namespace.
	return c.waitReady(p, func(ctx context.Context) error {
		if err := health(ctx); err != nil {
			return err
		}
		if _, err := c.client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{}); err != nil {
			return fmt.Errorf("waiting for the default service account: %w", err)
		}
		if _, err := c.client.CoreV1().ConfigMaps(metav1.NamespaceDefault).Get(ctx, rootCAConfigMap, metav1.GetOptions{}); err != nil {
			return fmt.Errorf("waiting for the %s config map: %w", rootCAConfigMap, err)
		}
		return nil
	})
}

func (c *Cluster) startScheduler(bin string, port int) error {
	p, err := c.run("kube-scheduler", bin, c.componentArgs(port)...)
	if err != nil {
		return err
	}
	health, err := c.healthz(port)
	if err != nil {
		return err
	}
	return c.waitReady(p, health)
}

// rootCAConfigMap is the config map holding the cluster CA in every namespace.
const rootCAConfigMap = "kube-root-ca.crt"

// Stop kills the components and removes the run directory (kept, and its path printed,
// when L5D_KUBE_KEEP=1). It is idempotent and safe to call from a signal handler.
func (c *Cluster) Stop() {
	c.stopped.Do(func() {
		c.webhooks.close()
		c.sup.stop()
		live.Lock()
		delete(live.clusters, c)
		live.Unlock()
		if os.Getenv("L5D_KUBE_KEEP") == "1" {
			fmt.Fprintf(os.Stderr, "kube: L5D_KUBE_KEEP=1: kept %s\n", c.dir)
			return
		}
		_ = os.RemoveAll(c.dir)
	})
}

// stopAll stops every cluster of this process.
func stopAll() {
	live.Lock()
	cs := make([]*Cluster, 0, len(live.clusters))
	for c := range live.clusters {
		cs = append(cs, c)
	}
	live.Unlock()
	for _, c := range cs {
		c.Stop()
	}
}

// RESTConfig returns a copy of the admin client configuration.
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.cfg) }

// Kubeconfig returns the path of an admin kubeconfig file for programs the test runs.
func (c *Cluster) Kubeconfig() string { return c.kubecfg }

// Host returns the API server URL, https://127.0.0.1:<port>.
func (c *Cluster) Host() string { return c.host }

// CA returns the PEM of the CA that signed the API server's serving certificate; it is also
// the content of the kube-root-ca.crt config maps.
func (c *Cluster) CA() []byte { return append([]byte(nil), c.pki.ca.certPEM...) }

// IssueClientCertificate signs a new client certificate for user in groups with the
// cluster CA, so the API server authenticates its holder as that user; a kubelet gets
// "system:node:<node>" in "system:nodes". It returns the certificate and its key, PEM.
func (c *Cluster) IssueClientCertificate(user string, groups ...string) (certPEM, keyPEM []byte, err error) {
	if user == "" {
		return nil, nil, errors.New("kube: a client certificate needs a user name")
	}
	l, err := c.pki.ca.issue(pkix.Name{CommonName: user, Organization: groups}, nil, true)
	if err != nil {
		return nil, nil, fmt.Errorf("kube: %w", err)
	}
	return l.certPEM, l.keyPEM, nil
}

// Client returns an admin clientset.
func (c *Cluster) Client() kubernetes.Interface { return c.client }

// Dynamic returns an admin dynamic client.
func (c *Cluster) Dynamic() dynamic.Interface { return c.dyn }

// APIExtensions returns an admin client for CustomResourceDefinitions.
func (c *Cluster) APIExtensions() apiextensionsclient.Interface { return c.apiext }

// Options returns the options the cluster was started with.
func (c *Cluster) Options() Options { return c.opts }

// LogFiles returns the log file of every component, by component name.
func (c *Cluster) LogFiles() map[string]string {
	m := make(map[string]string, len(c.procs))
	for name, p := range c.procs {
		m[name] = p.logPath
	}
	return m
}

// ensureServiceAccount creates the service account unless it exists.
func ensureServiceAccount(ctx context.Context, client kubernetes.Interface, ns, name string) error {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	_, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating service account %s/%s: %w", ns, name, err)
	}
	return nil
}
