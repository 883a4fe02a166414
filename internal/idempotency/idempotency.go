// Package idempotency caches the PSP's answers to keyed requests, so that a
// retried request is answered from the cache: performed once upstream and
// counted once in the ledger.
//
// A key is first claimed (Begin) with the fingerprint of the checked request;
// the first caller owns it and either completes it with the PSP's answer or
// abandons it (gateway refusal, 5xx, transport failure) so that a retry runs
// again. A repeat while in flight is a conflict, a repeat with another
// fingerprint is a misuse, and a completed repeat is replayed.
package idempotency

import (
	"context"
	"errors"
	"net/http"
)

// Key scopes a cached result: Scope is a digest of the caller's full
// credentials, the method and the path; ID is the idempotency key the caller
// sent. Two callers never share a Scope unless they share credentials.
//
// Slot, when set, is the Redis Cluster hash tag the record shares with
// other keys: a request on an order carries the order's (ledger.Key.Slot),
// so that one script can claim the key and reserve the capture. It follows
// from Scope (whose path names the order), so it never tells two keys
// apart. Empty: the record gets a tag of its own.
type Key struct {
	Scope [32]byte
	ID    string
	Slot  string
}

// Result is a complete PSP answer worth replaying.
type Result struct {
	Status int
	Header http.Header // allow-listed headers only
	Body   []byte
}

// Outcome of Begin.
type Outcome uint8

const (
	Started  Outcome = iota // the caller owns the key: perform the request, then Complete or Abandon
	Replay                  // a completed result with the same fingerprint: answer with it
	InFlight                // the same key is being processed: 409
	Mismatch                // the key was used with another fingerprint: 422
)

var outcomeNames = [...]string{"started", "replay", "in_flight", "mismatch"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Claim is the result of Begin. Token is the fencing token of a Started
// claim: only its holder can complete or abandon it.
type Claim struct {
	Outcome Outcome
	Token   string
	Result  *Result // set for Replay
}

// ErrUnavailable wraps every error of a store that cannot answer.
var ErrUnavailable = errors.New("idempotency store unavailable")

// ErrNotHeld is returned by Complete and Abandon when the claim's token is not
// held (any more): it expired, or another claim replaced it.
var ErrNotHeld = errors.New("idempotency claim not held")

// Store holds claims and results. Begin is atomic across processes for
// shared stores.
type Store interface {
	Begin(ctx context.Context, key Key, fingerprint [32]byte) (Claim, error)
	Complete(ctx context.Context, key Key, token string, res Result) error
	Abandon(ctx context.Context, key Key, token string) error
	// Len reports how many completed results are held (for a gauge), or
	// -1 when no key counts them (Redis: they spread over the keyspace).
	Len(ctx context.Context) (int64, error)
	Close() error
}
