// Package conformance runs the Gateway API conformance suite
// (sigs.k8s.io/gateway-api/conformance, unedited) against l5d: its mesh profiles, MESH-HTTP
// and MESH-GRPC, on a local cluster of real nodes (test/localcluster with the kubelet and
// containerd, so the suite can exec its client inside the echo pods) with l5d installed by
// the linkerd CLI and the suite's namespaces annotated for injection, as Linkerd's own
// conformance run does. `make conformance` runs it and writes the suite's
// ConformanceReport under reports/.
package conformance

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/proxyconf"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	clientset "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/apis/v1alpha2"
	"sigs.k8s.io/gateway-api/apis/v1alpha3"
	xv1alpha1 "sigs.k8s.io/gateway-api/apisx/v1alpha1"
	suiteconformance "sigs.k8s.io/gateway-api/conformance"
	confv1 "sigs.k8s.io/gateway-api/conformance/apis/v1"
	"sigs.k8s.io/gateway-api/conformance/utils/config"
	"sigs.k8s.io/gateway-api/conformance/utils/flags"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
	"sigs.k8s.io/gateway-api/pkg/features"
)

// l5d's own flags; the suite's (-run-test, -report-output, -version, -debug, -skip-tests,
// ...) are registered by the suite and override the options below when given.
var (
	meshFlag = flag.Bool("l5d.mesh", true, "install l5d and inject the suite's namespaces; false runs the suite against plain pods (its mechanics only: most mesh tests fail)")
	keepFlag = flag.Bool("l5d.keep", false, "keep the run directory (cluster, containerd and kubelet logs) after the test")
	kubeFlag = flag.String("l5d.kubeconfig", "", "run against the cluster of this kubeconfig instead of starting one (it must have real nodes, the images, the Gateway API CRDs and, with -l5d.mesh, l5d installed)")
)

// SupportedFeatures are the features l5d claims for the mesh profiles: the profiles' core
// (Mesh, HTTPRoute, GRPCRoute), every mesh extended feature, and the HTTPRoute extended
// features the mesh tests name.
var SupportedFeatures = []features.FeatureName{
	features.SupportMesh,
	features.SupportHTTPRoute,
	features.SupportGRPCRoute,
	features.SupportMeshClusterIPMatching,
	features.SupportMeshConsumerRoute,
	features.SupportMeshHTTPRouteRewritePath,
	features.SupportMeshHTTPRouteSchemeRedirect,
	features.SupportMeshHTTPRouteRedirectPort,
	features.SupportMeshHTTPRouteRedirectPath,
	features.SupportMeshHTTPRouteBackendRequestHeaderModification,
	features.SupportMeshHTTPRouteQueryParamMatching,
	features.SupportMeshHTTPRouteNamedRouteRule,
	features.SupportHTTPRoute303RedirectStatusCode,
	features.SupportHTTPRoute307RedirectStatusCode,
	features.SupportHTTPRoute308RedirectStatusCode,
	features.SupportHTTPRouteResponseHeaderModification,
	features.SupportHTTPRouteParentRefPort,
}

// SkippedTests are the suite's tests l5d opts out of, each with the reason; the report
// counts them as skipped.
var SkippedTests = map[string]string{}

// Implementation is what the report says l5d is; the version comes from -version (make's
// VERSION).
var Implementation = confv1.Implementation{
	Organization: "l5d-go",
	Project:      "l5d",
	URL:          "https://github.com/l5d-go/l5d",
	Contact:      []string{"https://github.com/l5d-go/l5d/issues"},
}

