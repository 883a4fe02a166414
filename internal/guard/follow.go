package guard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/pspguard/pspguard/internal/idempotency"
	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/psp"
)

// afterCreate learns a new order from the PSP's answer to a create-order.
// An auto-captured order is learned fully captured. The answer to a request
// sent with an idempotency key may be the PSP's replay of the answer to
// another request with the same key (Klarna replays it without comparing
// bodies): that order is learned unverified, and read from the PSP before
// its first capture.
func (g *Guard) afterCreate(x *exchange, rec *recorder, err error) {
	if err != nil || rec.status < 200 || rec.status > 299 {
		return
	}
	orderID, order, ok := g.dialect.CreatedOrder(x.req, rec.status, rec.Header(), rec.buf.Bytes())
	if !ok {
		return
	}
	x.route.OrderID = orderID
	// The answer to a keyed request may be a replay of an earlier
	// request's, so it would only make the order known unverified: read
	// from the PSP before its first capture, as an order the ledger does not
	// hold is. The ledger learns only what belongs to the request, and a
	// keyed create-order costs the store its claim and its result alone.
	if x.idemID == "" {
		ctx, cancel := g.storeContext(context.Background())
		defer cancel()
		if err := g.ledger.Learn(ctx, g.ledgerKey(x, orderID), order, true); err != nil {
			// Not fatal: the order is re-learned from the PSP before its first capture.
			g.forwardStoreDown(x, err)
		}
	}
	if order.Captured > 0 {
		g.m.capturedAmount(order.Currency, order.Captured)
	}
}

// afterCapture applies the PSP's answer to a committed capture when the
// answer is the order's own account after it (the dialect's
// CapturedOrder), as far as it restricts the order: what the capture did
// beyond its amount, such as Stripe's final capture releasing the rest of
// a multicapture PaymentIntent, bounds the captures after it. The answer
// may be the PSP's replay of an earlier answer to the same key, which is
// still its account of the order at that time: evidence that only ever
// restricts.
func (g *Guard) afterCapture(x *exchange, key ledger.Key, rec *recorder) {
	order, ok := g.dialect.CapturedOrder(x.route, rec.status, rec.buf.Bytes(), g.now())
	if !ok {
		return
	}
	ctx, cancel := g.storeContext(context.Background())
	defer cancel()
	if err := g.ledger.Learn(ctx, key, order, false); err != nil {
		g.logger.Error("applying the PSP's answer to a capture to the ledger", zap.String("site", g.site), zap.Error(err))
	}
}

// forwardStoreDown notes, once per request, a create-order forwarded while
// the store did not answer.
func (g *Guard) forwardStoreDown(x *exchange, err error) {
	if x.storeDown {
		return
	}
	x.storeDown = true
	g.m.storeDown.Inc()
	g.logger.Warn("store unavailable: create-order forwarded without it; the ledger learns the order from the PSP before its first capture",
		zap.String("site", g.site), zap.Error(err))
}

// retryLater reports whether a 4xx of the PSP asks to try again later
// rather than refusing the request: 408, 425, 429, and 409, which Stripe
// answers while a request with the same idempotency key is still being
// executed. It says nothing of what became of the key: the answer is not
// kept for replay, and a reservation is not released on it (a retry of a
// capture whose answer was lost holds that capture's reservation, while the
// PSP may still be executing it).
func retryLater(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return false
}

// settle settles a reservation, a capture's or an order change's, by what
// the PSP answered: Commit on success, Release on a definite refusal (the
// PSP did nothing), MarkUncertain when the outcome is unknown (timeout,
// lost connection, 5xx, a "retry later": the amount stays held until the
// order is read). A
// claimed idempotency key is finished in the same store call: the answer
// stored for replay, or the claim abandoned. It reports whether the ledger
// committed the reservation.
func (g *Guard) settle(x *exchange, res ledger.Reservation, rec *recorder, err error) (committed bool) {
	ctx, cancel := g.storeContext(context.Background())
	defer cancel()
	how := ledger.SettleUncertain
	switch {
	case err == nil && rec.status >= 200 && rec.status <= 299:
		how = ledger.SettleCommit
	case err == nil && rec.status >= 400 && rec.status <= 499 && !retryLater(rec.status):
		how = ledger.SettleRelease
	}
	var serr error
	if x.idemTok != "" {
		var result *idempotency.Result
		if err == nil {
			result = g.resultOf(rec)
		}
		var ferr error
		serr, ferr = g.keyed.SettleFinish(ctx, res, how, x.idemKey, x.idemTok, result)
		g.finishedKey(x, result, ferr)
	} else {
		switch how {
		case ledger.SettleCommit:
			serr = g.ledger.Commit(ctx, res)
		case ledger.SettleRelease:
			serr = g.ledger.Release(ctx, res)
		default:
			serr = g.ledger.MarkUncertain(ctx, res)
		}
	}
	committed = how == ledger.SettleCommit && serr == nil
	if serr != nil {
		g.logger.Error("settling a reservation", zap.String("op", x.route.Op.String()), zap.Error(serr))
	}
	return committed
}

