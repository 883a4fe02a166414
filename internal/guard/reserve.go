package guard

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/pspguard/pspguard/internal/idempotency"
	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/psp"
)

// serveCapture decides a capture against the ledger: learn the order if
// needed, reserve the amount atomically, forward, then settle the
// reservation by what the PSP answered.
func (g *Guard) serveCapture(w http.ResponseWriter, r *http.Request, next Next, x *exchange) error {
	if x.id.Merchant == "" {
		// No credentials: the PSP answers 401 itself and captures nothing.
		return g.forward(w, r, next, x, noFollow)
	}
	key := g.ledgerKey(x, x.route.OrderID)
	tag := ""
	if x.idemTok != "" || x.claimWithReserve {
		tag = tagOf(x.idemKey)
	}
	var d ledger.Decision
	for attempt := 0; ; attempt++ {
		var needsLearn bool
		var err error
		var claim *idempotency.Claim
		d, claim, needsLearn, err = g.reserve(r.Context(), key, tag, x)
		if err != nil {
			return g.storeDown(w, x, err)
		}
		if claim != nil && g.answerClaim(w, x, *claim) {
			return nil
		}
		if !needsLearn && attempt == 0 && g.mustVerify(r.Context(), x, d) {
			// The refusal would tell what the ledger knows of the order:
			// read the order from the PSP with these credentials first. A
			// wrong password gets the PSP's own 401, as it would without
			// the gateway.
			if held(d) {
				g.releaseReservation(d.Reservation)
			}
			needsLearn = true
		}
		if !needsLearn {
			break
		}
		if attempt == maxOrderReads {
			// Every read came back after another change to the order:
			// nothing the PSP said can be applied in full.
			g.unsettled(w, x)
			return nil
		}
		if done := g.learn(w, r, next, x, key); done {
			return nil
		}
		g.vouch(x)
	}
	x.currency = d.Entry.Currency

	if held(d) && currencyMismatch(x, d) {
		g.releaseReservation(d.Reservation)
		return g.refuseCapture(w, r, next, x, ReasonCurrencyMismatch,
			fmt.Sprintf("%s %s does not match the order's currency %s", g.dialect.CurrencyField(x.route.Op), x.req.Currency, d.Entry.Currency))
	}
	if !held(d) {
		reason, msg := g.captureRefusal(x, d)
		return g.refuseCapture(w, r, next, x, reason, msg)
	}

	res := d.Reservation
	return g.forward(w, r, next, x, func(x *exchange, rec *recorder, err error) {
		if g.settle(x, res, rec, err) {
			g.m.capturedAmount(d.Entry.Currency, res.Amount)
			g.afterCapture(x, key, rec)
		}
	})
}

// maxOrderReads bounds the order reads one capture makes: a read answered
// after another change to the order is applied only as far as it restricts
// the order, and is made again.
const maxOrderReads = 3

// ClaimSpan bounds how long a request holds the claim of its idempotency
// key, from the claim to its settlement, given the timeouts of its steps:
// up to maxOrderReads order reads before it is forwarded and one after it
// (shadow mode), each within lookup; the forwarded request within
// upstream; and the store calls around them, each within store. An
// idempotency store's claims must live longer, or a duplicate sent while
// the request is still running would be forwarded too.
func ClaimSpan(lookup, upstream, store time.Duration) time.Duration {
	return (maxOrderReads+1)*lookup + upstream + maxClaimedStoreCalls*store
}

// maxClaimedStoreCalls bounds the store calls of a claimed request: a
// capture or order change makes at most seven per attempt (an entry read,
// the reservation, the credentials' note read and written, a release, an
// order read's start and its reconciliation), over maxOrderReads+1
// attempts, and at most eight after them (a release, the credentials'
// note, the settlement or the stored answer, and in shadow mode an order
// read's start, its reconciliation or the order forgotten).
const maxClaimedStoreCalls = 7*(maxOrderReads+1) + 8

// held reports whether the ledger holds the capture's amount for it.
func held(d ledger.Decision) bool { return d.Outcome == ledger.Reserved || d.Outcome == ledger.Adopted }

// currencyMismatch reports whether the capture names a currency other than
// the order's.
func currencyMismatch(x *exchange, d ledger.Decision) bool {
	return x.req.Currency != "" && x.req.Currency != d.Entry.Currency
}

// mustVerify reports whether the ledger's decision d would refuse the
// capture with what the ledger knows of the order (its remaining amount,
// state or currency), while the PSP has not lately accepted the caller's
// credentials. A merchant named by its user name could otherwise be
// answered by anyone who knows that name. A merchant named by a digest of
// its secret key is not: the ledger only finds its orders with the key. In
// shadow mode the caller is answered by the PSP, not told the refusal.
func (g *Guard) mustVerify(ctx context.Context, x *exchange, d ledger.Decision) bool {
	refused := !held(d) || currencyMismatch(x, d)
	if !refused || g.shadow {
		return false
	}
	return !g.mayTell(ctx, x)
}

// mayTell reports whether a refusal may state what the ledger knows of an
// order to the caller: its credentials name the merchant by a digest of
// its secret, or the PSP accepted them lately.
func (g *Guard) mayTell(ctx context.Context, x *exchange) bool {
	if x.id.NamedBySecret() {
		return true
	}
	sctx, cancel := g.storeContext(ctx)
	defer cancel()
	ok, err := g.creds.Accepted(sctx, x.id.CredentialDigest)
	if err != nil {
		// The PSP checks them instead.
		g.logger.Warn("reading accepted credentials", zap.Error(err))
		return false
	}
	return ok
}

