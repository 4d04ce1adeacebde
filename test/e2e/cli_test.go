package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCLIInspectsTheMesh runs the linkerd CLI's inspection commands against the meshed
// demo front end, as a user would, with nothing but the kubeconfig (no port-forward):
// proxy-metrics and controller-metrics print each pod's (and control-plane container's)
// metrics under Linkerd's headers, identity prints the proxy's certificate with its mesh
// identity, viz stat reports the front end's traffic from the proxies alone, and authz
// lists the default policy.
func TestCLIInspectsTheMesh(t *testing.T) {
	s := need(t)
	const ns = "e2e-cli"
	s.Namespace(t, ns, map[string]string{"linkerd.io/inject": "enabled"})
	for _, w := range []demoWorkload{
		{NS: ns, Name: "web", Image: "demo-web", Env: map[string]string{
			"CATALOG_ADDR": svcAddr(ns, "catalog"), "RATINGS_ADDR": svcAddr(ns, "ratings")}},
		{NS: ns, Name: "catalog", Image: "demo-catalog"},
		{NS: ns, Name: "client", Image: "demo-traffic", Env: map[string]string{
			"TARGET": "http://web." + ns + ".svc.cluster.local:8080", "RATE": "10", "REQUEST_PATH": "/api/items"}},
	} {
		s.Apply(t, w.YAML())
	}
	web := s.podOf(t, ns, "web")
	client := s.podOf(t, ns, "client")
	s.podOf(t, ns, "catalog")
	s.waitTrafficStatus(t, ns, client, "200")

	out := s.MustRun(t, nil, s.Linkerd(), "diagnostics", "proxy-metrics", "-n", ns, "deploy/web")
	if !strings.HasPrefix(out, "#\n# POD "+web+" (1 of 1)\n#\n") || !strings.Contains(out, "\nrequest_total{") {
		t.Errorf("proxy-metrics -n %s deploy/web:\n%.2000s", ns, out)
	}

	out = s.MustRun(t, nil, s.Linkerd(), "diagnostics", "controller-metrics")
	containers := map[string]int{}
	for _, l := range strings.Split(out, "\n") {
		if c, ok := strings.CutPrefix(l, "# CONTAINER "); ok {
			containers[c]++
		}
	}
	for _, c := range []string{"destination", "policy", "identity"} {
		if containers[c] < 3 { // --ha: three replicas of each
			t.Errorf("controller-metrics: container %s in %d pods, want 3 (%v)", c, containers[c], containers)
		}
	}
	if !strings.Contains(out, "# POD linkerd-destination-") || !strings.Contains(out, "\n# TYPE ") {
		t.Errorf("controller-metrics headers:\n%s", grepLines(out, "# "))
	}

	out = s.MustRun(t, nil, s.Linkerd(), "identity", "-n", ns, web)
	for _, want := range []string{
		"POD " + web + " (1 of 1)\n\nCertificate:\n",
		"        Subject: CN=" + identity(ns, "web") + "\n",
		"        Issuer: CN=" + s.Issuer.Cert.Subject.CommonName + "\n",
		"DNS:" + identity(ns, "web"),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("identity lacks %q:\n%s", want, out)
		}
	}

	// viz stat: the front end served the client's requests over mesh TLS, all fine; the
	// node's readiness probes (one every 2s) arrive in plaintext, so TLS is under 100%.
	s.Eventually(t, 2*time.Minute, "viz stat shows the front end's traffic", func() string {
		out, err := s.Run(nil, s.Linkerd(), "viz", "stat", "deploy", "-n", ns, "-t", "5s")
		if err != nil {
			return err.Error()
		}
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) != 8 || f[0] != "web" {
				continue
			}
			rps, err := strconv.ParseFloat(strings.TrimSuffix(f[3], "rps"), 64)
			tls, err2 := strconv.ParseFloat(strings.TrimSuffix(f[7], "%"), 64)
			if f[1] != "1/1" || f[2] != "100.00%" || err != nil || rps <= 0 || err2 != nil || tls < 50 {
				return "web row: " + l
			}
			t.Logf("linkerd viz stat deploy -n %s:\n%s", ns, out)
			return ""
		}
		return "no web row:\n" + out
	})

	out = s.MustRun(t, nil, s.Linkerd(), "authz", "-n", ns, "deploy/web")
	if !strings.Contains(out, "default:all-unauthenticated") || !strings.HasPrefix(out, "ROUTE ") {
		t.Errorf("authz -n %s deploy/web:\n%s", ns, out)
	}
}
