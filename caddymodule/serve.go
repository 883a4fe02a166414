package caddymodule

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/pspguard/pspguard/internal/idempotency"
	"github.com/pspguard/pspguard/internal/psp"
)

// exchange is one guarded request on its way through the pipeline: what was
// read and decided, and what the PSP answered. It carries everything the
// decision log needs.
type exchange struct {
	r        *http.Request
	route    psp.Route
	id       psp.Identity
	req      *psp.Request
	body     []byte
	start    time.Time
	corrID   string
	outcome  string // decisions_total outcome
	reason   string // refusal reason code, if any
	message  string // refusal message, if any
	status   int    // the status the caller got
	upstream int    // the PSP's status, 0 if not forwarded or no answer
	upDur    time.Duration
	amount   int64
	currency string
	idemKey  idempotency.Key
	idemTok  string
	// claimWithReserve: the key of this capture is claimed together with
	// its reservation (Handler.keyed), not before.
	claimWithReserve bool
	idemOut          string
	forwarded        bool
	storeDown        bool // forwarded although the store did not answer

	// What the compliance rules read and rested on, for the decision log.
	ruled       bool    // the rules decided this create-order
	ruleReason  string  // what the rules said, whatever happened next
	approval    string  // the approval the decision rested on, if any
	purchaseRef [8]byte // digest of the authorization token, or of the body
	refOfToken  bool    // purchaseRef is of the path's token

	// Kept in the exchange so that a request costs one allocation for them
	// all rather than one each.
	limited io.LimitedReader
	fwdBody bodyReader
	line    decisionLine
}

// bodyReader hands the PSP the checked bytes.
type bodyReader struct{ bytes.Reader }

func (*bodyReader) Close() error { return nil }

// ServeHTTP classifies the request and, for a guarded operation, runs the
// pipeline: read the body once within max_body, parse it once, decide, hand
// the PSP exactly the checked bytes, and learn from its answer. Everything
// else is passed to the next handler untouched.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	route, err := h.dialect.Classify(r.Method, r.URL.EscapedPath())
	if err == nil && route.Op == psp.OpOther {
		// A lenient PSP framework may honour a method-override header and
		// route the request to a guarded operation the gateway did not see.
		e := psp.MethodOverride(r.Header)
		if e == nil {
			h.m.passthrough.Inc()
			if err := next.ServeHTTP(w, r); err != nil {
				return h.passthroughFailed(w, err)
			}
			return nil
		}
		err = e
	}
	x := &exchange{r: r, route: route, start: h.now()}
	defer h.logDecision(x)
	if err != nil {
		h.refuseErr(w, x, err)
		return nil
	}
	return h.guard(w, r, next, x)
}

func (h *Handler) guard(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, x *exchange) error {
	op := x.route.Op
	id, err := h.dialect.Identity(r.Header)
	if err != nil {
		h.refuseErr(w, x, err)
		return nil
	}
	x.id = id
	// A release or cancel may come without a body; anything that carries one
	// must say it is of the dialect's media type.
	hasBody := op.HasBody() && r.ContentLength != 0
	if e := psp.CheckHeaders(r.Header, h.dialect.IdempotencyHeader(), h.dialect.MediaType(), hasBody); e != nil {
		h.refuseErr(w, x, e)
		return nil
	}

	if op.HasBody() {
		buf, err := h.readBody(r, x)
		if buf != nil {
			defer putBuffer(buf)
		}
		if err != nil {
			h.refuseErr(w, x, err)
			return nil
		}
		x.body = buf.Bytes()
	}
	req, err := h.dialect.ParseRequest(x.route, x.body)
	if err != nil {
		h.refuseErr(w, x, err)
		return nil
	}
	x.req = req
	x.amount, x.currency = req.Amount, req.Currency
	if op.AsksCapture() {
		x.amount = req.OrderAmount
	}

	if op == psp.OpGetOrder {
		return h.serveRead(w, r, next, x)
	}

	// Idempotency: claim the key before deciding, so a concurrent duplicate
	// is stopped here and a completed one is replayed without a decision.
	if done := h.claimKey(w, r, x); done {
		return nil
	}
	defer h.settleKey(x)

	switch {
	case op.AsksCapture():
		// The rules decide it without the store, so it is forwarded even
		// while the store is down: the ledger learns the order from the
		// PSP before its first capture.
		if refused := h.checkAutoCapture(w, x); refused {
			return nil
		}
		return h.forward(w, r, next, x, h.afterCreate)
	case op == psp.OpCapture:
		return h.serveCapture(w, r, next, x)
	default:
		// The change's hold asks the store.
		return h.serveChange(w, r, next, x)
	}
}

