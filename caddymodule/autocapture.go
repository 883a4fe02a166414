package caddymodule

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/psp"
	"github.com/pspguard/pspguard/rules"
)

// checkAutoCapture applies the compliance rules to a request that may ask
// for capture at purchase (every route of psp.Operation.AsksCapture), where
// the dialect's requests say whether they do.
// It answers 403 AUTO_CAPTURE_NOT_ALLOWED and returns true when the rules
// refuse in enforce mode; in shadow mode a would-be refusal is logged and
// counted and the request goes through.
func (h *Handler) checkAutoCapture(w http.ResponseWriter, x *exchange) bool {
	if !h.dialect.RulesDecideAutoCapture() {
		// The PSP decides it by the merchant's configuration, not per request.
		return false
	}
	req := x.req
	d := h.rules.Load().Decide(rules.Order{
		User:          x.id.User,
		Merchant:      x.id.Merchant,
		AutoCapture:   rulesAutoCapture(req.AutoCapture),
		PhysicalLines: req.PhysicalLines,
		LinesUnknown:  req.LinesUnknown,
		EMDKeys:       req.EMD.Keys,
	}, h.now())
	x.ruled, x.ruleReason, x.approval = true, string(d.Reason), d.Approval
	notePurchase(x)
	if d.Allowed {
		x.reason = string(d.Reason)
		return false
	}
	if h.shadow {
		x.outcome, x.reason, x.message = outcomeShadowRefused, string(d.Reason), d.Message()
		h.m.refusal(string(d.Reason))
		return false
	}
	h.refuse(w, x, http.StatusForbidden, psp.CodeAutoCaptureNotAllowed, string(d.Reason), d.Message())
	return true
}

// notePurchase keeps, for the decision log, a reference that ties the line
// to the purchase without naming anyone: the first 8 bytes of the SHA-256
// of the path's authorization token, or, on a route without one, of the
// body as sent. It is taken now because the body's buffer is reused once
// the request is done.
func notePurchase(x *exchange) {
	var sum [32]byte
	if x.route.Token != "" {
		sum = sha256.Sum256([]byte(x.route.Token))
		x.refOfToken = true
	} else {
		sum = sha256.Sum256(x.body)
	}
	copy(x.purchaseRef[:], sum[:])
}

func rulesAutoCapture(a psp.AutoCapture) rules.AutoCapture {
	switch a {
	case psp.AutoCaptureTrue:
		return rules.AutoCaptureTrue
	case psp.AutoCaptureFalse:
		return rules.AutoCaptureFalse
	}
	return rules.AutoCaptureAbsent
}

// afterCreate learns a new order from the PSP's answer to a create-order.
// An auto-captured order is learned fully captured. The answer to a request
// sent with an idempotency key may be the PSP's replay of the answer to
// another request with the same key (Klarna replays it without comparing
// bodies): that order is learned unverified, and read from the PSP before
// its first capture.
func (h *Handler) afterCreate(x *exchange, rec caddyhttp.ResponseRecorder, buf *bytes.Buffer, err error) {
	if err != nil || rec.Status() < 200 || rec.Status() > 299 || !rec.Buffered() {
		return
	}
	orderID, order, ok := h.dialect.CreatedOrder(x.req, rec.Status(), rec.Header(), buf.Bytes())
	if !ok {
		return
	}
	x.route.OrderID = orderID
	// The answer to a keyed request may be a replay of an earlier
	// request's, so it would only make the order known unverified: read
	// from the PSP before its first capture, as an order the ledger does not
	// hold is. The ledger learns only what belongs to the request, and a
	// keyed create-order costs the store its claim and its result alone.
	if x.r.Header.Get(h.dialect.IdempotencyHeader()) == "" {
		ctx, cancel := h.storeContext(context.Background())
		defer cancel()
		if err := h.ledger.Learn(ctx, h.ledgerKey(x, orderID), order, true); err != nil {
			// Not fatal: the order is re-learned from the PSP before its first capture.
			h.forwardStoreDown(x, err)
		}
	}
	if order.Captured > 0 {
		h.m.capturedAmount(order.Currency, order.Captured)
	}
}