// TestMeshConformance runs the suite's MESH-HTTP and MESH-GRPC profiles. It needs root,
// bin/ (make build) and L5D_CONFORMANCE=1, which make conformance sets.
func TestMeshConformance(t *testing.T) {
	switch {
	case os.Getenv("L5D_CONFORMANCE") != "1":
		t.Skip("the conformance run (a cluster of real nodes, all of l5d's images, the whole suite) runs with L5D_CONFORMANCE=1: make conformance")
	case os.Getenv("L5D_SKIP_KUBE") == "1":
		t.Skip("L5D_SKIP_KUBE=1")
	case os.Geteuid() != 0:
		t.Skip("needs root (network namespaces, containerd, the kubelet)")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	runDir, err := os.MkdirTemp("", "l5d-conformance-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if *keepFlag || t.Failed() {
			t.Logf("run directory kept: %s", runDir)
			return
		}
		os.RemoveAll(runDir)
	})

	var rc *rest.Config
	if *kubeFlag != "" {
		if rc, err = clientcmd.BuildConfigFromFlags("", *kubeFlag); err != nil {
			t.Fatalf("-l5d.kubeconfig: %v", err)
		}
	} else {
		c := startCluster(t, root, runDir)
		if *meshFlag {
			installL5d(t, c, filepath.Join(root, "bin"))
		}
		rc = c.RESTConfig()
	}

	log.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	cl, err := client.New(rc, client.Options{})
	if err != nil {
		t.Fatalf("controller-runtime client: %v", err)
	}
	for _, add := range []func() error{
		func() error { return v1alpha3.Install(cl.Scheme()) },
		func() error { return v1alpha2.Install(cl.Scheme()) },
		func() error { return xv1alpha1.Install(cl.Scheme()) },
		func() error { return gatewayv1.Install(cl.Scheme()) },
		func() error { return apiextensionsv1.AddToScheme(cl.Scheme()) },
	} {
		if err := add(); err != nil {
			t.Fatalf("client scheme: %v", err)
		}
	}
	cs, err := clientset.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}

	opts := suite.ConfigurableOptions{
		ConformanceProfiles:  []suite.ConformanceProfileName{suite.MeshHTTPConformanceProfileName, suite.MeshGRPCConformanceProfileName},
		SupportedFeatures:    SupportedFeatures,
		Implementation:       Implementation,
		Mode:                 flags.DefaultMode,
		CleanupBaseResources: false, // the cluster goes away with the test
		CleanupTestResources: true,
		TimeoutConfig:        config.DefaultTimeoutConfig(),
		SkipTests:            skipped(),
	}
	if *meshFlag {
		opts.NamespaceAnnotations = map[string]string{proxyconf.AnnInject: "enabled"}
	}
	flags.ApplyAll(&opts)
	if opts.ReportOutputPath != "" {
		if err := os.MkdirAll(filepath.Dir(opts.ReportOutputPath), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, why := range SkippedTests {
		t.Logf("skipped: %s: %s", name, why)
	}
	began := time.Now()
	var others atomic.Int32 // the hook runs in each test's cleanup, parallel tests' too
	suiteconformance.RunConformanceWithOptions(t, suite.ConformanceOptions{
		ConfigurableOptions: opts,
		Client:              cl,
		Clientset:           cs,
		RestConfig:          rc,
		// One line per mesh test on stdout, shown without -v too; the suite's other tests
		// (Gateway features, which l5d does not claim) are only counted.
		Hook: func(t *testing.T, test suite.ConformanceTest, _ *suite.ConformanceTestSuite) {
			result := "PASS"
			switch {
			case t.Failed():
				result = "FAIL"
			case t.Skipped():
				result = "SKIP"
			}
			if result == "SKIP" && !slices.Contains(test.Features, features.SupportMesh) {
				others.Add(1)
				return
			}
			fmt.Printf("conformance: %-45s %s\n", test.ShortName, result)
		},
	})
	fmt.Printf("conformance: the suite took %v; %d tests outside the mesh profiles skipped\n", time.Since(began).Round(time.Second), others.Load())
}

// skipped lists SkippedTests' names.
func skipped() []string {
	out := make([]string, 0, len(SkippedTests))
	for name := range SkippedTests {
		out = append(out, name)
	}
	return out
}
