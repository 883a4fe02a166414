package guard

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/pspguard/pspguard/internal/psp"
)

// follow is what the pipeline does with the PSP's answer to a forwarded
// request (follow.go), before the caller gets it: rec holds the answer,
// err is set if the PSP gave none, or an incomplete one.
type follow func(x *exchange, rec *recorder, err error)

// noFollow is the follow of a request whose answer teaches nothing.
func noFollow(*exchange, *recorder, error) {}

// forward hands the PSP exactly the checked bytes and records its answer.
// Guarded answers are small documents: they are buffered so the gateway
// can learn from them (and cache them) before the caller gets them. The
// upstream call is detached from the caller's cancellation: a capture the
// PSP is performing runs to its end even if the caller hangs up, so its
// outcome is known and recorded.
func (g *Guard) forward(w http.ResponseWriter, r *http.Request, next Next, x *exchange, after follow) error {
	x.upCtx = upstreamContext{values: r.Context(), deadline: g.deadlines.context(time.Now())}
	ctx := &x.upCtx
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
	rec := &x.rec
	rec.reset(w, buf)
	x.forwarded = true
	start := g.now()
	err := serveNext(next, rec, fr)
	x.upDur = g.now().Sub(start)
	g.m.upstreamDuration(x.route.Op, x.upDur)
	if err == nil && rec.status == 0 {
		err = errors.New("upstream wrote no response")
	}
	if err != nil {
		rec.discard()
	} else {
		x.upstream = rec.status
		if x.upstream >= 200 && x.upstream <= 299 {
			g.vouch(x)
		}
	}
	after(x, rec, err)
	if err != nil {
		x.outcome, x.reason = OutcomeError, ReasonUpstreamError
		if x.corrID == "" {
			x.corrID = newCorrelationID()
		}
		x.status, x.message = g.upstreamFailed(w, x.corrID, err, ctx.Err() == context.DeadlineExceeded, g.mayHaveRun(x))
		return nil
	}
	x.status = rec.status
	if x.outcome == "" {
		x.outcome = OutcomeAllowed
		if x.status >= 500 {
			// Checked and forwarded, but the PSP failed it.
			x.outcome, x.reason = OutcomeError, ReasonUpstreamError
		}
	}
	g.storeKey(x, rec)
	return rec.writeResponse()
}

// errIncompleteAnswer is the error of an answer the PSP began and did not
// finish.
var errIncompleteAnswer = errors.New("the PSP's answer was cut off")

// serveNext calls next. Once reverse_proxy has passed an answer's status
// on, a failure to copy its body (the PSP closed the connection short of
// its Content-Length, or the writer refused the body) makes it panic with
// http.ErrAbortHandler, to abort the caller's response as the standard
// library's proxy does. The gateway's writers buffer the answer, so
// nothing has reached the caller yet: the abort is the PSP giving no
// complete answer, returned as an error. Any other panic goes on.
func serveNext(next Next, w http.ResponseWriter, r *http.Request) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				panic(p)
			}
			err = errIncompleteAnswer
		}
	}()
	return next.ServeHTTP(w, r)
}

// upstreamFailed answers a request the PSP gave no answer to in the PSP's
// own error format, as the PSP answers when it is unavailable: 504
// TEMPORARILY_UNAVAILABLE when it did not answer in time, 502 otherwise
// (refused, reset, or no valid HTTP answer). A server in front would
// answer with an empty body and may log the request's headers with the
// error; the gateway logs the error and the correlation id instead, as the
// caller has them. It returns the status and message the caller got.
//
// mayHaveRun says that a write may have reached the PSP whole: its caller
// is told so, and how to learn what became of it, rather than that the PSP
// could not be reached.
func (g *Guard) upstreamFailed(w http.ResponseWriter, corrID string, err error, timedOut, mayHaveRun bool) (int, string) {
	status, msg := http.StatusBadGateway, "the PSP could not be reached"
	if timedOut || g.upStatus(err) == http.StatusGatewayTimeout {
		status, msg = http.StatusGatewayTimeout, "the PSP did not answer in time"
	}
	if mayHaveRun {
		if status == http.StatusBadGateway {
			msg = "the PSP's answer did not come through"
		}
		msg += "; the request may have been carried out: send it again with the same idempotency key to learn its outcome"
	}
	g.logger.Error("no answer from the PSP", zap.Int("status", status), zap.String("correlation_id", corrID), zap.Error(err))
	g.dialect.WriteError(w, status, g.dialect.ErrorCode(psp.CodeTemporarilyUnavail), msg, "", corrID)
	return status, msg
}

