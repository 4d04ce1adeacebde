package routes

import (
	"math"
	"sync"
	"time"

	"github.com/l5d-go/l5d/proto/gen/destination"
)

// Linkerd's default retry budget: 20% of requests, plus 10 retries per second, over 10s.
const (
	DefaultRetryRatio          = 0.2
	DefaultMinRetriesPerSecond = 10
	DefaultBudgetTTL           = 10 * time.Second
)

// budgetSlots is how many parts the budget's window is kept in; deposits and retries
// leave the window one part at a time.
const budgetSlots = 10

// unit is one retry in the budget's fixed-point arithmetic.
const unit = 1000

// Budget is a retry budget: over a sliding window of TTL, retries may add RetryRatio of the
// requests that deposited into it, plus MinRetriesPerSecond × TTL. Safe for concurrent use.
type Budget struct {
	ratio     float32
	minPerSec uint32
	ttl       time.Duration

	reserve int64 // unit × MinRetriesPerSecond × TTL in seconds
	deposit int64 // unit × RetryRatio

	mu        sync.Mutex
	slots     [budgetSlots]struct{ deposited, withdrawn int64 }
	cur       int
	curEnd    time.Time
	now       func() time.Time
	slotWidth time.Duration
}

// NewBudget returns a budget; a non-positive or absurd ttl takes the default, and the
// ratio is bounded to [0, 1000].
func NewBudget(ratio float32, minPerSecond uint32, ttl time.Duration) *Budget {
	if ttl <= 0 || ttl > time.Hour {
		ttl = DefaultBudgetTTL
	}
	if math.IsNaN(float64(ratio)) || ratio < 0 {
		ratio = 0
	}
	ratio = min(ratio, 1000)
	b := &Budget{ratio: ratio, minPerSec: minPerSecond, ttl: ttl, now: time.Now,
		slotWidth: ttl / budgetSlots}
	b.reserve = int64(min(float64(minPerSecond)*unit*ttl.Seconds(), math.MaxInt64/4))
	b.deposit = int64(math.Round(float64(ratio) * unit))
	return b
}

func budgetOf(pb *destination.RetryBudget) *Budget {
	if pb == nil {
		return NewBudget(DefaultRetryRatio, DefaultMinRetriesPerSecond, DefaultBudgetTTL)
	}
	var ttl time.Duration
	if pb.GetTtl().CheckValid() == nil {
		ttl = pb.GetTtl().AsDuration()
	}
	return NewBudget(pb.GetRetryRatio(), pb.GetMinRetriesPerSecond(), ttl)
}

func (b *Budget) same(o *Budget) bool {
	return b != nil && o != nil && b.ratio == o.ratio && b.minPerSec == o.minPerSec && b.ttl == o.ttl
}

// Deposit records one request that could be retried.
func (b *Budget) Deposit() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.advance()
	b.slots[b.cur].deposited += b.deposit
	b.mu.Unlock()
}

// Withdraw takes one retry from the budget; it reports false when the budget is exhausted.
func (b *Budget) Withdraw() bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance()
	balance := b.reserve
	for _, s := range b.slots {
		balance += s.deposited - s.withdrawn
	}
	if balance < unit {
		return false
	}
	b.slots[b.cur].withdrawn += unit
	return true
}

// advance drops the slots that have left the window.
func (b *Budget) advance() {
	now := b.now()
	if b.curEnd.IsZero() {
		b.curEnd = now.Add(b.slotWidth)
		return
	}
	for n := 0; !now.Before(b.curEnd) && n < budgetSlots; n++ {
		b.cur = (b.cur + 1) % budgetSlots
		b.slots[b.cur] = struct{ deposited, withdrawn int64 }{}
		b.curEnd = b.curEnd.Add(b.slotWidth)
	}
	if !now.Before(b.curEnd) { // idle for longer than the window: start afresh
		b.curEnd = now.Add(b.slotWidth)
	}
}
