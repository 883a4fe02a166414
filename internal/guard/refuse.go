package guard

import (
	"errors"
	"fmt"
	"net/http"

	"go.uber.org/zap"

	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/psp"
)

// refuse answers the caller in the PSP's error format; the request never
// reaches the PSP.
func (g *Guard) refuse(w http.ResponseWriter, x *exchange, status int, code, reason, msg string) {
	if x.corrID == "" {
		x.corrID = newCorrelationID()
	}
	x.status, x.reason, x.message = status, reason, msg
	if x.outcome == "" {
		// Policy refusals are "refused"; bad input, conflicts and an
		// undecidable state are "error".
		x.outcome = OutcomeError
		if status == http.StatusForbidden || status == http.StatusNotFound {
			x.outcome = OutcomeRefused
		}
	}
	g.m.refusal(reason)
	g.dialect.WriteError(w, status, g.dialect.ErrorCode(code), msg, x.param, x.corrID)
}

// refuseErr refuses with a *psp.Error from classification or parsing.
func (g *Guard) refuseErr(w http.ResponseWriter, x *exchange, err error) {
	var pe *psp.Error
	if !errors.As(err, &pe) {
		pe = psp.BadValue("", "%v", err)
	}
	reason := ReasonBadValue
	switch pe.Code {
	case psp.CodeRequestTooLarge:
		reason = ReasonRequestTooLarge
	case psp.CodeUnsupportedMediaType:
		reason = ReasonUnsupportedMediaType
	}
	g.refuse(w, x, pe.Status, pe.Code, reason, pe.Message)
	// The caller may read its own words back; the log keeps only ours.
	x.message = pe.LogMessage()
}

// unavailable refuses because the gateway cannot decide safely.
func (g *Guard) unavailable(w http.ResponseWriter, x *exchange, msg string) {
	w.Header().Set("Retry-After", "1")
	g.refuse(w, x, http.StatusServiceUnavailable, psp.CodeTemporarilyUnavail, ReasonUnavailable, msg)
}

// unsettled refuses because every order read came back after another
// change to the order: nothing the PSP said could be applied in full.
func (g *Guard) unsettled(w http.ResponseWriter, x *exchange) {
	w.Header().Set("Retry-After", "1")
	g.refuse(w, x, http.StatusServiceUnavailable, psp.CodeTemporarilyUnavail, ReasonOrderUnsettled,
		"the order's state could not be settled with the PSP; nothing was sent")
}

// storeDown refuses because the shared store did not answer.
func (g *Guard) storeDown(w http.ResponseWriter, x *exchange, err error) error {
	g.logger.Error("ledger store unavailable", zap.Error(err))
	g.unavailable(w, x, "the gateway cannot reach its ledger; nothing was sent to the PSP")
	return nil
}

// refuseCapture refuses a capture by policy, or in shadow mode lets it
// through unreserved; the ledger then follows what the PSP did.
func (g *Guard) refuseCapture(w http.ResponseWriter, r *http.Request, next Next, x *exchange, reason, msg string) error {
	return g.refuseByLedger(w, r, next, x, http.StatusForbidden, psp.CodeCaptureNotAllowed, reason, msg)
}

// refuseChange refuses a lowered amount below what is captured or held, or
// in shadow mode lets it through unheld and reads the order after it. The
// amounts are told only to credentials the PSP accepted lately.
func (g *Guard) refuseChange(w http.ResponseWriter, r *http.Request, next Next, x *exchange, d ledger.Decision) error {
	field := g.dialect.AmountField(x.route)
	msg := field + " is below what the order has captured or holds for captures in flight"
	if g.mayTell(r.Context(), x) {
		msg = fmt.Sprintf("%s %d is below the captured amount %d", field, x.req.Amount, d.Entry.Captured)
		if d.Entry.Reserved > 0 {
			msg += fmt.Sprintf(" and the %d held by captures in flight", d.Entry.Reserved)
		}
	}
	return g.refuseByLedger(w, r, next, x, http.StatusForbidden, psp.CodeNotAllowed, ReasonAmountBelowCaptured, msg)
}

// refuseByLedger refuses a capture or an order change the ledger does not
// allow with status and code, or in shadow mode forwards it unheld and
// reads the order after it.
func (g *Guard) refuseByLedger(w http.ResponseWriter, r *http.Request, next Next, x *exchange, status int, code, reason, msg string) error {
	if !g.shadow {
		g.refuse(w, x, status, code, reason, msg)
		return nil
	}
	x.outcome, x.reason, x.message = OutcomeShadowRefused, reason, msg
	g.m.refusal(reason)
	return g.forward(w, r, next, x, func(x *exchange, rec *recorder, err error) {
		g.followShadow(r, next, x, rec.status, err)
	})
}
