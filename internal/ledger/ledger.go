// Package ledger keeps every order's authorized, captured and released
// amounts and the captures and order changes in flight, so that no capture
// can take more than remains — under concurrency, retries, lost responses,
// replayed answers and several gateway instances sharing one store.
//
// One rule governs every change to an order's entry: any evidence may make
// the ledger more restrictive; only the PSP's own account of the order,
// read after every change the ledger knows of, may make it more permissive
// (raise the amount or what remains, verify an order, clear an uncertain
// reservation). It is enforced by an order version that every change bumps:
//
//   - A read of the order from the PSP is begun (BeginRead) before it is
//     sent and applied (Reconcile) with the version it began at. If nothing
//     changed since, the PSP's account replaces the ledger's and drops the
//     reservations that were uncertain when the read began. Otherwise the
//     read may be older than a change it does not show: only its
//     restrictive meet with the ledger is applied (the lower amount, the
//     higher released amount, a captured amount beyond the captures in
//     flight, the more final state, the earlier expiry), and the caller
//     reads again if the order still needs a read.
//   - An order learned from a create-order answer that is not known to
//     belong to the request (an answer to a keyed request may be a replay
//     of another's) is unverified: Reserve asks for a read before the first
//     capture. Learning never raises an order the ledger holds.
//   - A capture is decided in one atomic step (Reserve), then settled by
//     what the PSP answered: Commit on success, Release on a definite
//     refusal, MarkUncertain when the outcome is unknown (timeout, lost
//     connection, 5xx). An order with an uncertain reservation must be
//     reconciled with the PSP before the next decision on it; a
//     reservation is never released on a guess.
//   - An order change (a lowered amount, a release of the remaining
//     authorization, a cancellation) is held like a capture (Hold): while it
//     is in flight the order is bounded by its outcome, and it is settled the
//     same three ways. A request to raise the amount never raises the
//     ledger: once the PSP accepted it, the order is unverified. A release
//     or cancellation waits for the captures held on the order (Busy): the
//     PSP may apply the two in either order.
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

	// Changes is the number of order changes in flight (Hold), counted in
	// Pending and Uncertain too; while there are any, Limit bounds the
	// order's amount by their outcome. Both are zero otherwise.
	Changes int
	Limit   int64

	// Unverified says that the ledger holds no account of the order it may
	// decide on: Reserve answers NeedsReconcile until an order read is
	// applied (Reconcile).
	Unverified bool
}

// Available is what a new capture may still take.
func (e Entry) Available() int64 {
	o := e.Order
	if e.Changes > 0 && e.Limit < o.Amount {
		o.Amount = e.Limit
	}
	a := o.Remaining() - e.Reserved
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

	change bool // an order change (Hold), not a capture
}

// Change is an order change the gateway forwards: the outcomes it may have
// bound the order while it is in flight.
type Change struct {
	Kind   ChangeKind
	Amount int64 // the new order amount, for ChangeAmount
}

// ChangeKind is what an order change does.
type ChangeKind uint8

const (
	ChangeAmount  ChangeKind = iota + 1 // update the authorized amount (Klarna: PATCH authorization)
	ChangeRelease                       // release the remaining authorization
	ChangeCancel                        // cancel the order
)

// ReadToken marks the start of an order read: the order's version then,
// and the time. See BeginRead.
type ReadToken struct {
	inc   string // Redis: the order hash's incarnation
	ver   uint64
	at    int64 // unixNano
	fence int64 // Redis: milliseconds left of the failover fence when the read began
}

// Fence is how long the store's failover fence still lasts (zero for the
// memory store, and for a shared store no failover touched lately): a read
// begun now can verify nothing, since captures a failover lost may not
// have reached the PSP yet. The caller answers "retry after" instead of
// reading.
func (t ReadToken) Fence() time.Duration { return time.Duration(t.fence) * time.Millisecond }

// Outcome says why Reserve did or did not reserve.
type Outcome uint8

