package guard

import (
	"encoding/hex"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pspguard/pspguard/internal/psp"
	"github.com/pspguard/pspguard/rules"
)

// record records the outcome of a guarded request, once, when it is done:
// its decision metric and its decision log line.
func (g *Guard) record(x *exchange) {
	if x.outcome != "" {
		g.m.decision(x.route.Op, x.outcome)
	}
	g.logDecision(x)
}

// logDecision writes one structured line per guarded request: what was
// asked, what was decided and why, and what the PSP answered. It never
// carries credentials or personal data: the merchant is the identity the
// rules are keyed by (a Basic-auth username, or a digest of an API key),
// and only amounts and the currency are taken from the body.
func (g *Guard) logDecision(x *exchange) {
	ce := g.decLog.Check(zapcore.InfoLevel, "decision")
	if ce == nil {
		return
	}
	rulesVersion := ""
	r := g.rules.Load()
	if r != nil {
		rulesVersion = r.Digest()
		if len(rulesVersion) > 12 {
			rulesVersion = rulesVersion[:12]
		}
	}
	// One inline object rather than a slice of fields: the line is written
	// for every guarded request, and a field slice is a kilobyte each time.
	x.line = decisionLine{g: g, x: x, ce: ce, rules: r, rulesVersion: rulesVersion, latency: g.now().Sub(x.start)}
	if x.corrID == "" {
		// Forwarded requests carry the PSP's own correlation id back to the
		// caller; the gateway's id still ties this line to its metrics.
		appendCorrelationID(x.line.corrID[:0])
	}
	if !g.lines.send(&x.line) {
		x.line.write()
	}
}

// lineWriter writes decision lines on a goroutine of its own, so that a
// request does not wait for the log's write(2) (some 10-20 µs on a small
// VM, longer on a slow disk) before its connection serves the next one.
// The writer wakes when a line is queued to an empty queue, lets lines
// gather for lineGather, and writes them all: one wake-up per batch rather
// than one per request. Lines keep their order and their time (taken when
// the request ended). A full queue, or a writer already stopped, makes the
// request write its line itself: a line is never dropped. stop writes every
// queued line before it returns.
type lineWriter struct {
	mu     sync.Mutex
	closed bool
	queue  []*decisionLine
	wake   chan struct{} // lines were queued to an empty queue, or stop was called
	done   chan struct{}
}

// lineQueue bounds the lines waiting for the writer: about a second's worth
// at a few thousand requests a second.
const lineQueue = 4096

// lineGather is how long the writer lets lines gather once woken.
const lineGather = 2 * time.Millisecond

func startLineWriter() *lineWriter {
	lw := &lineWriter{wake: make(chan struct{}, 1), done: make(chan struct{})}
	go lw.run()
	return lw
}

func (lw *lineWriter) run() {
	defer close(lw.done)
	var batch []*decisionLine
	for {
		<-lw.wake
		time.Sleep(lineGather)
		lw.mu.Lock()
		batch, lw.queue = lw.queue, batch[:0]
		closed := lw.closed
		lw.mu.Unlock()
		for i, l := range batch {
			l.write()
			batch[i] = nil
		}
		if closed {
			return
		}
	}
}

