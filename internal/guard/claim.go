package guard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/pspguard/pspguard/internal/idempotency"
	"github.com/pspguard/pspguard/internal/psp"
)

// claimKey claims the request's idempotency key, if it has one. It answers
// the caller itself (replay, 409, 422, 503, 400) and returns true when the
// request must not go further.
func (g *Guard) claimKey(w http.ResponseWriter, r *http.Request, x *exchange) bool {
	key := x.idemID
	if key == "" {
		g.m.idem(IdemNoKey)
		if g.requireKey {
			g.refuse(w, x, http.StatusBadRequest, psp.CodeBadValue, ReasonIdempotencyKeyRequired,
				g.dialect.IdempotencyHeader()+" is required")
			return true
		}
		return false
	}
	x.idemKey = idempotency.Key{Scope: scopeOf(x.id, r, x.route), ID: key}
	if x.route.OrderID != "" {
		// On the order's slot, so that a keyed capture's claim and
		// reservation can be one script.
		x.idemKey.Slot = g.ledgerKey(x, x.route.OrderID).Slot()
	}
	if x.route.Op == psp.OpCapture && x.req.HasAmount && x.id.Merchant != "" {
		// Claimed with the reservation, in one store call (serveCapture).
		x.claimWithReserve = true
		return false
	}
	ctx, cancel := g.storeContext(r.Context())
	defer cancel()
	claim, err := g.idem.Begin(ctx, x.idemKey, x.req.Fingerprint)
	if err != nil && x.route.Op.AsksCapture() {
		// Forwarded without the result cache; the key still goes to the
		// PSP, which handles a repeated key itself.
		g.forwardStoreDown(x, err)
		return false
	}
	if err != nil {
		g.logger.Error("idempotency store unavailable", zap.Error(err))
		g.unavailable(w, x, "the idempotency store is unavailable; retry with the same key")
		return true
	}
	return g.answerClaim(w, x, claim)
}

// answerClaim takes the claim of the request's key, or answers the caller
// itself (replay, 409, 422) and returns true.
func (g *Guard) answerClaim(w http.ResponseWriter, x *exchange, claim idempotency.Claim) bool {
	x.idemOut = claim.Outcome.String()
	switch claim.Outcome {
	case idempotency.Started:
		x.idemTok = claim.Token
		return false
	case idempotency.Replay:
		g.m.idem(IdemReplayed)
		hdr := w.Header()
		for k, v := range claim.Result.Header {
			hdr[k] = v
		}
		hdr.Set("Idempotent-Replayed", "true")
		hdr.Set("Content-Length", strconv.Itoa(len(claim.Result.Body)))
		w.WriteHeader(claim.Result.Status)
		_, _ = w.Write(claim.Result.Body)
		x.status, x.outcome = claim.Result.Status, OutcomeReplayed
		return true
	case idempotency.InFlight:
		g.m.idem(IdemInFlight)
		w.Header().Set("Retry-After", "1")
		g.refuse(w, x, http.StatusConflict, psp.CodeIdempotencyKeyInUse, ReasonIdempotencyInUse,
			"a request with this idempotency key is still being processed; retry later")
		return true
	default:
		g.m.idem(IdemMismatch)
		g.refuse(w, x, http.StatusUnprocessableEntity, psp.CodeIdempotencyKeyReused, ReasonIdempotencyReused,
			"this idempotency key was used with a different request")
		return true
	}
}

// storeKey keeps the PSP's complete answer (2xx, or a 4xx refusal) for
// replay. Other answers (a 5xx, a redirect, a "retry later") are not
// stored, so a retry runs again.
func (g *Guard) storeKey(x *exchange, rec *recorder) {
	if x.idemTok == "" {
		return
	}
	res := g.resultOf(rec)
	if res == nil {
		return
	}
	ctx, cancel := g.storeContext(context.Background())
	defer cancel()
	g.finishedKey(x, res, g.idem.Complete(ctx, x.idemKey, x.idemTok, *res))
}

// resultOf is the PSP's answer to keep for replay, with the headers the
// dialect says a replay carries (no other: Set-Cookie above all is never
// stored), or nil for an answer that is not kept: anything but a 2xx or a
// 4xx refusal (retryLater). The stores encode the result before they
// return, so it can share the recorder's header values and buffer.
func (g *Guard) resultOf(rec *recorder) *idempotency.Result {
	if rec.status < 200 || rec.status >= 300 && rec.status < 400 || rec.status >= 500 || retryLater(rec.status) {
		return nil
	}
	hdr := make(http.Header, 4)
	src := rec.Header()
	for _, k := range g.dialect.ReplayHeaders() {
		if v := src.Values(k); len(v) > 0 {
			hdr[k] = v
		}
	}
	return &idempotency.Result{Status: rec.status, Header: hdr, Body: rec.buf.Bytes()}
}

// finishedKey records what became of the claim of x: its result stored
// (res, err nil), abandoned (res nil), or left to expire (err).
func (g *Guard) finishedKey(x *exchange, res *idempotency.Result, err error) {
	switch {
	case err != nil && res != nil:
		g.logger.Error("storing idempotency result", zap.Error(err))
		return
	case err != nil && !errors.Is(err, idempotency.ErrNotHeld):
		g.logger.Error("abandoning idempotency claim", zap.Error(err))
	}
	x.idemTok = ""
	x.idemOut = IdemStored
	if res == nil {
		x.idemOut = IdemAbandoned
	}
	g.m.idem(x.idemOut)
}

// settleKey abandons a claim that was not completed: the gateway refused,
// the PSP failed, or the answer was lost. A retry then runs again.
func (g *Guard) settleKey(x *exchange) {
	if x.idemTok == "" {
		return
	}
	ctx, cancel := g.storeContext(context.Background())
	defer cancel()
	g.finishedKey(x, nil, g.idem.Abandon(ctx, x.idemKey, x.idemTok))
}

// scopeOf is the idempotency scope: the caller's full credentials, the
// method and the canonical path.
func scopeOf(id psp.Identity, r *http.Request, route psp.Route) [32]byte {
	var buf [256]byte // keeps a typical scope off the heap
	b := append(buf[:0], id.CredentialDigest[:]...)
	b = append(append(append(b, 0), r.Method...), 0)
	return sha256.Sum256(append(b, canonicalPath(r.URL.EscapedPath(), route.OrderID)...))
}

// canonicalPath is path with its order id spelled as classification keyed
// it (a UUID in lower case): the PSP reads every spelling as the same
// order, so they must share one idempotency scope. A guarded path is
// otherwise canonical already, so only the id's letter case can differ.
func canonicalPath(path, orderID string) string {
	if orderID == "" {
		return path
	}
	start := 0
	for i := 0; i <= len(path); i++ {
		if i < len(path) && path[i] != '/' {
			continue
		}
		if seg := path[start:i]; seg != orderID && strings.EqualFold(seg, orderID) {
			return path[:start] + orderID + path[i:] // a guarded path has one id segment
		}
		start = i + 1
	}
	return path
}

// tagOf identifies a keyed request across retries, for the ledger.
func tagOf(k idempotency.Key) string {
	var buf [128]byte
	s := sha256.Sum256(append(append(buf[:0], k.Scope[:]...), k.ID...))
	return hex.EncodeToString(s[:16])
}
