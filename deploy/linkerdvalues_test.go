package deploy

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The types below mirror the part of Linkerd's chart values schema (linkerd2's
// pkg/charts/linkerd2 Values, as of the 2.18 edge releases) that Linkerd's CLI decodes from
// linkerd-config and then uses: `linkerd inject`/`--manual` renders its proxy and
// proxy-init templates from it, `linkerd check` reads the trust anchors, trust domain and
// issuer scheme, `linkerd upgrade` merges it. Written from the documented schema, as data
// for this test. A pointer or map field is one Linkerd's code or templates dereference: it
// must be present. A string tagged `l5d:"required"` must be non-empty (an image name without
// a tag or a trust domain of "" makes Linkerd's output unusable).
type (
	linkerdValues struct {
		ClusterDomain           string              `json:"clusterDomain" l5d:"required"`
		ClusterNetworks         string              `json:"clusterNetworks" l5d:"required"`
		ImagePullPolicy         string              `json:"imagePullPolicy" l5d:"required"`
		LinkerdVersion          string              `json:"linkerdVersion" l5d:"required"`
		IdentityTrustAnchorsPEM string              `json:"identityTrustAnchorsPEM" l5d:"required"`
		IdentityTrustDomain     string              `json:"identityTrustDomain" l5d:"required"`
		ControllerLogLevel      string              `json:"controllerLogLevel" l5d:"required"`
		ControllerReplicas      uint                `json:"controllerReplicas"`
		ControllerUID           int64               `json:"controllerUID"`
		CNIEnabled              bool                `json:"cniEnabled"`
		DisableHeartBeat        bool                `json:"disableHeartBeat"`
		EnableEndpointSlices    bool                `json:"enableEndpointSlices"`
		EnableH2Upgrade         bool                `json:"enableH2Upgrade"`
		EnablePodAntiAffinity   bool                `json:"enablePodAntiAffinity"`
		WebhookFailurePolicy    string              `json:"webhookFailurePolicy" l5d:"required"`
		PodAnnotations          map[string]string   `json:"podAnnotations"`
		PodLabels               map[string]string   `json:"podLabels"`
		ImagePullSecrets        []map[string]string `json:"imagePullSecrets"`
		Proxy                   *lkProxy            `json:"proxy"`
		ProxyInit               *lkProxyInit        `json:"proxyInit"`
		Identity                *lkIdentity         `json:"identity"`
		DebugContainer          *lkDebugContainer   `json:"debugContainer"`
		ProxyInjector           *lkWebhook          `json:"proxyInjector"`
		ProfileValidator        *lkWebhook          `json:"profileValidator"`
		DestinationResources    *lkResources        `json:"destinationResources"`
		ProxyInjectorResources  *lkResources        `json:"proxyInjectorResources"`
		HeartbeatSchedule       string              `json:"heartbeatSchedule"`
		DeploymentStrategy      map[string]any      `json:"deploymentStrategy"`
	}
	lkProxy struct {
		Cores                                int64          `json:"cores"`
		Image                                *lkImage       `json:"image"`
		LogLevel                             string         `json:"logLevel" l5d:"required"`
		LogFormat                            string         `json:"logFormat" l5d:"required"`
		LogHTTPHeaders                       string         `json:"logHTTPHeaders" l5d:"required"`
		Ports                                *lkPorts       `json:"ports"`
		Resources                            *lkResources   `json:"resources"`
		UID                                  int64          `json:"uid"`
		GID                                  int64          `json:"gid"`
		WaitBeforeExitSeconds                uint64         `json:"waitBeforeExitSeconds"`
		EnableExternalProfiles               bool           `json:"enableExternalProfiles"`
		EnableShutdownEndpoint               bool           `json:"enableShutdownEndpoint"`
		IsGateway                            bool           `json:"isGateway"`
		IsIngress                            bool           `json:"isIngress"`
		RequireIdentityOnInboundPorts        string         `json:"requireIdentityOnInboundPorts"`
		OutboundConnectTimeout               string         `json:"outboundConnectTimeout" l5d:"required"`
		InboundConnectTimeout                string         `json:"inboundConnectTimeout" l5d:"required"`
		OutboundDiscoveryCacheUnusedTimeout  string         `json:"outboundDiscoveryCacheUnusedTimeout" l5d:"required"`
		InboundDiscoveryCacheUnusedTimeout   string         `json:"inboundDiscoveryCacheUnusedTimeout" l5d:"required"`
		DisableOutboundProtocolDetectTimeout bool           `json:"disableOutboundProtocolDetectTimeout"`
		DisableInboundProtocolDetectTimeout  bool           `json:"disableInboundProtocolDetectTimeout"`
		OpaquePorts                          string         `json:"opaquePorts"`
		Await                                bool           `json:"await"`
		DefaultInboundPolicy                 string         `json:"defaultInboundPolicy" l5d:"required"`
		AccessLog                            string         `json:"accessLog"`
		ShutdownGracePeriod                  string         `json:"shutdownGracePeriod"`
		NativeSidecar                        bool           `json:"nativeSidecar"`
		PodInboundPorts                      string         `json:"podInboundPorts"`
		Control                              *lkControl     `json:"control"`
		Inbound                              map[string]any `json:"inbound"`
		Outbound                             map[string]any `json:"outbound"`
		LivenessProbe                        *lkProbe       `json:"livenessProbe"`
		ReadinessProbe                       *lkProbe       `json:"readinessProbe"`
		StartupProbe                         *lkProbe       `json:"startupProbe"`
	}
	lkControl struct {
		Streams *struct {
			InitialTimeout string `json:"initialTimeout" l5d:"required"`
			IdleTimeout    string `json:"idleTimeout" l5d:"required"`
			Lifetime       string `json:"lifetime" l5d:"required"`
		} `json:"streams"`
	}
	lkProbe struct {
		InitialDelaySeconds *uint `json:"initialDelaySeconds"`
		TimeoutSeconds      uint  `json:"timeoutSeconds"`
		PeriodSeconds       uint  `json:"periodSeconds"`
		FailureThreshold    uint  `json:"failureThreshold"`
	}
	lkProxyInit struct {
		IgnoreInboundPorts   string             `json:"ignoreInboundPorts"`
		IgnoreOutboundPorts  string             `json:"ignoreOutboundPorts"`
		SkipSubnets          string             `json:"skipSubnets"`
		IptablesMode         string             `json:"iptablesMode" l5d:"required"`
		Image                *lkImage           `json:"image"`
		XTMountPath          *lkVolumeMountPath `json:"xtMountPath"`
		Resources            *lkResources       `json:"resources"`
		CloseWaitTimeoutSecs int64              `json:"closeWaitTimeoutSecs"`
		RunAsRoot            bool               `json:"runAsRoot"`
		RunAsUser            int64              `json:"runAsUser"`
		LogLevel             string             `json:"logLevel"`
		LogFormat            string             `json:"logFormat"`
	}
	lkDebugContainer struct {
		Image *lkImage `json:"image"`
	}
	lkImage struct {
		Name       string `json:"name" l5d:"required"`
		PullPolicy string `json:"pullPolicy" l5d:"required"`
		Version    string `json:"version" l5d:"required"`
	}
	lkPorts struct {
		Admin    int32 `json:"admin"`
		Control  int32 `json:"control"`
		Inbound  int32 `json:"inbound"`
		Outbound int32 `json:"outbound"`
	}
	lkConstraints struct {
		Limit   string `json:"limit"`
		Request string `json:"request"`
	}
	lkResources struct {
		CPU              lkConstraints `json:"cpu"`
		Memory           lkConstraints `json:"memory"`
		EphemeralStorage lkConstraints `json:"ephemeral-storage"`
	}
	lkVolumeMountPath struct {
		Name      string `json:"name" l5d:"required"`
		MountPath string `json:"mountPath" l5d:"required"`
		ReadOnly  bool   `json:"readOnly"`
	}
	lkIdentity struct {
		ExternalCA                    bool      `json:"externalCA"`
		ServiceAccountTokenProjection bool      `json:"serviceAccountTokenProjection"`
		Issuer                        *lkIssuer `json:"issuer"`
	}
	lkIssuer struct {
		Scheme             string `json:"scheme" l5d:"required"`
		ClockSkewAllowance string `json:"clockSkewAllowance" l5d:"required"`
		IssuanceLifetime   string `json:"issuanceLifetime" l5d:"required"`
	}
	// lkWebhook is Linkerd's ProxyInjector/ProfileValidator: its *TLS is embedded, so
	// Linkerd's code reading ExternalSecret dereferences it, and encoding/json allocates it
	// only when one of its fields is present.
	lkWebhook struct {
		*LkTLS
	}
	LkTLS struct {
		ExternalSecret bool   `json:"externalSecret"`
		CaBundle       string `json:"caBundle"`
	}
)

