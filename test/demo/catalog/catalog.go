// Package catalog is the demo's Catalog gRPC service: a fixed list of items.
package catalog

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	demov1 "github.com/l5d-go/l5d/test/demo/gen/demov1"
)

// items is what the demo shop sells, ordered by id.
var items = []*demov1.Item{
	{Id: "anvil", Name: "Anvil", Description: "Cast iron, 50 kg, for the workshop that has everything.", PriceCents: 24900},
	{Id: "beacon", Name: "Beacon", Description: "A lighthouse lamp for a very small lighthouse.", PriceCents: 8900},
	{Id: "compass", Name: "Compass", Description: "Points north, mostly.", PriceCents: 1999},
	{Id: "kettle", Name: "Kettle", Description: "Whistles at exactly the right moment.", PriceCents: 3450},
	{Id: "lantern", Name: "Lantern", Description: "Brass, storm-proof, lights the way home.", PriceCents: 4200},
	{Id: "rope", Name: "Rope", Description: "Twenty metres of braided hemp.", PriceCents: 1500},
	{Id: "telescope", Name: "Telescope", Description: "See the next valley before you walk to it.", PriceCents: 15900},
}

// ItemIDs returns the ids of every item in the catalog, in order.
func ItemIDs() []string {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.Id
	}
	return ids
}

// Server implements demov1.CatalogServer. The zero value is ready to use.
type Server struct {
	demov1.UnimplementedCatalogServer
}

// ListItems returns every item, ordered by id.
func (Server) ListItems(context.Context, *demov1.ListItemsRequest) (*demov1.ListItemsResponse, error) {
	out := make([]*demov1.Item, len(items))
	for i, it := range items {
		out[i] = proto.CloneOf(it)
	}
	return &demov1.ListItemsResponse{Items: out}, nil
}

// GetItem returns the item with the requested id, or NOT_FOUND.
func (Server) GetItem(_ context.Context, req *demov1.GetItemRequest) (*demov1.Item, error) {
	i, ok := slices.BinarySearchFunc(items, req.GetId(), func(it *demov1.Item, id string) int { return strings.Compare(it.Id, id) })
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no item %q in the catalog", req.GetId())
	}
	return proto.CloneOf(items[i]), nil
}