// serveChange holds an order change (a new amount, a release of the
// remaining authorization, a cancellation) in the ledger, forwards it, and
// settles the hold by what the PSP answered, as a capture is settled: while
// the change is in flight, captures can take no more than its outcome
// leaves; an unknown outcome makes the next capture read the order first.
// A lowered amount below what is captured or held by captures in flight is
// refused like Klarna refuses one below the captured amount; a release or
// cancellation waits for the order's captures in flight (409).
func (h *Handler) serveChange(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, x *exchange) error {
	if x.id.Merchant == "" {
		// No credentials: the PSP answers 401 itself and changes nothing.
		return h.forward(w, r, next, x, func(*exchange, caddyhttp.ResponseRecorder, *bytes.Buffer, error) {})
	}
	c := ledger.Change{Kind: ledger.ChangeCancel}
	switch x.route.Op {
	case psp.OpUpdateAuthorization:
		c = ledger.Change{Kind: ledger.ChangeAmount, Amount: x.req.Amount}
	case psp.OpRelease:
		c.Kind = ledger.ChangeRelease
	}
	key := h.ledgerKey(x, x.route.OrderID)
	var d ledger.Decision
	for attempt := 0; ; attempt++ {
		sctx, cancel := h.storeContext(r.Context())
		var err error
		d, err = h.ledger.Hold(sctx, key, c)
		cancel()
		if err != nil {
			return h.storeDown(w, x, err)
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
			h.unsettled(w, x)
			return nil
		}
		if done := h.learn(w, r, next, x, key); done {
			return nil
		}
		h.vouch(x)
	}
	switch d.Outcome {
	case ledger.Reserved:
	case ledger.Busy:
		// Klarna applies a release or cancel and a capture in flight in
		// either order; a capture landing second would be taken from an
		// order with nothing left to take. The client retries once its
		// capture is answered.
		if !h.shadow {
			w.Header().Set("Retry-After", "1")
		}
		return h.refuseByLedger(w, r, next, x, http.StatusConflict, psp.CodeConflict, reasonCapturesInFlight,
			"a capture of this order is in flight; retry once it is answered")
	default:
		return h.refuseChange(w, r, next, x, d)
	}
	res := d.Reservation
	return h.forward(w, r, next, x, func(x *exchange, rec caddyhttp.ResponseRecorder, buf *bytes.Buffer, err error) {
		h.settle(x, res, rec, buf, err)
	})
}

// refuseChange refuses a lowered amount below what is captured or held, or
// in shadow mode lets it through unheld and reads the order after it. The
// amounts are told only to credentials the PSP accepted lately.
func (h *Handler) refuseChange(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, x *exchange, d ledger.Decision) error {
	field := h.dialect.AmountField(x.route.Op)
	msg := field + " is below what the order has captured or holds for captures in flight"
	if h.mayTell(r.Context(), x) {
		msg = fmt.Sprintf("%s %d is below the captured amount %d", field, x.req.Amount, d.Entry.Captured)
		if d.Entry.Reserved > 0 {
			msg += fmt.Sprintf(" and the %d held by captures in flight", d.Entry.Reserved)
		}
	}
	return h.refuseByLedger(w, r, next, x, http.StatusForbidden, psp.CodeNotAllowed, reasonAmountBelowCaptured, msg)
}

// serveRead passes an order read through and applies the PSP's answer to
// the ledger: in full if nothing changed the order since the read began,
// otherwise as far as it restricts the order.
func (h *Handler) serveRead(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, x *exchange) error {
	if x.id.Merchant == "" {
		// No credentials: the PSP answers 401 itself.
		return h.forward(w, r, next, x, func(*exchange, caddyhttp.ResponseRecorder, *bytes.Buffer, error) {})
	}
	key := h.ledgerKey(x, x.route.OrderID)
	tok, terr := h.beginRead(r.Context(), key)
	if terr != nil {
		// The read still goes through; the ledger does not learn from it.
		h.logger.Warn("beginning an order read", zap.Error(terr))
	}
	return h.forward(w, r, next, x, func(x *exchange, rec caddyhttp.ResponseRecorder, buf *bytes.Buffer, err error) {
		if terr != nil || err != nil || rec.Status() != http.StatusOK || !rec.Buffered() {
			return
		}
		order, perr := h.dialect.ParseOrder(buf.Bytes(), h.now())
		if perr != nil {
			return
		}
		ctx, cancel := h.storeContext(context.Background())
		defer cancel()
		if _, err := h.ledger.Reconcile(ctx, key, order, tok); err != nil {
			h.logger.Warn("reconciling the ledger with an order read", zap.Error(err))
		}
	})
}

func (h *Handler) ledgerKey(x *exchange, orderID string) ledger.Key {
	return ledger.Key{PSP: h.dialect.Name(), Merchant: x.id.Merchant, OrderID: orderID}
}

// storeContext bounds one store operation. It is detached from the
// caller: a store change the gateway started is finished even if the caller
// hangs up. The memory stores never block and ignore the context, so they
// get no deadline: a timer per call is measurable work on every request.
func (h *Handler) storeContext(parent context.Context) (context.Context, context.CancelFunc) {
	if h.Store.Type == "memory" {
		return context.Background(), noCancel
	}
	return context.WithTimeout(context.WithoutCancel(parent), time.Duration(h.Store.Timeout))
}

func noCancel() {}