// vouch records that the PSP accepted the caller's credentials: it
// answered them with success.
func (g *Guard) vouch(x *exchange) {
	if x.id.Merchant == "" || x.id.NamedBySecret() {
		return
	}
	// Every success comes here and almost always finds the note fresh, so
	// no deadline is made per call: the Redis client's own read and write
	// timeouts (the store's timeout) bound the rare write.
	if err := g.creds.Accept(context.Background(), x.id.CredentialDigest); err != nil {
		g.logger.Warn("recording accepted credentials", zap.Error(err))
	}
}

// serveRead passes an order read through and applies the PSP's answer to
// the ledger: in full if nothing changed the order since the read began,
// otherwise as far as it restricts the order.
func (g *Guard) serveRead(w http.ResponseWriter, r *http.Request, next Next, x *exchange) error {
	if x.id.Merchant == "" {
		// No credentials: the PSP answers 401 itself.
		return g.forward(w, r, next, x, noFollow)
	}
	key := g.ledgerKey(x, x.route.OrderID)
	tok, terr := g.beginRead(r.Context(), key)
	if terr != nil {
		// The read still goes through; the ledger does not learn from it.
		g.logger.Warn("beginning an order read", zap.Error(terr))
	}
	return g.forward(w, r, next, x, func(x *exchange, rec *recorder, err error) {
		if terr != nil || err != nil || rec.status != http.StatusOK {
			return
		}
		order, perr := g.dialect.ParseOrder(rec.buf.Bytes(), g.now())
		if perr != nil {
			return
		}
		ctx, cancel := g.storeContext(context.Background())
		defer cancel()
		if _, err := g.ledger.Reconcile(ctx, key, order, tok); err != nil {
			g.logger.Warn("reconciling the ledger with an order read", zap.Error(err))
		}
	})
}

// learn reads the order from the PSP with the caller's own credentials
// and reconciles the ledger with it: in full if nothing changed the order
// since the read began, otherwise as far as it restricts the order. It
// answers the caller itself and returns true when the capture cannot go
// on: the order does not exist (404), the PSP refused the read (its own
// answer is passed on), or the PSP could not be asked (503).
func (g *Guard) learn(w http.ResponseWriter, r *http.Request, next Next, x *exchange, key ledger.Key) bool {
	tok, err := g.beginRead(r.Context(), key)
	if err != nil {
		_ = g.storeDown(w, x, err)
		return true
	}
	if f := tok.Fence(); f > 0 {
		// A Redis failover may have lost reservations of captures still on
		// their way to the PSP: a read now could miss them.
		w.Header().Set("Retry-After", strconv.FormatInt(int64((f+time.Second-1)/time.Second), 10))
		g.refuse(w, x, http.StatusServiceUnavailable, psp.CodeTemporarilyUnavail, ReasonStoreFailover,
			"the gateway's store has just failed over; the order is decided again once captures sent before have reached the PSP")
		return true
	}
	lw, err := g.readOrder(r, next, x)
	if err != nil {
		g.logger.Warn("order lookup failed", zap.String("order_id", g.dialect.LogOrderID(x.route.OrderID)), zap.Error(err))
		g.unavailable(w, x, "the gateway could not read the order from the PSP; nothing was sent")
		return true
	}
	switch {
	case lw.status == http.StatusOK:
	case lw.status == http.StatusNotFound:
		msg, param := g.dialect.NoSuchOrder(x.route.OrderID)
		x.param = param
		g.refuse(w, x, http.StatusNotFound, psp.CodeNoSuchOrder, ReasonNoSuchOrder, msg)
		x.message = "no such order" // the log has the id, when it is well-formed
		return true
	case lw.status >= 400 && lw.status <= 499:
		// The PSP refused these credentials (401, 403): its answer is the
		// caller's answer, and nothing was captured.
		x.status, x.upstream, x.outcome, x.reason = lw.status, lw.status, OutcomeError, ReasonLookupRefused
		g.m.refusal(ReasonLookupRefused)
		lw.copyTo(w, g.dialect.ReadHeaders())
		return true
	default:
		g.unavailable(w, x, fmt.Sprintf("the PSP answered the order read with %d; nothing was sent", lw.status))
		return true
	}
	order, err := g.dialect.ParseOrder(lw.body.Bytes(), g.now())
	if err != nil {
		g.logger.Warn("unreadable order from the PSP", zap.String("order_id", g.dialect.LogOrderID(x.route.OrderID)), zap.Error(err))
		g.unavailable(w, x, "the gateway could not read the order from the PSP; nothing was sent")
		return true
	}
	sctx, scancel := g.storeContext(r.Context())
	defer scancel()
	if _, err := g.ledger.Reconcile(sctx, key, order, tok); err != nil {
		_ = g.storeDown(w, x, err)
		return true
	}
	return false
}

