package caddymodule

import (
	"bytes"
	"context"
	"crypto/sha256"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/psp"
	"github.com/pspguard/pspguard/rules"
)

// checkAutoCapture applies the compliance rules to a Klarna create-order. It
// answers 403 AUTO_CAPTURE_NOT_ALLOWED and returns true when the rules refuse
// in enforce mode; in shadow mode a would-be refusal is logged and counted
// and the order goes through.
func (h *Handler) checkAutoCapture(w http.ResponseWriter, x *exchange) bool {
	if h.dialect.Name() != "klarna" {
		// Hellgate decides auto-capture by the processing flow, not per request.
		return false
	}
	req := x.req
	d := h.rules.Load().Decide(rules.Order{
		Merchant:      x.id.Merchant,
		AutoCapture:   rulesAutoCapture(req.AutoCapture),
		PhysicalLines: req.PhysicalLines,
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
// An auto-captured order is learned fully captured.
func (h *Handler) afterCreate(x *exchange, rec caddyhttp.ResponseRecorder, buf *bytes.Buffer, err error) {
	if err != nil || rec.Status() < 200 || rec.Status() > 299 || !rec.Buffered() {
		return
	}
	orderID, order, ok := h.dialect.CreatedOrder(x.req, rec.Status(), rec.Header(), buf.Bytes())
	if !ok {
		return
	}
	x.route.OrderID = orderID
	ctx, cancel := h.storeContext(context.Background())
	defer cancel()
	if err := h.ledger.Learn(ctx, h.ledgerKey(x, orderID), order); err != nil {
		// Not fatal: the order is re-learned from the PSP before its first capture.
		h.logger.Warn("learning a created order", zap.Error(err))
	}
	if order.Captured > 0 {
		h.m.capturedAmount(order.Currency, order.Captured)
	}
}

// afterOrderChange makes the ledger follow what the PSP accepted.
func (h *Handler) afterOrderChange(x *exchange, rec caddyhttp.ResponseRecorder, _ *bytes.Buffer, err error) {
	if err != nil || rec.Status() < 200 || rec.Status() > 299 {
		return
	}
	key := h.ledgerKey(x, x.route.OrderID)
	ctx, cancel := h.storeContext(context.Background())
	defer cancel()
	switch x.route.Op {
	case psp.OpUpdateAuthorization:
		err = h.ledger.SetAmount(ctx, key, x.req.Amount)
	case psp.OpRelease:
		err = h.ledger.ReleaseRemaining(ctx, key)
	case psp.OpCancel:
		err = h.ledger.Cancel(ctx, key)
	}
	if err != nil {
		// The PSP changed the order but the ledger could not follow: drop
		// the ledger's view so the next decision re-learns it.
		h.logger.Error("updating the ledger after "+x.route.Op.String(), zap.Error(err))
		_ = h.ledger.Forget(ctx, key)
	}
}

// serveRead passes an order read through and reconciles the ledger with
// the PSP's answer.
func (h *Handler) serveRead(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, x *exchange) error {
	return h.forward(w, r, next, x, func(x *exchange, rec caddyhttp.ResponseRecorder, buf *bytes.Buffer, err error) {
		if err != nil || rec.Status() != http.StatusOK || !rec.Buffered() {
			return
		}
		order, perr := h.dialect.ParseOrder(buf.Bytes(), h.now())
		if perr != nil {
			return
		}
		ctx, cancel := h.storeContext(context.Background())
		defer cancel()
		if err := h.ledger.Reconcile(ctx, h.ledgerKey(x, x.route.OrderID), order); err != nil {
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