const (
	Reserved        Outcome = iota // reserved; forward the capture
	Adopted                        // an uncertain reservation with the same tag was taken over (a retry of it)
	NotFound                       // the ledger does not know the order: learn it first
	NeedsReconcile                 // the order has uncertain reservations or is unverified: reconcile with the PSP first
	Exceeds                        // the amount exceeds what is available (Hold: the new amount is below what is captured or held)
	NotCapturable                  // the order's state does not allow captures (cancelled, expired, closed, captured, pending)
	AlreadyCaptured                // single-capture order (Hellgate) already captured or with a capture in flight
	Busy                           // Hold: a release or cancellation while captures are held (in flight or uncertain)
)

var outcomeNames = [...]string{"reserved", "adopted", "not_found", "needs_reconcile", "exceeds", "not_capturable", "already_captured", "busy"}

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

// Decision is the result of Reserve or Hold: the outcome, the reservation
// when one was made or adopted, and the entry as it was when deciding (for
// messages).
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

	// Learn records an order the gateway saw created. verified says that
	// the answer belongs to the request that created it (a request without
	// an idempotency key); otherwise the order is learned unverified. An
	// order the ledger holds already is only ever restricted by it (the
	// meet, as in a stale Reconcile).
	Learn(ctx context.Context, key Key, order psp.Order, verified bool) error

	// BeginRead marks the start of an order read, before it is sent. If the
	// ledger does not hold the order, it holds it unverified from now on,
	// so that a change made before the read is answered is seen.
	BeginRead(ctx context.Context, key Key) (ReadToken, error)

	// Reconcile applies the PSP's view of the order from a read begun with
	// tok. If the order has not changed since (fresh), the view replaces the
	// order facts, verifies the order and drops every reservation that was
	// uncertain, or pending past the lease, when the read began: the PSP's
	// view includes whatever of them it applied. Otherwise only the meet of
	// the view and the ledger is applied (a currency disagreement makes the
	// order unverified), and fresh is false.
	Reconcile(ctx context.Context, key Key, order psp.Order, tok ReadToken) (fresh bool, err error)

	// Reserve checks and reserves in one atomic step.
	Reserve(ctx context.Context, key Key, req ReserveRequest) (Decision, error)

	// Commit settles a reservation as captured, or a held order change as
	// applied (a raised amount makes the order unverified). Committing a
	// token that is not (or no longer) held does nothing and returns
	// ErrNotHeld.
	Commit(ctx context.Context, res Reservation) error

	// Release drops a reservation after a definite refusal by the PSP.
	// Unknown tokens return ErrNotHeld.
	Release(ctx context.Context, res Reservation) error

	// MarkUncertain records that the reservation's outcome is unknown.
	// Unknown tokens return ErrNotHeld.
	MarkUncertain(ctx context.Context, res Reservation) error

	// Hold holds an order change before it is forwarded, bounding the
	// order by its outcome until it is settled with Commit (the PSP
	// applied it), Release (a definite refusal) or MarkUncertain. A lowered
	// amount below what is captured or held is refused (Exceeds), and so is
	// a release or cancellation while captures are held (Busy). A new
	// amount for an order the ledger does not hold, or holds unverified,
	// waits for a read of the order (NeedsReconcile); a release or
	// cancellation of one is held, and the order held unverified with it.
	Hold(ctx context.Context, key Key, c Change) (Decision, error)

	// Forget drops an entry, so the next decision re-learns it from the PSP.
	Forget(ctx context.Context, key Key) error

	// Stats reports how many orders the store holds and how many reservations
	// are in flight (pending and uncertain), for gauges. A store whose
	// orders no key counts (Redis) reports -1 orders; a store shared by
	// several processes reports the reservations this process made.
	Stats(ctx context.Context) (orders, reservations int64, err error)

	// Close releases the store's resources.
	Close() error
}

// ErrNotHeld is returned when a reservation's token is not held (any more):
// it was already settled, or dropped by a reconciliation.
var ErrNotHeld = errors.New("reservation not held")
