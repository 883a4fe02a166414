package ledger

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// heldSet is what one Redis store counts for Stats: the reservations this
// process made and has not settled, and those whose outcome it left unknown
// (marked uncertain, or not settled because the store did not answer) until
// the order's hash no longer holds them. No key is shared by all orders, so
// a Cluster spreads every script over the slots; the price is that each
// gateway instance counts its own reservations, and the fleet's are the
// sum over the instances.
type heldSet struct {
	mu        sync.Mutex
	pending   map[string]heldField // by token
	uncertain map[string]heldField // by token
}

// heldField is a reservation's field in its order's hash.
type heldField struct{ key, field string }

// maxUncertain bounds the uncertain reservations one process keeps
// counting. They are rare (a capture whose answer was lost) and leave the
// set when their order is reconciled or expires.
const maxUncertain = 10000

func fieldOf(res Reservation) string {
	if res.change {
		return "c:" + res.Token
	}
	return "r:" + res.Token
}

func (s *heldSet) add(key string, res Reservation) {
	s.mu.Lock()
	s.pending[res.Token] = heldField{key, fieldOf(res)}
	s.mu.Unlock()
}

// settled records the end of a settlement: a reservation the store dropped
// (or no longer held) leaves the set; one left in the hash stays counted
// until the order's hash drops it.
func (s *heldSet) settled(res Reservation, dropped bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.pending[res.Token]
	if !ok {
		return
	}
	delete(s.pending, res.Token)
	if !dropped && len(s.uncertain) < maxUncertain {
		s.uncertain[res.Token] = f
	}
}

// forget drops the reservations of an order the store dropped.
func (s *heldSet) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range []map[string]heldField{s.pending, s.uncertain} {
		for tok, f := range m {
			if f.key == key {
				delete(m, tok)
			}
		}
	}
}

// count is the number of pending reservations and of uncertain ones the
// order hashes still hold (asked in one pipeline); the others leave the set.
func (s *heldSet) count(ctx context.Context, c redis.Cmdable) (int64, error) {
	s.mu.Lock()
	n := int64(len(s.pending))
	toks := make([]string, 0, len(s.uncertain))
	fields := make([]heldField, 0, len(s.uncertain))
	for tok, f := range s.uncertain {
		toks, fields = append(toks, tok), append(fields, f)
	}
	s.mu.Unlock()
	if len(toks) == 0 {
		return n, nil
	}
	cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, f := range fields {
			p.HExists(ctx, f.key, f.field)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, cmd := range cmds {
		if cmd.(*redis.BoolCmd).Val() {
			n++
		} else {
			delete(s.uncertain, toks[i])
		}
	}
	return n, nil
}