// missingFields walks v (a decoded linkerdValues) and names, by JSON path, every pointer or
// map that is nil and every required string that is empty.
func missingFields(v reflect.Value, path string) []string {
	var out []string
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return []string{path}
		}
		return missingFields(v.Elem(), path)
	case reflect.Map:
		if v.IsNil() {
			return []string{path}
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			p := path
			if !f.Anonymous {
				p = strings.TrimPrefix(path+"."+name, ".")
			}
			fv := v.Field(i)
			if f.Tag.Get("l5d") == "required" && fv.Kind() == reflect.String && fv.String() == "" {
				out = append(out, p+` (empty)`)
				continue
			}
			out = append(out, missingFields(fv, p)...)
		}
	}
	return out
}

// linkerdConfig renders the control plane with vals and returns linkerd-config's data.
func linkerdConfig(t *testing.T, vals map[string]any) map[string]any {
	t.Helper()
	out, err := Render(ControlPlaneChart, Options{Values: vals})
	if err != nil {
		t.Fatal(err)
	}
	cm := kinds(t, out)["ConfigMap/linkerd-config"]
	if cm == nil {
		t.Fatal("install renders no linkerd-config ConfigMap")
	}
	return cm["data"].(map[string]any)
}

// TestLinkerdConfigInLinkerdsShape: linkerd-config's values, decoded the way Linkerd's CLI
// decodes them (sigs.k8s.io/yaml into its Values type), have every section Linkerd's CLI
// dereferences and every setting its templates need non-empty, so `linkerd inject`, `linkerd
// check` and `linkerd upgrade` of Linkerd's own CLI work against an l5d install. Also with
// the HA values and an external issuer.
func TestLinkerdConfigInLinkerdsShape(t *testing.T) {
	for name, mod := range map[string]func(map[string]any){
		"default": func(map[string]any) {},
		"ha": func(v map[string]any) {
			for k, val := range haValues(t) {
				if _, ok := v[k]; !ok {
					v[k] = val
				}
			}
		},
		"external issuer": func(v map[string]any) {
			v["identity"] = map[string]any{"issuer": map[string]any{"scheme": "kubernetes.io/tls"}}
		},
	} {
		t.Run(name, func(t *testing.T) {
			vals := testValues(t)
			mod(vals)
			data := linkerdConfig(t, vals)
			doc, _ := data["values"].(string)
			var lv linkerdValues
			if err := yaml.Unmarshal([]byte(doc), &lv); err != nil {
				t.Fatalf("Linkerd's CLI cannot decode linkerd-config's values: %v", err)
			}
			if missing := missingFields(reflect.ValueOf(lv), ""); len(missing) > 0 {
				t.Errorf("linkerd-config's values lack what Linkerd's CLI reads: %s", strings.Join(missing, ", "))
			}
			if strings.Contains(doc, "PRIVATE KEY") {
				t.Error("linkerd-config's values carry a private key")
			}
			if lv.IdentityTrustAnchorsPEM != vals["identityTrustAnchorsPEM"] || data["identityTrustAnchorsPEM"] != vals["identityTrustAnchorsPEM"] {
				t.Error("the trust anchors in values or in the identityTrustAnchorsPEM key differ from the installed anchors")
			}
			if lv.IdentityTrustDomain != "cluster.local" {
				t.Errorf("identityTrustDomain = %q, want the cluster domain", lv.IdentityTrustDomain)
			}
			for c, img := range map[string]*lkImage{"proxy": lv.Proxy.Image, "proxyInit": lv.ProxyInit.Image} {
				if want := "ghcr.io/l5d-go/" + map[string]string{"proxy": "proxy", "proxyInit": "proxy-init"}[c]; img.Name != want || img.Version != lv.LinkerdVersion {
					t.Errorf("%s.image = %s:%s, want %s:%s (the image the install runs)", c, img.Name, img.Version, want, lv.LinkerdVersion)
				}
			}
			if name != "external issuer" {
				if err := issuedByAnchors(vals, lv.IdentityTrustAnchorsPEM); err != nil {
					t.Errorf("Linkerd's check \"issuer cert is issued by the trust anchor\" would fail: %v", err)
				}
			}
		})
	}
}

