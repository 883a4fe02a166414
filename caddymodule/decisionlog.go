package caddymodule

import (
	"github.com/google/uuid"
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
		x.corrID = uuid.NewString()
	}
	rulesVersion := ""
	if r := h.rules.Load(); r != nil {
		rulesVersion = r.Digest()
		if len(rulesVersion) > 12 {
			rulesVersion = rulesVersion[:12]
		}
	}
	fields := make([]zap.Field, 0, 18)
	fields = append(fields,
		zap.String("correlation_id", x.corrID),
		zap.String("psp", h.dialect.Name()),
		zap.String("operation", x.route.Op.String()),
		zap.String("merchant", x.id.Merchant),
		zap.String("order_id", x.route.OrderID),
		zap.String("decision", x.outcome),
		zap.String("reason", x.reason),
	)
	if x.message != "" {
		fields = append(fields, zap.String("message", x.message))
	}
	if x.amount != 0 || x.currency != "" {
		fields = append(fields, zap.Int64("amount", x.amount), zap.String("currency", x.currency))
	}
	if x.idemOut != "" {
		fields = append(fields, zap.String("idempotency", x.idemOut))
	}
	fields = append(fields,
		zap.String("mode", h.Mode),
		zap.String("rules_version", rulesVersion),
		zap.Int("status", x.status),
		zap.Int("upstream_status", x.upstream),
		zap.Duration("upstream_latency", x.upDur),
		zap.Duration("latency", h.now().Sub(x.start)),
	)
	ce.Write(fields...)
}