// send queues l and reports whether it was queued.
func (lw *lineWriter) send(l *decisionLine) bool {
	if lw == nil {
		return false
	}
	lw.mu.Lock()
	if lw.closed || len(lw.queue) >= lineQueue {
		lw.mu.Unlock()
		return false
	}
	lw.queue = append(lw.queue, l)
	first := len(lw.queue) == 1
	lw.mu.Unlock()
	if first {
		select {
		case lw.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// stop writes the queued lines and ends the writer.
func (lw *lineWriter) stop() {
	if lw == nil {
		return
	}
	lw.mu.Lock()
	if !lw.closed {
		lw.closed = true
		select {
		case lw.wake <- struct{}{}:
		default:
		}
	}
	lw.mu.Unlock()
	<-lw.done
}

// decisionLine is the content of one decision log line.
type decisionLine struct {
	g            *Guard
	x            *exchange
	ce           *zapcore.CheckedEntry
	rules        *rules.Rules
	rulesVersion string
	latency      time.Duration
	corrID       [36]byte // the gateway's own correlation id, if x has none

	// Kept in the line, as a request's exchange keeps the line, so that
	// writing it allocates nothing.
	fields    [1]zap.Field
	lineTypes lineTypesArray
	emdKeys   emdKeysArray
}

// write writes the line. The exchange is no longer changed once its line is
// made, so the writer's goroutine may read it.
func (l *decisionLine) write() {
	l.fields[0] = zap.Inline(l)
	l.ce.Write(l.fields[:]...)
}

// MarshalLogObject writes the line's fields in a fixed order.
func (l *decisionLine) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	x := l.x
	if x.corrID != "" {
		enc.AddString("correlation_id", x.corrID)
	} else {
		enc.AddByteString("correlation_id", l.corrID[:])
	}
	enc.AddString("site", l.g.site)
	enc.AddString("psp", l.g.dialect.Name())
	enc.AddString("operation", x.route.Op.String())
	enc.AddString("merchant", x.id.Merchant)
	if x.id.User != "" && x.id.User != x.id.Merchant {
		// Rules may list the user name: a replay needs it.
		enc.AddString("user", x.id.User)
	}
	enc.AddString("order_id", l.g.dialect.LogOrderID(x.route.OrderID))
	enc.AddString("decision", x.outcome)
	enc.AddString("reason", x.reason)
	if x.message != "" {
		enc.AddString("message", x.message)
	}
	if x.approval != "" {
		enc.AddString("approval", x.approval)
	}
	if x.ruled {
		l.ruleInputs(enc)
	}
	if x.amount != 0 || x.currency != "" {
		enc.AddInt64("amount", x.amount)
		enc.AddString("currency", x.currency)
	}
	if x.idemOut != "" {
		enc.AddString("idempotency", x.idemOut)
	}
	enc.AddString("mode", l.g.mode)
	enc.AddString("rules_version", l.rulesVersion)
	enc.AddInt("status", x.status)
	enc.AddInt("upstream_status", x.upstream)
	enc.AddDuration("upstream_latency", x.upDur)
	enc.AddDuration("latency", l.latency)
	return nil
}

// ruleInputs writes what the compliance rules said (reason may be
// overwritten by what happened next, such as an upstream error) and what
// they read from a create-order, none of it personal: whether and where it
// asked to auto-capture, the
// types of its order lines, the extra merchant data keys it carried, and a
// reference to the purchase. `pspguard rules impact` replays decisions from
// these fields.
func (l *decisionLine) ruleInputs(enc zapcore.ObjectEncoder) {
	x, req := l.x, l.x.req
	enc.AddString("rule_reason", x.ruleReason)
	switch req.AutoCapture {
	case psp.AutoCaptureTrue:
		enc.AddString("auto_capture", "true")
	case psp.AutoCaptureFalse:
		enc.AddString("auto_capture", "false")
	default:
		enc.AddString("auto_capture", "absent")
	}
	if req.AutoCaptureAt != "" {
		enc.AddString("auto_capture_field", req.AutoCaptureAt)
	}
	l.lineTypes = lineTypesArray(req.LineTypes)
	_ = enc.AddArray("line_types", &l.lineTypes)
	if req.LinesUnknown {
		enc.AddBool("lines_unknown", true)
	}
	l.emdKeys = emdKeysArray{keys: req.EMD.Keys, rules: l.rules}
	_ = enc.AddArray("emd_keys", &l.emdKeys)
	if n := l.emdKeys.unlisted(); n > 0 {
		enc.AddInt("emd_unlisted_keys", n)
	}
	var ref [6 + 16]byte
	b := append(ref[:0], "body:"...)
	if x.refOfToken {
		b = append(ref[:0], "token:"...)
	}
	pr := purchaseRef(x)
	b = hex.AppendEncode(b, pr[:])
	enc.AddByteString("purchase_ref", b)
}

// lineTypesArray writes the order line types present.
type lineTypesArray psp.LineTypes

func (lt lineTypesArray) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	psp.LineTypes(lt).Each(enc.AppendString)
	return nil
}

// emdKeysArray writes the extra merchant data keys an order carried that
// are known names: a package Klarna defines or a key the rules require.
// Any other key is the sender's own text and is only counted.
type emdKeysArray struct {
	keys  []string
	rules *rules.Rules
}

func (a emdKeysArray) known(k string) bool {
	return psp.KnownEMDKey(k) || (a.rules != nil && slices.Contains(a.rules.RequiredEMDKeys(), k))
}

func (a emdKeysArray) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for _, k := range a.keys {
		if a.known(k) {
			enc.AppendString(k)
		}
	}
	return nil
}

func (a emdKeysArray) unlisted() int {
	n := 0
	for _, k := range a.keys {
		if !a.known(k) {
			n++
		}
	}
	return n
}

// Interface guards
var (
	_ zapcore.ObjectMarshaler = (*decisionLine)(nil)
	_ zapcore.ArrayMarshaler  = lineTypesArray(0)
	_ zapcore.ArrayMarshaler  = emdKeysArray{}
)
