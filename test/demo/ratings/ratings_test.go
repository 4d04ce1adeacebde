package ratings_test

import (
	"context"
	"math"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/l5d-go/l5d/test/demo/demotest"
	demov1 "github.com/l5d-go/l5d/test/demo/gen/demov1"
	"github.com/l5d-go/l5d/test/demo/ratings"
)

// failures calls GetRating n times over real gRPC and counts the failures by code.
func failures(t *testing.T, share float64, n int) map[codes.Code]int {
	t.Helper()
	s := demotest.Start(t, ratings.Options{FailureShare: share})
	got := map[codes.Code]int{}
	for range n {
		_, err := s.Ratings.GetRating(context.Background(), &demov1.GetRatingRequest{ItemId: "kettle"})
		got[status.Code(err)]++
	}
	return got
}

func TestFailureShareIsHonoured(t *testing.T) {
	const n = 2000
	for _, share := range []float64{ratings.DefaultFailureShare, 0.6} {
		got := failures(t, share, n)
		failed := got[codes.Unavailable] + got[codes.Internal]
		if failed+got[codes.OK] != n {
			t.Fatalf("share %v: calls ended with codes %v, want only OK, UNAVAILABLE and INTERNAL", share, got)
		}
		// Six standard deviations of the binomial count: a false alarm is ~1e-9.
		mean, sd := n*share, math.Sqrt(n*share*(1-share))
		if math.Abs(float64(failed)-mean) > 6*sd {
			t.Errorf("share %v: %d of %d calls failed, want %v ± %.0f", share, failed, n, mean, 6*sd)
		}
		if got[codes.Unavailable] == 0 || got[codes.Internal] == 0 {
			t.Errorf("share %v: failures %v, want both UNAVAILABLE and INTERNAL", share, got)
		}
	}
}

func TestNoAndAllFailures(t *testing.T) {
	if got := failures(t, 0, 200); got[codes.OK] != 200 {
		t.Errorf("share 0: codes %v, want 200 OK", got)
	}
	if got := failures(t, 1, 200); got[codes.OK] != 0 {
		t.Errorf("share 1: codes %v, want no OK", got)
	}
}

func TestVotesAverage(t *testing.T) {
	s := demotest.Start(t, ratings.Options{})
	ctx := context.Background()
	for _, stars := range []int32{5, 4, 3} {
		if _, err := s.Ratings.Rate(ctx, &demov1.RateRequest{ItemId: "rope", Stars: stars}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.Ratings.GetRating(ctx, &demov1.GetRatingRequest{ItemId: "rope"})
	if err != nil {
		t.Fatal(err)
	}
	if r.GetVotes() != 3 || r.GetAverage() != 4 {
		t.Errorf("rating after votes 5, 4, 3 = %d votes averaging %v, want 3 votes averaging 4", r.GetVotes(), r.GetAverage())
	}
	r, err = s.Ratings.GetRating(ctx, &demov1.GetRatingRequest{ItemId: "anvil"})
	if err != nil || r.GetVotes() != 0 || r.GetAverage() != 0 {
		t.Errorf("rating without votes = %v, %v; want 0 votes, average 0", r, err)
	}
	for _, bad := range []*demov1.RateRequest{{ItemId: "rope", Stars: 0}, {ItemId: "rope", Stars: 6}, {Stars: 3}} {
		if _, err := s.Ratings.Rate(ctx, bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("Rate(%v) = %v, want INVALID_ARGUMENT", bad, err)
		}
	}
}

func TestInvalidOptions(t *testing.T) {
	for _, o := range []ratings.Options{{FailureShare: -0.1}, {FailureShare: 1.5}, {FailureShare: math.NaN()}, {Latency: -1}} {
		if _, err := ratings.New(o); err == nil {
			t.Errorf("New(%+v) succeeded, want an error", o)
		}
	}
}
