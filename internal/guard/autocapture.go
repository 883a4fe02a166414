package guard

import (
	"crypto/sha256"
	"net/http"

	"github.com/pspguard/pspguard/internal/psp"
	"github.com/pspguard/pspguard/rules"
)

// checkAutoCapture applies the compliance rules to a request that may ask
// for capture at purchase (every route of psp.Operation.AsksCapture), where
// the dialect's requests say whether they do.
// It answers 403 AUTO_CAPTURE_NOT_ALLOWED and returns true when the rules
// refuse in enforce mode; in shadow mode a would-be refusal is logged and
// counted and the request goes through.
func (g *Guard) checkAutoCapture(w http.ResponseWriter, x *exchange) bool {
	if !g.dialect.RulesDecideAutoCapture() {
		// The PSP decides it by the merchant's configuration, not per request.
		return false
	}
	req := x.req
	d := g.rules.Load().Decide(rules.Order{
		User:          x.id.User,
		Merchant:      x.id.Merchant,
		AutoCapture:   rulesAutoCapture(req.AutoCapture),
		PhysicalLines: req.PhysicalLines,
		LinesUnknown:  req.LinesUnknown,
		EMDKeys:       req.EMD.Keys,
	}, g.now())
	x.ruled, x.ruleReason, x.approval = true, string(d.Reason), d.Approval
	notePurchase(x)
	if d.Allowed {
		x.reason = string(d.Reason)
		return false
	}
	// The refusal names the field that asked, in the PSP's own terms.
	msg := d.Message()
	if req.AutoCaptureAt != "" {
		msg = d.MessageFor("capture at purchase (" + req.AutoCaptureAt + ")")
	}
	if g.shadow {
		x.outcome, x.reason, x.message = OutcomeShadowRefused, string(d.Reason), msg
		g.m.refusal(string(d.Reason))
		return false
	}
	g.refuse(w, x, http.StatusForbidden, psp.CodeAutoCaptureNotAllowed, string(d.Reason), msg)
	return true
}

// notePurchase keeps, for the decision log, a reference that ties the line
// to the purchase without naming anyone: the first 8 bytes of the SHA-256
// of the path's authorization token, or, on a route without one, of the
// body as sent. The body's is taken now because its buffer is reused once
// the request is done; the token's only when the line is written
// (purchaseRef), since the token outlives the request.
func notePurchase(x *exchange) {
	if x.route.Token != "" {
		x.refOfToken = true
		return
	}
	sum := sha256.Sum256(x.body)
	copy(x.purchaseRef[:], sum[:])
}

// purchaseRef is the reference notePurchase kept.
func purchaseRef(x *exchange) [8]byte {
	if !x.refOfToken {
		return x.purchaseRef
	}
	// An authorization token is a UUID: hashed from a copy on the stack,
	// not a conversion to bytes on the heap.
	var b [64]byte
	tok := b[:copy(b[:], x.route.Token)]
	if len(x.route.Token) > len(b) {
		tok = []byte(x.route.Token)
	}
	sum := sha256.Sum256(tok)
	return [8]byte(sum[:8])
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