// readBody reads a guarded body once, within max_body. The returned buffer
// comes from a pool; the caller returns it once the request is done.
func (h *Handler) readBody(r *http.Request, x *exchange) (*bytes.Buffer, error) {
	if r.ContentLength > h.MaxBody {
		return nil, h.tooLarge()
	}
	buf := getBuffer()
	if r.Body == nil || r.Body == http.NoBody {
		return buf, nil
	}
	lr := &x.limited
	lr.R, lr.N = r.Body, h.MaxBody+1
	n, err := buf.ReadFrom(lr)
	if err != nil {
		return buf, psp.BadValue("", "reading the request body: %v", err)
	}
	if n > h.MaxBody {
		return buf, h.tooLarge()
	}
	return buf, nil
}

// tooLarge is the answer to a body over max_body, built only when needed.
func (h *Handler) tooLarge() error {
	return &psp.Error{Status: http.StatusRequestEntityTooLarge, Code: psp.CodeRequestTooLarge,
		Message: "request body exceeds the limit of " + strconv.FormatInt(h.MaxBody, 10) + " bytes"}
}

// forwardStoreDown notes, once per request, a create-order forwarded while
// the store did not answer.
func (h *Handler) forwardStoreDown(x *exchange, err error) {
	if x.storeDown {
		return
	}
	x.storeDown = true
	h.m.storeDown.Inc()
	h.logger.Warn("store unavailable: create-order forwarded without it; the ledger learns the order from the PSP before its first capture",
		zap.String("site", h.site), zap.Error(err))
}

// forward hands the PSP exactly the checked bytes and records its answer.
// Guarded answers are small JSON documents: they are buffered so the gateway
// can learn from them (and cache them) before the caller gets them. The
// upstream call is detached from the caller's cancellation: a capture the
// PSP is performing runs to its end even if the caller hangs up, so its
// outcome is known and recorded.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, x *exchange,
	after func(x *exchange, rec caddyhttp.ResponseRecorder, buf *bytes.Buffer, err error)) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Duration(h.UpstreamTimeout))
	defer cancel()
	fr := r.WithContext(ctx)
	if x.route.Op.HasBody() {
		x.fwdBody.Reset(x.body)
		fr.Body = &x.fwdBody
		fr.ContentLength = int64(len(x.body))
		fr.TransferEncoding = nil
		if r.ContentLength != fr.ContentLength || len(r.Header["Content-Length"]) != 1 {
			// The body came chunked: the PSP gets it with its length.
			fr.Header.Set("Content-Length", strconv.Itoa(len(x.body)))
		}
	}
	// The gateway reads guarded answers, so it asks for them unencoded.
	fr.Header.Del("Accept-Encoding")

	buf := getBuffer()
	defer putBuffer(buf)
	rec := caddyhttp.NewResponseRecorder(w, buf, func(status int, header http.Header) bool {
		return true
	})
	x.forwarded = true
	start := h.now()
	err := next.ServeHTTP(rec, fr)
	x.upDur = h.now().Sub(start)
	h.m.upstreamDuration(x.route.Op, x.upDur)
	if err == nil && rec.Status() == 0 {
		err = errors.New("upstream wrote no response")
	}
	if err == nil {
		x.upstream = rec.Status()
		if x.upstream >= 200 && x.upstream <= 299 {
			h.vouch(x)
		}
	}
	after(x, rec, buf, err)
	if err != nil {
		x.outcome, x.reason = outcomeError, reasonUpstreamError
		h.m.decision(x.route.Op, x.outcome)
		if x.corrID == "" {
			x.corrID = newCorrelationID()
		}
		x.status, x.message = h.upstreamFailed(w, x.corrID, err, ctx.Err() == context.DeadlineExceeded)
		return nil
	}
	x.status = rec.Status()
	if x.outcome == "" {
		x.outcome = outcomeAllowed
		if x.status >= 500 {
			// Checked and forwarded, but the PSP failed it.
			x.outcome, x.reason = outcomeError, reasonUpstreamError
		}
	}
	h.m.decision(x.route.Op, x.outcome)
	h.storeKey(x, rec, buf)
	return rec.WriteResponse()
}