// issuedByAnchors verifies the issuer certificate of vals against anchorsPEM, as Linkerd's
// check does with the anchors from linkerd-config's values.
func issuedByAnchors(vals map[string]any, anchorsPEM string) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(anchorsPEM)) {
		return fmt.Errorf("no certificate in the anchors")
	}
	crtPEM := vals["identity"].(map[string]any)["issuer"].(map[string]any)["tls"].(map[string]any)["crtPEM"].(string)
	b, _ := pem.Decode([]byte(crtPEM))
	if b == nil {
		return fmt.Errorf("issuer certificate is not PEM")
	}
	crt, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return err
	}
	_, err = crt.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

// TestInstalledValuesRoundTrip: the chart values an upgrade reads back from linkerd-config
// render the same control plane as the values it was installed with, and an upgrade to a new
// version moves the proxy and proxy-init images with it.
func TestInstalledValuesRoundTrip(t *testing.T) {
	vals := testValues(t)
	first, err := Render(ControlPlaneChart, Options{Values: vals})
	if err != nil {
		t.Fatal(err)
	}
	back, err := InstalledValues(kinds(t, first)["ConfigMap/linkerd-config"]["data"].(map[string]any)["values"].(string))
	if err != nil {
		t.Fatal(err)
	}
	back["identity"].(map[string]any)["issuer"].(map[string]any)["tls"] = vals["identity"].(map[string]any)["issuer"].(map[string]any)["tls"]
	again, err := Render(ControlPlaneChart, Options{Values: back})
	if err != nil {
		t.Fatalf("rendering from the installed values: %v", err)
	}
	if string(mask(first)) != string(mask(again)) {
		t.Error("the control plane rendered from linkerd-config's values differs from the installed one")
	}
	back["linkerdVersion"] = "v9.9.9"
	upgraded, err := Render(ControlPlaneChart, Options{Values: back})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ghcr.io/l5d-go/proxy:v9.9.9", "ghcr.io/l5d-go/proxy-init:v9.9.9", "-proxy-version=v9.9.9"} {
		if !strings.Contains(string(upgraded), want) {
			t.Errorf("an upgrade to v9.9.9 from the installed values does not render %s", want)
		}
	}
}
