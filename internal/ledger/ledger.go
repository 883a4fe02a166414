// Package ledger keeps every order's authorized, captured and released
// amounts and the captures in flight, so that no capture can take more than
// remains — under concurrency, retries, lost responses and several gateway
// instances sharing one store.
//
// A capture is decided in one atomic step (Reserve), then settled by what the
// PSP answered: Commit on success, Release on a definite refusal, MarkUncertain
// when the outcome is unknown (timeout, lost connection, 5xx). An order with an
// uncertain reservation must be reconciled with the PSP (Reconcile) before the
// next decision on it; a reservation is never released on a guess.
package ledger

import (
	"context"
	"errors"
	"time"

	"github.com/pspguard/pspguard/internal/psp"
)

// Key identifies an order: the PSP, the merchant identity and the order id.
type Key struct {
	PSP      string
	Merchant string
	OrderID  string
}

// Entry is an order as the ledger holds it.
type Entry struct {
	psp.Order
	Reserved  int64 // sum of the amounts of reservations in flight (pending and uncertain)
	Pending   int   // reservations whose request is in flight
	Uncertain int   // reservations whose outcome is unknown, including those pending for longer than the lease
	Captures  int   // committed captures made through the gateway since the order was learned
}

// Available is what a new capture may still take.
func (e Entry) Available() int64 {
	a := e.Remaining() - e.Reserved
	if a < 0 {
		return 0
	}
	return a
}

// Reservation is a claim on part of an order's remaining amount. Token is the
// fencing token: only the holder of a reservation's token can commit, release
// or mark it.
type Reservation struct {
	Key    Key
	Token  string
	Amount int64
}

// Outcome says why Reserve did or did not reserve.
type Outcome uint8

const (
	Reserved        Outcome = iota // reserved; forward the capture
	Adopted                        // an uncertain reservation with the same tag was taken over (a retry of it)
	NotFound                       // the ledger does not know the order: learn it first
	NeedsReconcile                 // the order has uncertain reservations: reconcile with the PSP first
	Exceeds                        // the amount exceeds what is available
	NotCapturable                  // the order's state does not allow captures (cancelled, expired, closed, captured, pending)
	AlreadyCaptured                // single-capture order (Hellgate) already captured or with a capture in flight
)

var outcomeNames = [...]string{"reserved", "adopted", "not_found", "needs_reconcile", "exceeds", "not_capturable", "already_captured"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// ReserveRequest asks to reserve Amount of an order. Tag, when not empty,
// identifies the request across retries (a digest of the caller's idempotency
// scope and key): a retry whose earlier attempt ended uncertain adopts that
// reservation instead of reserving twice, since the PSP will itself execute the
// keyed request at most once.
type ReserveRequest struct {
	Amount int64
	Tag    string
}

// Decision is the result of Reserve: the outcome, the reservation when one
// was made or adopted, and the entry as it was when deciding (for messages).
type Decision struct {
	Outcome     Outcome
	Reservation Reservation
	Entry       Entry
}

// ErrUnavailable wraps every error of a store that cannot answer (Redis down
// or slow). The gateway then refuses with 503 and forwards nothing.
var ErrUnavailable = errors.New("ledger store unavailable")

// Store is the ledger's storage. Every method is atomic with respect to the
// others on the same key, also across processes for shared stores.
type Store interface {
	// Get returns the entry for key, or ok=false if the ledger does not hold it.
	Get(ctx context.Context, key Key) (e Entry, ok bool, err error)

	// Learn records an order the gateway saw created. It replaces the order
	// facts of an existing entry and keeps its reservations.
	Learn(ctx context.Context, key Key, order psp.Order) error

	// Reconcile replaces the order facts with the PSP's view (from an order
	// read) and drops every uncertain reservation: the PSP's captured amount
	// already includes whatever of them it applied. Pending reservations are
	// kept, but for those pending for longer than the store's lease, whose
	// gateway is presumed gone: they count as uncertain. If the entry does
	// not exist it is created.
	Reconcile(ctx context.Context, key Key, order psp.Order) error

	// Reserve checks and reserves in one atomic step.
	Reserve(ctx context.Context, key Key, req ReserveRequest) (Decision, error)

	// Commit settles a reservation as captured. Committing a token that is not
	// (or no longer) held does nothing and returns ErrNotHeld.
	Commit(ctx context.Context, res Reservation) error

	// Release drops a reservation after a definite refusal by the PSP.
	// Unknown tokens return ErrNotHeld.
	Release(ctx context.Context, res Reservation) error

	// MarkUncertain records that the reservation's outcome is unknown.
	// Unknown tokens return ErrNotHeld.
	MarkUncertain(ctx context.Context, res Reservation) error

	// SetAmount follows an accepted authorization update (new order amount).
	SetAmount(ctx context.Context, key Key, amount int64) error
	// ReleaseRemaining follows an accepted release of the remaining authorization.
	ReleaseRemaining(ctx context.Context, key Key) error
	// Cancel follows an accepted cancellation.
	Cancel(ctx context.Context, key Key) error
	// Forget drops an entry, so the next decision re-learns it from the PSP.
	Forget(ctx context.Context, key Key) error

	// Stats reports how many orders the store holds and how many reservations
	// are in flight (pending and uncertain), for gauges.
	Stats(ctx context.Context) (orders, reservations int64, err error)

	// Close releases the store's resources.
	Close() error
}

// DefaultLease is how long a reservation stays pending by default before
// it counts as uncertain (see MemoryOptions.Lease).
const DefaultLease = 2 * time.Minute

// ErrNotHeld is returned when a reservation's token is not held (any more):
// it was already settled, or dropped by a reconciliation.
var ErrNotHeld = errors.New("reservation not held")