// upstreamFailed answers a request the PSP gave no answer to in the PSP's
// own error format, as the PSP answers when it is unavailable: 504
// TEMPORARILY_UNAVAILABLE when it did not answer in time, 502 otherwise
// (refused, reset, or no valid HTTP answer). Caddy would answer with an
// empty body and log the request's headers with the error; the gateway logs
// the error and the correlation id instead, as the caller has them. It
// returns the status and message the caller got.
func (h *Handler) upstreamFailed(w http.ResponseWriter, corrID string, err error, timedOut bool) (int, string) {
	status, msg := http.StatusBadGateway, "the PSP could not be reached"
	var he caddyhttp.HandlerError
	if timedOut || errors.As(err, &he) && he.StatusCode == http.StatusGatewayTimeout {
		status, msg = http.StatusGatewayTimeout, "the PSP did not answer in time"
	}
	h.logger.Error("no answer from the PSP", zap.Int("status", status), zap.String("correlation_id", corrID), zap.Error(err))
	h.dialect.WriteError(w, status, h.dialect.ErrorCode(psp.CodeTemporarilyUnavail), msg, corrID)
	return status, msg
}

// passthroughFailed answers in the PSP's format when reverse_proxy could
// not get an answer for a request the gateway does not guard (its 502 and
// 504 errors; it has written nothing then, as it aborts a response that
// fails once started). Other errors go to Caddy as they are.
func (h *Handler) passthroughFailed(w http.ResponseWriter, err error) error {
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.StatusCode != http.StatusBadGateway && he.StatusCode != http.StatusGatewayTimeout {
		return err
	}
	h.upstreamFailed(w, newCorrelationID(), err, false)
	return nil
}

// refuse answers the caller in the PSP's error format; the request never
// reaches the PSP.
func (h *Handler) refuse(w http.ResponseWriter, x *exchange, status int, code, reason, msg string) {
	if x.corrID == "" {
		x.corrID = newCorrelationID()
	}
	x.status, x.reason, x.message = status, reason, msg
	if x.outcome == "" {
		// Policy refusals are "refused"; bad input, conflicts and an
		// undecidable state are "error".
		x.outcome = outcomeError
		if status == http.StatusForbidden || status == http.StatusNotFound {
			x.outcome = outcomeRefused
		}
	}
	h.m.decision(x.route.Op, x.outcome)
	h.m.refusal(reason)
	h.dialect.WriteError(w, status, h.dialect.ErrorCode(code), msg, x.corrID)
}

// refuseErr refuses with a *psp.Error from classification or parsing.
func (h *Handler) refuseErr(w http.ResponseWriter, x *exchange, err error) {
	var pe *psp.Error
	if !errors.As(err, &pe) {
		pe = psp.BadValue("", "%v", err)
	}
	reason := reasonBadValue
	switch pe.Code {
	case psp.CodeRequestTooLarge:
		reason = reasonRequestTooLarge
	case psp.CodeUnsupportedMediaType:
		reason = reasonUnsupportedMediaType
	}
	h.refuse(w, x, pe.Status, pe.Code, reason, pe.Message)
	// The caller may read its own words back; the log keeps only ours.
	x.message = pe.LogMessage()
}

// unavailable refuses because the gateway cannot decide safely.
func (h *Handler) unavailable(w http.ResponseWriter, x *exchange, msg string) {
	w.Header().Set("Retry-After", "1")
	h.refuse(w, x, http.StatusServiceUnavailable, psp.CodeTemporarilyUnavail, reasonUnavailable, msg)
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

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuffer() *bytes.Buffer {
	b := bufPool.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

// putBuffer returns a buffer to the pool; oversized ones are dropped so one
// large body does not pin memory.
func putBuffer(b *bytes.Buffer) {
	if b.Cap() > 64<<10 {
		return
	}
	bufPool.Put(b)
}
