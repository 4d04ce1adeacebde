// Package ratings is the demo's Ratings gRPC service: it keeps users' votes per item and
// is deliberately slow and flaky on GetRating, so that the mesh has failures and latency
// to show.
package ratings

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	demov1 "github.com/l5d-go/l5d/test/demo/gen/demov1"
)

// DefaultFailureShare is the share of GetRating calls that fail unless configured.
const DefaultFailureShare = 0.25

// Options configure a Server.
type Options struct {
	// FailureShare is the share of GetRating calls, in [0, 1], that fail with
	// UNAVAILABLE or INTERNAL (chosen at random, half each).
	FailureShare float64
	// Latency is the least time every GetRating call takes; Jitter adds a uniformly
	// random extra delay in [0, Jitter).
	Latency, Jitter time.Duration
}

// Validate reports the first option out of range.
func (o Options) Validate() error {
	if !(o.FailureShare >= 0 && o.FailureShare <= 1) {
		return fmt.Errorf("failure share %v is not between 0 and 1", o.FailureShare)
	}
	if o.Latency < 0 || o.Jitter < 0 {
		return fmt.Errorf("latency %v and jitter %v must not be negative", o.Latency, o.Jitter)
	}
	return nil
}

// Server implements demov1.RatingsServer. Use New.
type Server struct {
	demov1.UnimplementedRatingsServer
	opts Options

	mu    sync.Mutex
	votes map[string]*tally
}

type tally struct{ votes, stars int64 }

// New returns a Server with no votes, or an error naming the invalid option.
func New(opts Options) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("ratings: %w", err)
	}
	return &Server{opts: opts, votes: map[string]*tally{}}, nil
}

// GetRating returns the item's rating after the configured delay, or fails with
// UNAVAILABLE or INTERNAL for the configured share of calls.
func (s *Server) GetRating(ctx context.Context, req *demov1.GetRatingRequest) (*demov1.Rating, error) {
	if req.GetItemId() == "" {
		return nil, status.Error(codes.InvalidArgument, "item_id is empty")
	}
	delay := s.opts.Latency
	if s.opts.Jitter > 0 {
		delay += rand.N(s.opts.Jitter)
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-t.C:
		}
	}
	if rand.Float64() < s.opts.FailureShare {
		if rand.IntN(2) == 0 {
			return nil, status.Error(codes.Unavailable, "ratings store is busy (simulated failure)")
		}
		return nil, status.Error(codes.Internal, "ratings store lost its place (simulated failure)")
	}
	return s.rating(req.GetItemId()), nil
}

// Rate records a vote of 1 to 5 stars; other values are INVALID_ARGUMENT.
func (s *Server) Rate(_ context.Context, req *demov1.RateRequest) (*demov1.Rating, error) {
	if req.GetItemId() == "" {
		return nil, status.Error(codes.InvalidArgument, "item_id is empty")
	}
	if req.GetStars() < 1 || req.GetStars() > 5 {
		return nil, status.Errorf(codes.InvalidArgument, "stars %d is not between 1 and 5", req.GetStars())
	}
	s.mu.Lock()
	t := s.votes[req.GetItemId()]
	if t == nil {
		t = &tally{}
		s.votes[req.GetItemId()] = t
	}
	t.votes++
	t.stars += int64(req.GetStars())
	s.mu.Unlock()
	return s.rating(req.GetItemId()), nil
}

func (s *Server) rating(id string) *demov1.Rating {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &demov1.Rating{ItemId: id}
	if t := s.votes[id]; t != nil && t.votes > 0 {
		r.Votes = t.votes
		r.Average = float64(t.stars) / float64(t.votes)
	}
	return r
}