// mayHaveRun reports whether a forwarded write whose answer did not come
// may have reached the PSP whole. A body the HTTP client has not begun to
// read was not sent, and a PSP does not act on a request without its body;
// a write without a body may have been sent whenever it failed.
func (g *Guard) mayHaveRun(x *exchange) bool {
	if x.route.Op == psp.OpGetOrder {
		return false
	}
	return len(x.body) == 0 || x.fwdBody.Len() < len(x.body)
}

// passthroughFailed answers in the PSP's format when next could not get
// an answer for a request the gateway does not guard (the 502 and 504 of
// Config.UpstreamStatus; reverse_proxy has written nothing then, as it
// aborts a response that fails once started). Other errors are returned
// as they are.
func (g *Guard) passthroughFailed(w http.ResponseWriter, err error) error {
	if s := g.upStatus(err); s != http.StatusBadGateway && s != http.StatusGatewayTimeout {
		return err
	}
	g.upstreamFailed(w, newCorrelationID(), err, false, false)
	return nil
}

// bodyReader hands the PSP the checked bytes.
type bodyReader struct{ bytes.Reader }

func (*bodyReader) Close() error { return nil }

// recorder buffers the PSP's answer to a forwarded request, so that the
// gateway learns from it before the caller gets it. The header map is the
// caller's own (as the answer's headers are meant for the caller, and a
// buffered answer's trailers need it); status and body wait for
// writeResponse. Informational (1xx) answers are not final: they pass
// straight through.
type recorder struct {
	w           http.ResponseWriter
	buf         *bytes.Buffer
	status      int
	wroteHeader bool

	// The caller's header fields before the answer's were added, for
	// discard: in kept, or in keptAll when there were more.
	kept    [4]headerField
	nkept   int
	keptAll http.Header
}

type headerField struct {
	name   string
	values []string
}

func (rec *recorder) reset(w http.ResponseWriter, buf *bytes.Buffer) {
	*rec = recorder{w: w, buf: buf}
	h := w.Header()
	if len(h) > len(rec.kept) {
		rec.keptAll = h.Clone()
		return
	}
	// A handful of fields at most (Caddy's Server), kept without an
	// allocation. A proxy adds values with append, which leaves the
	// kept slices' own elements as they are.
	for k, v := range h {
		rec.kept[rec.nkept] = headerField{k, v}
		rec.nkept++
	}
}

// discard drops an answer that is not passed on: its status, its body and
// the header fields a proxy copied from it into the caller's header (an
// incomplete answer's Capture-Id or Content-Encoding would describe an
// answer the caller does not get).
func (rec *recorder) discard() {
	h := rec.w.Header()
	clear(h)
	if rec.keptAll != nil {
		maps.Copy(h, rec.keptAll)
	}
	for _, f := range rec.kept[:rec.nkept] {
		h[f.name] = f.values
	}
	rec.status, rec.wroteHeader = 0, false
	rec.buf.Reset()
}

func (rec *recorder) Header() http.Header { return rec.w.Header() }

func (rec *recorder) WriteHeader(status int) {
	if rec.wroteHeader {
		return
	}
	rec.status = status
	if 100 <= status && status <= 199 {
		rec.w.WriteHeader(status)
		return
	}
	rec.wroteHeader = true
}

func (rec *recorder) Write(p []byte) (int, error) {
	rec.WriteHeader(http.StatusOK)
	return rec.buf.Write(p)
}

// ReadFrom lets a proxy copy the answer into the buffer without a buffer
// of its own.
func (rec *recorder) ReadFrom(r io.Reader) (int64, error) {
	rec.WriteHeader(http.StatusOK)
	return rec.buf.ReadFrom(r)
}

// FlushError does nothing: the answer is buffered until writeResponse. A
// proxy flushing a streamed answer finds the flush done.
func (rec *recorder) FlushError() error { return nil }

// writeResponse writes the buffered answer to the caller.
func (rec *recorder) writeResponse() error {
	rec.w.WriteHeader(rec.status)
	if rec.buf.Len() == 0 {
		return nil
	}
	_, err := rec.w.Write(rec.buf.Bytes())
	return err
}

var (
	_ http.ResponseWriter = (*recorder)(nil)
	_ io.ReaderFrom       = (*recorder)(nil)
)
