package caddymodule

import (
	"sync"
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
	x.line = decisionLine{h: h, x: x, ce: ce, rulesVersion: rulesVersion, latency: h.now().Sub(x.start)}
	if !h.lines.send(&x.line) {
		x.line.write()
	}
}

// lineWriter writes decision lines on a goroutine of its own, so that a
// request does not wait for the log's write(2) (some 10-20 µs on a small
// VM, longer on a slow disk) before its connection serves the next one.
// Lines keep their order and their time (taken when the request ended). A
// full queue, or a writer already stopped, makes the request write its
// line itself: a line is never dropped. stop writes every queued line
// before it returns.
type lineWriter struct {
	mu     sync.RWMutex
	closed bool
	queue  chan *decisionLine
	done   chan struct{}
}

// lineQueue bounds the lines waiting for the writer: about a second's worth
// at a few thousand requests a second.
const lineQueue = 4096

func startLineWriter() *lineWriter {
	lw := &lineWriter{queue: make(chan *decisionLine, lineQueue), done: make(chan struct{})}
	go func() {
		defer close(lw.done)
		for l := range lw.queue {
			l.write()
		}
	}()
	return lw
}

// send queues l and reports whether it was queued.
func (lw *lineWriter) send(l *decisionLine) bool {
	if lw == nil {
		return false
	}
	lw.mu.RLock()
	defer lw.mu.RUnlock()
	if lw.closed {
		return false
	}
	select {
	case lw.queue <- l:
		return true
	default:
		return false
	}
}

// stop writes the queued lines and ends the writer.
func (lw *lineWriter) stop() {
	if lw == nil {
		return
	}
	lw.mu.Lock()
	if !lw.closed {
		lw.closed = true
		close(lw.queue)
	}
	lw.mu.Unlock()
	<-lw.done
}

// decisionLine is the content of one decision log line.
type decisionLine struct {
	h            *Handler
	x            *exchange
	ce           *zapcore.CheckedEntry
	rulesVersion string
	latency      time.Duration
}

// write writes the line. The exchange is no longer changed once its line is
// made, so the writer's goroutine may read it.
func (l *decisionLine) write() { l.ce.Write(zap.Inline(l)) }

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
