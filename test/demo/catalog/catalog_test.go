package catalog_test

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/l5d-go/l5d/test/demo/catalog"
	"github.com/l5d-go/l5d/test/demo/demotest"
	demov1 "github.com/l5d-go/l5d/test/demo/gen/demov1"
	"github.com/l5d-go/l5d/test/demo/ratings"
)

func TestListAndGetOverGRPC(t *testing.T) {
	s := demotest.Start(t, ratings.Options{})
	ctx := context.Background()
	resp, err := s.Catalog.ListItems(ctx, &demov1.ListItemsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, it := range resp.GetItems() {
		ids = append(ids, it.GetId())
		if it.GetName() == "" || it.GetPriceCents() <= 0 {
			t.Errorf("item %v lacks a name or a price", it)
		}
	}
	if !slices.Equal(ids, catalog.ItemIDs()) || !slices.IsSorted(ids) || len(ids) == 0 {
		t.Errorf("ListItems ids = %v, want %v in order", ids, catalog.ItemIDs())
	}
	it, err := s.Catalog.GetItem(ctx, &demov1.GetItemRequest{Id: "kettle"})
	if err != nil || it.GetName() != "Kettle" {
		t.Errorf("GetItem(kettle) = %v, %v; want the Kettle", it, err)
	}
	if _, err := s.Catalog.GetItem(ctx, &demov1.GetItemRequest{Id: "unicorn"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetItem(unicorn) = %v, want NOT_FOUND", err)
	}
}
