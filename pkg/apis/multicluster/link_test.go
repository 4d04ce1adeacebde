package multicluster

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func TestParse(t *testing.T) {
	base := func() LinkSpec {
		return LinkSpec{TargetClusterName: "east", ClusterCredentialsSecret: "cluster-credentials-east",
			GatewayAddress: "192.0.2.1", Selector: DefaultSelector(), RemoteDiscoverySelector: DefaultRemoteDiscoverySelector()}
	}
	for _, tc := range []struct {
		name    string
		edit    func(*LinkSpec)
		wantErr string
		check   func(*testing.T, *Config)
	}{
		{name: "defaults", edit: func(*LinkSpec) {}, check: func(t *testing.T, c *Config) {
			want := Probe{Path: "/ready", Port: 4191, Period: 3 * time.Second, Timeout: 30 * time.Second, FailureThreshold: 3}
			if !c.Gateway || c.GatewayPort != 4143 || c.Probe != want || c.ClusterDomain != "cluster.local" {
				t.Errorf("config %+v", c)
			}
			if !c.Selector.Matches(labels.Set{LabelExported: "true"}) || c.Selector.Matches(labels.Set{LabelExported: "remote-discovery"}) {
				t.Error("selector")
			}
		}},
		{name: "explicit probe", edit: func(s *LinkSpec) {
			s.GatewayPort = "30143"
			s.ProbeSpec = ProbeSpec{Path: "/health", Port: "30191", Period: "1s", Timeout: "2s", FailureThreshold: "5"}
		}, check: func(t *testing.T, c *Config) {
			want := Probe{Path: "/health", Port: 30191, Period: time.Second, Timeout: 2 * time.Second, FailureThreshold: 5}
			if c.GatewayPort != 30143 || c.Probe != want {
				t.Errorf("config %+v", c)
			}
		}},
		{name: "no gateway", edit: func(s *LinkSpec) { s.GatewayAddress = ""; s.GatewayPort = "bad" }, check: func(t *testing.T, c *Config) {
			if c.Gateway {
				t.Error("gateway without an address")
			}
		}},
		{name: "nil selector selects nothing", edit: func(s *LinkSpec) { s.Selector = nil }, check: func(t *testing.T, c *Config) {
			if c.Selector.Matches(labels.Set{LabelExported: "true"}) {
				t.Error("nil selector matched")
			}
		}},
		{name: "no cluster name", edit: func(s *LinkSpec) { s.TargetClusterName = "" }, wantErr: "spec.targetClusterName"},
		{name: "no secret", edit: func(s *LinkSpec) { s.ClusterCredentialsSecret = "" }, wantErr: "spec.clusterCredentialsSecret"},
		{name: "bad port", edit: func(s *LinkSpec) { s.GatewayPort = "70000" }, wantErr: `spec.gatewayPort: "70000" is not a port number`},
		{name: "bad period", edit: func(s *LinkSpec) { s.ProbeSpec.Period = "3" }, wantErr: "spec.probeSpec.period"},
		{name: "bad threshold", edit: func(s *LinkSpec) { s.ProbeSpec.FailureThreshold = "0" }, wantErr: "spec.probeSpec.failureThreshold"},
		{name: "bad selector", edit: func(s *LinkSpec) {
			s.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}}
		}, wantErr: "spec.selector"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			tc.edit(&s)
			c, err := Parse(&Link{ObjectMeta: metav1.ObjectMeta{Name: "east", Namespace: Namespace}, Spec: s})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "linkerd-multicluster/east") {
					t.Fatalf("err = %v, want one naming the link and %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}