// reserve works out the capture amount and reserves it, claiming the
// request's idempotency key in the same store call if it is still to be
// claimed (claim is then set). needsLearn reports that the ledger must
// first learn the order from the PSP, or reconcile it.
func (g *Guard) reserve(ctx context.Context, key ledger.Key, tag string, x *exchange) (d ledger.Decision, claim *idempotency.Claim, needsLearn bool, err error) {
	amount := x.req.Amount
	if !x.req.HasAmount {
		// A capture without an amount (the PSP allows it) takes all that
		// remains authorized: the whole amount of an order not captured
		// yet, the rest of one captured in part (Stripe's multicapture).
		e, ok, err := g.getEntry(ctx, key)
		if err != nil || !ok || e.Unverified {
			return d, nil, err == nil, err
		}
		amount = e.Remaining()
	}
	x.amount = amount
	sctx, cancel := g.storeContext(ctx)
	defer cancel()
	req := ledger.ReserveRequest{Amount: amount, Tag: tag}
	if x.claimWithReserve {
		x.claimWithReserve = false
		var c idempotency.Claim
		c, d, err = g.keyed.ClaimReserve(sctx, key, req, x.idemKey, x.req.Fingerprint)
		if err != nil {
			return d, nil, false, err
		}
		if c.Outcome != idempotency.Started {
			return d, &c, false, nil
		}
		claim = &c
	} else if d, err = g.ledger.Reserve(sctx, key, req); err != nil {
		return d, nil, false, err
	}
	return d, claim, d.Outcome == ledger.NotFound || d.Outcome == ledger.NeedsReconcile, nil
}

// captureRefusal explains a refused reservation.
func (g *Guard) captureRefusal(x *exchange, d ledger.Decision) (reason, msg string) {
	field := g.dialect.AmountField(x.route)
	e := d.Entry
	switch d.Outcome {
	case ledger.Exceeds:
		x.param = field
		msg = fmt.Sprintf("%s %d exceeds the remaining authorized amount %d", field, x.amount, e.Available())
		if e.Reserved > 0 {
			msg += fmt.Sprintf(" (%d more is held by captures in flight)", e.Reserved)
		}
		return ReasonCaptureExceeds, msg
	case ledger.AlreadyCaptured:
		return ReasonAlreadyCaptured, "the payment allows one capture and it has already been captured or a capture is in progress"
	default:
		state := e.State.String()
		if e.State == psp.StateAuthorized && !e.ExpiresAt.IsZero() && !g.now().Before(e.ExpiresAt) {
			state = "expired"
		}
		return ReasonNotCapturable, fmt.Sprintf("the order cannot be captured: it is %s", state)
	}
}

// serveChange holds an order change (a new amount, a release of the
// remaining authorization, a cancellation) in the ledger, forwards it, and
// settles the hold by what the PSP answered, as a capture is settled: while
// the change is in flight, captures can take no more than its outcome
// leaves; an unknown outcome makes the next capture read the order first.
// A lowered amount below what is captured or held by captures in flight is
// refused as the PSP refuses one below the captured amount; a release or
// cancellation waits for the order's captures in flight (409).
func (g *Guard) serveChange(w http.ResponseWriter, r *http.Request, next Next, x *exchange) error {
	if x.id.Merchant == "" {
		// No credentials: the PSP answers 401 itself and changes nothing.
		return g.forward(w, r, next, x, noFollow)
	}
	c := ledger.Change{Kind: ledger.ChangeCancel}
	switch x.route.Op {
	case psp.OpUpdateAuthorization:
		c = ledger.Change{Kind: ledger.ChangeAmount, Amount: x.req.Amount}
	case psp.OpRelease:
		c.Kind = ledger.ChangeRelease
	}
	key := g.ledgerKey(x, x.route.OrderID)
	var d ledger.Decision
	for attempt := 0; ; attempt++ {
		sctx, cancel := g.storeContext(r.Context())
		var err error
		d, err = g.ledger.Hold(sctx, key, c)
		cancel()
		if err != nil {
			return g.storeDown(w, x, err)
		}
		// A new amount for an order the ledger holds no account of waits
		// for the PSP's, which says what is captured; so does a release
		// or cancel beside a capture whose outcome is unknown, as the
		// next capture would.
		read := d.Outcome == ledger.NeedsReconcile || d.Outcome == ledger.Busy && d.Entry.Uncertain > 0
		if !read {
			break
		}
		if attempt == maxOrderReads {
			if d.Outcome == ledger.Busy {
				break
			}
			g.unsettled(w, x)
			return nil
		}
		if done := g.learn(w, r, next, x, key); done {
			return nil
		}
		g.vouch(x)
	}
	switch d.Outcome {
	case ledger.Reserved:
	case ledger.Busy:
		// The PSP (Klarna) applies a release or cancel and a capture in
		// flight in either order; a capture landing second would be taken
		// from an order with nothing left to take. The client retries once
		// its capture is answered.
		if !g.shadow {
			w.Header().Set("Retry-After", "1")
		}
		return g.refuseByLedger(w, r, next, x, http.StatusConflict, psp.CodeConflict, ReasonCapturesInFlight,
			"a capture of this order is in flight; retry once it is answered")
	default:
		return g.refuseChange(w, r, next, x, d)
	}
	res := d.Reservation
	return g.forward(w, r, next, x, func(x *exchange, rec *recorder, err error) {
		g.settle(x, res, rec, err)
	})
}

func (g *Guard) releaseReservation(res ledger.Reservation) {
	ctx, cancel := g.storeContext(context.Background())
	defer cancel()
	if err := g.ledger.Release(ctx, res); err != nil {
		g.logger.Error("releasing a capture reservation", zap.Error(err))
	}
}

func (g *Guard) getEntry(ctx context.Context, key ledger.Key) (ledger.Entry, bool, error) {
	ctx, cancel := g.storeContext(ctx)
	defer cancel()
	return g.ledger.Get(ctx, key)
}
