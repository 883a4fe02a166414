package caddymodule

import (
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// logDecision writes one structured line per guarded request: what was
// asked, what was decided and why, and what the PSP answered. It never
// carries credentials or personal data: the merchant is the identity the
// rules are keyed by (a Basic-auth username, or a digest of an API key),
// and only amounts and the currency are taken from the body.
func (h *Handler) logDecision(x *exchange) {
	ce := h.decLog.Check(zapcore.InfoLevel, "decision")
	if ce == nil {
		return
	}
	if x.corrID == "" {
		// Forwarded requests carry the PSP's own correlation id back to the
		// caller; the gateway's id still ties this line to its metrics.
		x.corrID = newCorrelationID()
	}
	rulesVersion := ""
	if r := h.rules.Load(); r != nil {
		rulesVersion = r.Digest()
		if len(rulesVersion) > 12 {
			rulesVersion = rulesVersion[:12]
		}
	}
	// One inline object rather than a slice of fields: the line is written
	// for every guarded request, and a field slice is a kilobyte each time.
	x.line = decisionLine{h: h, x: x, rulesVersion: rulesVersion, latency: h.now().Sub(x.start)}
	ce.Write(zap.Inline(&x.line))
}

// decisionLine is the content of one decision log line.
type decisionLine struct {
	h            *Handler
	x            *exchange
	rulesVersion string
	latency      time.Duration
}

// MarshalLogObject writes the line's fields in a fixed order.
func (l *decisionLine) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	x := l.x
	enc.AddString("correlation_id", x.corrID)
	enc.AddString("psp", l.h.dialect.Name())
	enc.AddString("operation", x.route.Op.String())
	enc.AddString("merchant", x.id.Merchant)
	enc.AddString("order_id", x.route.OrderID)
	enc.AddString("decision", x.outcome)
	enc.AddString("reason", x.reason)
	if x.message != "" {
		enc.AddString("message", x.message)
	}
	if x.amount != 0 || x.currency != "" {
		enc.AddInt64("amount", x.amount)
		enc.AddString("currency", x.currency)
	}
	if x.idemOut != "" {
		enc.AddString("idempotency", x.idemOut)
	}
	enc.AddString("mode", l.h.Mode)
	enc.AddString("rules_version", l.rulesVersion)
	enc.AddInt("status", x.status)
	enc.AddInt("upstream_status", x.upstream)
	enc.AddDuration("upstream_latency", x.upDur)
	enc.AddDuration("latency", l.latency)
	return nil
}

// Interface guards
var _ zapcore.ObjectMarshaler = (*decisionLine)(nil)
