package server

import (
	"net/netip"

	"google.golang.org/protobuf/proto"

	pb "github.com/l5d-go/l5d/proto/gen/destination"
)

// sentState is what a Get stream has told its client so far.
type sentState struct {
	// addrs are the addresses the client holds, as last sent.
	addrs map[netip.AddrPort]*pb.WeightedAddr
	// answered is false before the first answer.
	answered bool
	// exists is what the last answer said of the Service's existence.
	exists bool
}

// endpointUpdates returns the updates that take a client that was told prev to the
// answer set, in the order to send them, and what the client then holds. It neither
// modifies prev nor keeps a reference to it; the returned state may share set.addrs.
//
// The updates follow Linkerd's destination service:
//   - a Service that does not exist: a Remove of every address sent, then
//     NoEndpoints{exists: false} on the first answer or when the Service went away;
//   - a Service that exists: a Remove of the addresses no longer in set, an Add (with
//     the set's metric labels) of the addresses that are new or whose weight, labels or
//     hints changed, and NoEndpoints{exists: true} when it has no address and the client
//     has not been told so (first answer, the Service came back, or the last addresses
//     just went).
//
// Nothing is returned when the client already holds set.
func endpointUpdates(prev sentState, set endpointSet) ([]*pb.Update, sentState) {
	next := sentState{answered: true, exists: set.exists}
	var updates []*pb.Update
	if !set.exists {
		if len(prev.addrs) > 0 {
			gone := make([]netip.AddrPort, 0, len(prev.addrs))
			for ap := range prev.addrs {
				gone = append(gone, ap)
			}
			updates = append(updates, removeUpdate(gone))
		}
		if !prev.answered || prev.exists {
			updates = append(updates, &pb.Update{Update: &pb.Update_NoEndpoints{NoEndpoints: &pb.NoEndpoints{Exists: false}}})
		}
		return updates, next
	}
	var gone []netip.AddrPort
	for ap := range prev.addrs {
		if _, ok := set.addrs[ap]; !ok {
			gone = append(gone, ap)
		}
	}
	if len(gone) > 0 {
		updates = append(updates, removeUpdate(gone))
	}
	add := &pb.WeightedAddrSet{MetricLabels: set.labels}
	for ap, wa := range set.addrs {
		if old, ok := prev.addrs[ap]; !ok || !proto.Equal(old, wa) {
			add.Addrs = append(add.Addrs, wa)
		}
	}
	if len(add.Addrs) > 0 {
		updates = append(updates, &pb.Update{Update: &pb.Update_Add{Add: add}})
	} else if len(set.addrs) == 0 && (!prev.answered || !prev.exists || len(gone) > 0) {
		updates = append(updates, &pb.Update{Update: &pb.Update_NoEndpoints{NoEndpoints: &pb.NoEndpoints{Exists: true}}})
	}
	// After these updates the client holds exactly the set's addresses.
	next.addrs = set.addrs
	return updates, next
}

func removeUpdate(aps []netip.AddrPort) *pb.Update {
	set := &pb.AddrSet{}
	for _, ap := range aps {
		set.Addrs = append(set.Addrs, tcpAddr(ap))
	}
	return &pb.Update{Update: &pb.Update_Remove{Remove: set}}
}
