package server

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	pb "github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proto/netconv"
)

// addrs builds an address set from "ip:port" or "ip:port=weight" entries.
func addrs(t *testing.T, entries ...string) map[netip.AddrPort]*pb.WeightedAddr {
	t.Helper()
	out := map[netip.AddrPort]*pb.WeightedAddr{}
	for _, e := range entries {
		addr, weight, _ := strings.Cut(e, "=")
		ap := netip.MustParseAddrPort(addr)
		w := uint32(defaultWeight)
		if weight != "" {
			fmt.Sscan(weight, &w)
		}
		out[ap] = &pb.WeightedAddr{Addr: tcpAddr(ap), Weight: w}
	}
	return out
}

// describe renders updates in a fixed order: "remove a,b", "add a=w,b=w", "none exists=B".
func describe(t *testing.T, updates []*pb.Update) []string {
	t.Helper()
	var out []string
	for _, u := range updates {
		var items []string
		switch u := u.GetUpdate().(type) {
		case *pb.Update_Remove:
			for _, a := range u.Remove.GetAddrs() {
				ap, _ := netconv.AddrPort(a)
				items = append(items, ap.String())
			}
			slices.Sort(items)
			out = append(out, "remove "+strings.Join(items, ","))
		case *pb.Update_Add:
			for _, wa := range u.Add.GetAddrs() {
				ap, _ := netconv.AddrPort(wa.GetAddr())
				items = append(items, fmt.Sprintf("%s=%d", ap, wa.GetWeight()))
			}
			slices.Sort(items)
			out = append(out, "add "+strings.Join(items, ","))
		case *pb.Update_NoEndpoints:
			out = append(out, fmt.Sprintf("none exists=%t", u.NoEndpoints.GetExists()))
		default:
			t.Fatalf("unexpected update %v", u)
		}
	}
	return out
}

func TestEndpointUpdates(t *testing.T) {
	const a, b, c = "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"
	first := sentState{}
	told := func(exists bool, entries ...string) sentState {
		return sentState{addrs: addrs(t, entries...), answered: true, exists: exists}
	}
	present := func(entries ...string) endpointSet {
		return endpointSet{exists: true, addrs: addrs(t, entries...)}
	}
	missing := endpointSet{exists: false, addrs: map[netip.AddrPort]*pb.WeightedAddr{}}
	tests := []struct {
		name string
		prev sentState
		set  endpointSet
		want []string
	}{
		{"first answer with addresses", first, present(a, b), []string{"add 10.0.0.1:80=10000,10.0.0.2:80=10000"}},
		{"first answer without addresses", first, present(), []string{"none exists=true"}},
		{"first answer for a missing Service", first, missing, []string{"none exists=false"}},
		{"nothing changed", told(true, a, b), present(a, b), nil},
		{"still empty", told(true), present(), nil},
		{"still missing", told(false), missing, nil},
		{"an address joins", told(true, a), present(a, b), []string{"add 10.0.0.2:80=10000"}},
		{"an address leaves", told(true, a, b), present(a), []string{"remove 10.0.0.2:80"}},
		{"one leaves, one joins", told(true, a, b), present(a, c), []string{"remove 10.0.0.2:80", "add 10.0.0.3:80=10000"}},
		{"a weight changes", told(true, a, b), present(a, b+"=5000"), []string{"add 10.0.0.2:80=5000"}},
		{"the last address leaves", told(true, a, b), present(), []string{"remove 10.0.0.1:80,10.0.0.2:80", "none exists=true"}},
		{"the Service goes away", told(true, a, b), missing, []string{"remove 10.0.0.1:80,10.0.0.2:80", "none exists=false"}},
		{"an empty Service goes away", told(true), missing, []string{"none exists=false"}},
		{"the Service comes back empty", told(false), present(), []string{"none exists=true"}},
		{"the Service comes back with addresses", told(false), present(a), []string{"add 10.0.0.1:80=10000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := maps.Clone(tt.prev.addrs)
			updates, next := endpointUpdates(tt.prev, tt.set)
			if got := describe(t, updates); !slices.Equal(got, tt.want) {
				t.Errorf("updates = %q, want %q", got, tt.want)
			}
			if !maps.Equal(tt.prev.addrs, before) {
				t.Errorf("endpointUpdates modified the previous state")
			}
			if !next.answered || next.exists != tt.set.exists {
				t.Errorf("next state answered=%t exists=%t, want true %t", next.answered, next.exists, tt.set.exists)
			}
			// The client now holds exactly the set's addresses: a second pass sends nothing.
			if again, _ := endpointUpdates(next, tt.set); len(again) != 0 {
				t.Errorf("a repeated answer sends %q, want nothing", describe(t, again))
			}
			want := slices.SortedFunc(maps.Keys(tt.set.addrs), netip.AddrPort.Compare)
			if !tt.set.exists {
				want = nil
			}
			if got := slices.SortedFunc(maps.Keys(next.addrs), netip.AddrPort.Compare); !slices.Equal(got, want) {
				t.Errorf("client holds %v, want %v", got, want)
			}
		})
	}
}

// The Add carries the set's metric labels.
func TestEndpointUpdatesCarryLabels(t *testing.T) {
	set := endpointSet{exists: true, labels: map[string]string{"service": "web", "namespace": "ns"}, addrs: addrs(t, "10.0.0.1:80")}
	updates, _ := endpointUpdates(sentState{}, set)
	if len(updates) != 1 || !maps.Equal(updates[0].GetAdd().GetMetricLabels(), set.labels) {
		t.Fatalf("updates = %v, want one Add labelled %v", updates, set.labels)
	}
}
