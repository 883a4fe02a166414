package caddymodule

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/pspguard/pspguard/internal/idempotency"
	"github.com/pspguard/pspguard/internal/psp"
)

// claimKey claims the request's idempotency key, if it has one. It answers
// the caller itself (replay, 409, 422, 503, 400) and returns true when the
// request must not go further.
func (h *Handler) claimKey(w http.ResponseWriter, r *http.Request, x *exchange) bool {
	key := r.Header.Get(h.dialect.IdempotencyHeader())
	if key == "" {
		h.m.idem(idemNoKey)
		if h.Idempotency.RequireKey {
			h.refuse(w, x, http.StatusBadRequest, psp.CodeBadValue, reasonIdempotencyKeyRequired,
				h.dialect.IdempotencyHeader()+" is required")
			return true
		}
		return false
	}
	x.idemKey = idempotency.Key{Scope: scopeOf(x.id, r, x.route), ID: key}
	if x.route.OrderID != "" {
		// On the order's slot, so that a keyed capture's claim and
		// reservation can be one script.
		x.idemKey.Slot = h.ledgerKey(x, x.route.OrderID).Slot()
	}
	if x.route.Op == psp.OpCapture && x.req.HasAmount && x.id.Merchant != "" {
		// Claimed with the reservation, in one store call (serveCapture).
		x.claimWithReserve = true
		return false
	}
	ctx, cancel := h.storeContext(r.Context())
	defer cancel()
	claim, err := h.idem.Begin(ctx, x.idemKey, x.req.Fingerprint)
	if err != nil && x.route.Op.AsksCapture() {
		// Forwarded without the result cache; the key still goes to the
		// PSP, which handles a repeated key itself.
		h.forwardStoreDown(x, err)
		return false
	}
	if err != nil {
		h.logger.Error("idempotency store unavailable", zap.Error(err))
		h.unavailable(w, x, "the idempotency store is unavailable; retry with the same key")
		return true
	}
	return h.answerClaim(w, x, claim)
}

// answerClaim takes the claim of the request's key, or answers the caller
// itself (replay, 409, 422) and returns true.
func (h *Handler) answerClaim(w http.ResponseWriter, x *exchange, claim idempotency.Claim) bool {
	x.idemOut = claim.Outcome.String()
	switch claim.Outcome {
	case idempotency.Started:
		x.idemTok = claim.Token
		return false
	case idempotency.Replay:
		h.m.idem(idemReplayed)
		hdr := w.Header()
		for k, v := range claim.Result.Header {
			hdr[k] = v
		}
		hdr.Set("Idempotent-Replayed", "true")
		hdr.Set("Content-Length", strconv.Itoa(len(claim.Result.Body)))
		w.WriteHeader(claim.Result.Status)
		_, _ = w.Write(claim.Result.Body)
		x.status, x.outcome = claim.Result.Status, outcomeReplayed
		h.m.decision(x.route.Op, outcomeReplayed)
		return true
	case idempotency.InFlight:
		h.m.idem(idemInFlight)
		w.Header().Set("Retry-After", "1")
		h.refuse(w, x, http.StatusConflict, psp.CodeIdempotencyKeyInUse, reasonIdempotencyInUse,
			"a request with this idempotency key is still being processed; retry later")
		return true
	default:
		h.m.idem(idemMismatch)
		h.refuse(w, x, http.StatusUnprocessableEntity, psp.CodeIdempotencyKeyReused, reasonIdempotencyReused,
			"this idempotency key was used with a different request")
		return true
	}
}

// storeKey keeps the PSP's complete answer (2xx or 4xx) for replay. 5xx
// answers are not stored, so a retry runs again.
func (h *Handler) storeKey(x *exchange, rec caddyhttp.ResponseRecorder, buf *bytes.Buffer) {
	if x.idemTok == "" {
		return
	}
	res := resultOf(rec, buf, h.dialect.ReplayHeaders())
	if res == nil {
		return
	}
	ctx, cancel := h.storeContext(context.Background())
	defer cancel()
	h.finishedKey(x, res, h.idem.Complete(ctx, x.idemKey, x.idemTok, *res))
}

// resultOf is the PSP's answer to keep for replay, with the headers the
// dialect says a replay carries (no other: Set-Cookie above all is never
// stored), or nil for one that is not kept: a 5xx, or an answer not
// buffered. The stores encode the result
// before they return, so it can share the recorder's header values and
// buffer.
func resultOf(rec caddyhttp.ResponseRecorder, buf *bytes.Buffer, replayHeaders []string) *idempotency.Result {
	if !rec.Buffered() || rec.Status() >= 500 {
		return nil
	}
	hdr := make(http.Header, 4)
	src := rec.Header()
	for _, k := range replayHeaders {
		if v := src.Values(k); len(v) > 0 {
			hdr[k] = v
		}
	}
	return &idempotency.Result{Status: rec.Status(), Header: hdr, Body: buf.Bytes()}
}

// finishedKey records what became of the claim of x: its result stored
// (res, err nil), abandoned (res nil), or left to expire (err).
func (h *Handler) finishedKey(x *exchange, res *idempotency.Result, err error) {
	switch {
	case err != nil && res != nil:
		h.logger.Error("storing idempotency result", zap.Error(err))
		return
	case err != nil && !errors.Is(err, idempotency.ErrNotHeld):
		h.logger.Error("abandoning idempotency claim", zap.Error(err))
	}
	x.idemTok = ""
	x.idemOut = idemStored
	if res == nil {
		x.idemOut = idemAbandoned
	}
	h.m.idem(x.idemOut)
}

// settleKey abandons a claim that was not completed: the gateway refused,
// the PSP failed, or the answer was lost. A retry then runs again.
func (h *Handler) settleKey(x *exchange) {
	if x.idemTok == "" {
		return
	}
	ctx, cancel := h.storeContext(context.Background())
	defer cancel()
	h.finishedKey(x, nil, h.idem.Abandon(ctx, x.idemKey, x.idemTok))
}
