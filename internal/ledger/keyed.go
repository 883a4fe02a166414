package ledger

import (
	"context"

	"github.com/pspguard/pspguard/internal/idempotency"
)

// Keyed claims a keyed capture's idempotency key together with its
// reservation, and settles both together: with Redis each is one script on
// the order's slot, so a keyed capture on an order the ledger knows costs
// two commands, one before the PSP is asked and one after.
type Keyed interface {
	// ClaimReserve claims ik with fingerprint fp (idempotency.Store.Begin)
	// and, only if the claim is Started, reserves as Reserve does. If it is
	// not Started, nothing is reserved and the Decision is zero.
	ClaimReserve(ctx context.Context, key Key, req ReserveRequest, ik idempotency.Key, fp [32]byte) (idempotency.Claim, Decision, error)

	// SettleFinish settles res as s says (Commit, Release or MarkUncertain)
	// and then completes the claim of ik held by token with result, or
	// abandons it if result is nil. It returns the ledger's error and the
	// idempotency store's, each as their own methods would.
	SettleFinish(ctx context.Context, res Reservation, s Settlement, ik idempotency.Key, token string, result *idempotency.Result) (settleErr, finishErr error)
}

// Settlement is how a reservation is settled.
type Settlement uint8

const (
	SettleCommit    Settlement = iota + 1 // Commit: the PSP applied it
	SettleRelease                         // Release: the PSP refused it
	SettleUncertain                       // MarkUncertain: the outcome is unknown
)

// NewKeyed returns the combined operations of any ledger and idempotency
// store, one after the other: for stores whose calls cost nothing (memory).
// A Redis ledger and cache get one script each (Redis.Keyed).
func NewKeyed(l Store, i idempotency.Store) Keyed {
	if lr, ok := l.(*Redis); ok {
		if ir, ok := i.(*idempotency.Redis); ok {
			return lr.keyed(ir)
		}
	}
	return sequence{l, i}
}

type sequence struct {
	l Store
	i idempotency.Store
}

func (q sequence) ClaimReserve(ctx context.Context, key Key, req ReserveRequest, ik idempotency.Key, fp [32]byte) (idempotency.Claim, Decision, error) {
	c, err := q.i.Begin(ctx, ik, fp)
	if err != nil || c.Outcome != idempotency.Started {
		return c, Decision{}, err
	}
	d, err := q.l.Reserve(ctx, key, req)
	if err != nil {
		// Nothing was decided: the key must not stay claimed.
		_ = q.i.Abandon(ctx, ik, c.Token)
		return idempotency.Claim{}, Decision{}, err
	}
	return c, d, nil
}

func (q sequence) SettleFinish(ctx context.Context, res Reservation, s Settlement, ik idempotency.Key, token string, result *idempotency.Result) (error, error) {
	var serr error
	switch s {
	case SettleCommit:
		serr = q.l.Commit(ctx, res)
	case SettleRelease:
		serr = q.l.Release(ctx, res)
	default:
		serr = q.l.MarkUncertain(ctx, res)
	}
	if result == nil {
		return serr, q.i.Abandon(ctx, ik, token)
	}
	return serr, q.i.Complete(ctx, ik, token, *result)
}