// beginRead marks the start of an order read in the ledger.
func (g *Guard) beginRead(ctx context.Context, key ledger.Key) (ledger.ReadToken, error) {
	sctx, cancel := g.storeContext(ctx)
	defer cancel()
	return g.ledger.BeginRead(sctx, key)
}

// readOrder reads the order of x from the PSP with the caller's own
// credentials, through next, the way the request itself goes. An error
// means the PSP gave no answer.
func (g *Guard) readOrder(r *http.Request, next Next, x *exchange) (*lookupWriter, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), g.lookupTimeout)
	defer cancel()
	if g.readCtx != nil {
		ctx = g.readCtx(ctx)
	}
	lr := r.Clone(ctx)
	path := g.dialect.OrderPath(x.route.OrderID)
	lr.Method = http.MethodGet
	lr.URL.Path, lr.URL.RawPath, lr.URL.RawQuery = path, "", ""
	lr.RequestURI = path
	lr.Body, lr.ContentLength, lr.TransferEncoding = http.NoBody, 0, nil
	for _, k := range []string{"Content-Type", "Content-Length", "Content-Encoding", "Expect",
		"Accept-Encoding", g.dialect.IdempotencyHeader()} {
		lr.Header.Del(k)
	}

	lw := newLookupWriter()
	start := g.now()
	err := serveNext(next, lw, lr)
	g.m.upstreamDuration(psp.OpGetOrder, g.now().Sub(start))
	if err == nil && lw.status == 0 {
		err = errors.New("upstream wrote no response")
	}
	return lw, err
}

// followShadow brings the ledger up to date after a capture or order change
// it would have refused went to the PSP in shadow mode. Unless the PSP
// refused it (4xx: nothing changed), the order is read from the PSP again
// and reconciled, which keeps the reservations of other captures in
// flight. If that read fails, the order is dropped and re-learned at its
// next capture.
func (g *Guard) followShadow(r *http.Request, next Next, x *exchange, status int, err error) {
	if err == nil && status >= 400 && status <= 499 {
		return
	}
	key := g.ledgerKey(x, x.route.OrderID)
	tok, err := g.beginRead(r.Context(), key)
	var lw *lookupWriter
	if err == nil {
		lw, err = g.readOrder(r, next, x)
	}
	var order psp.Order
	switch {
	case err != nil:
	case lw.status != http.StatusOK:
		err = fmt.Errorf("the PSP answered the order read with %d", lw.status)
	default:
		order, err = g.dialect.ParseOrder(lw.body.Bytes(), g.now())
	}
	ctx, cancel := g.storeContext(context.Background())
	defer cancel()
	if err == nil {
		_, err = g.ledger.Reconcile(ctx, key, order, tok)
	}
	if err != nil {
		g.logger.Warn("following a shadow-mode request", zap.String("order_id", g.dialect.LogOrderID(x.route.OrderID)), zap.Error(err))
		_ = g.ledger.Forget(ctx, key)
	}
}

// lookupWriter collects the answer to the gateway's own order read.
type lookupWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newLookupWriter() *lookupWriter { return &lookupWriter{header: make(http.Header)} }

func (l *lookupWriter) Header() http.Header { return l.header }

func (l *lookupWriter) WriteHeader(status int) {
	if l.status == 0 && (status < 100 || status > 199) {
		l.status = status
	}
}

func (l *lookupWriter) Write(p []byte) (int, error) {
	l.WriteHeader(http.StatusOK)
	if l.body.Len()+len(p) > maxLookupBody {
		return 0, io.ErrShortWrite
	}
	return l.body.Write(p)
}

// maxLookupBody bounds an order read's answer (an order with 1000 lines is
// well below it).
const maxLookupBody = 8 << 20

// copyTo passes the PSP's refusal of the read on to the caller, with the
// headers the dialect names.
func (l *lookupWriter) copyTo(w http.ResponseWriter, headers []string) {
	for _, k := range headers {
		if v := l.header.Values(k); len(v) > 0 {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(l.status)
	_, _ = w.Write(l.body.Bytes())
}

var _ http.ResponseWriter = (*lookupWriter)(nil)
