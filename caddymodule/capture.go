package caddymodule

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/pspguard/pspguard/internal/idempotency"
	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/psp"
)

// serveCapture decides a capture against the ledger: learn the order if
// needed, reserve the amount atomically, forward, then settle the
// reservation by what the PSP answered.
func (h *Handler) serveCapture(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, x *exchange) error {
	if x.id.Merchant == "" {
		// No credentials: the PSP answers 401 itself and captures nothing.
		return h.forward(w, r, next, x, func(*exchange, caddyhttp.ResponseRecorder, *bytes.Buffer, error) {})
	}
	key := h.ledgerKey(x, x.route.OrderID)
	tag := ""
	if x.idemTok != "" || x.claimWithReserve {
		tag = tagOf(x.idemKey)
	}
	var d ledger.Decision
	for attempt := 0; ; attempt++ {
		var needsLearn bool
		var err error
		var claim *idempotency.Claim
		d, claim, needsLearn, err = h.reserve(r.Context(), key, tag, x)
		if err != nil {
			return h.storeDown(w, x, err)
		}
		if claim != nil && h.answerClaim(w, x, *claim) {
			return nil
		}
		if !needsLearn && attempt == 0 && h.mustVerify(r.Context(), x, d) {
			// The refusal would tell what the ledger knows of the order:
			// read the order from the PSP with these credentials first. A
			// wrong password gets the PSP's own 401, as it would without
			// the gateway.
			if held(d) {
				h.releaseReservation(d.Reservation)
			}
			needsLearn = true
		}
		if !needsLearn {
			break
		}
		if attempt == maxOrderReads {
			// Every read came back after another change to the order:
			// nothing the PSP said can be applied in full.
			h.unsettled(w, x)
			return nil
		}
		if done := h.learn(w, r, next, x, key); done {
			return nil
		}
		h.vouch(x)
	}
	x.currency = d.Entry.Currency

	if held(d) && currencyMismatch(x, d) {
		h.releaseReservation(d.Reservation)
		return h.refuseCapture(w, r, next, x, reasonCurrencyMismatch,
			fmt.Sprintf("currency_code %s does not match the order's currency %s", x.req.Currency, d.Entry.Currency))
	}
	if !held(d) {
		reason, msg := h.captureRefusal(x, d)
		return h.refuseCapture(w, r, next, x, reason, msg)
	}

	res := d.Reservation
	return h.forward(w, r, next, x, func(x *exchange, rec caddyhttp.ResponseRecorder, buf *bytes.Buffer, err error) {
		if h.settle(x, res, rec, buf, err) {
			h.m.capturedAmount(d.Entry.Currency, res.Amount)
		}
	})
}

// settle settles a reservation, a capture's or an order change's, by what
// the PSP answered: Commit on success, Release on a definite refusal (the
// PSP did nothing), MarkUncertain when the outcome is unknown (timeout,
// lost connection, 5xx: the amount stays held until the order is read). A
// claimed idempotency key is finished in the same store call: the answer
// stored for replay, or the claim abandoned. It reports whether the ledger
// committed the reservation.
func (h *Handler) settle(x *exchange, res ledger.Reservation, rec caddyhttp.ResponseRecorder, buf *bytes.Buffer, err error) (committed bool) {
	ctx, cancel := h.storeContext(context.Background())
	defer cancel()
	how := ledger.SettleUncertain
	switch {
	case err == nil && rec.Status() >= 200 && rec.Status() <= 299:
		how = ledger.SettleCommit
	case err == nil && rec.Status() >= 400 && rec.Status() <= 499:
		how = ledger.SettleRelease
	}
	var serr error
	if x.idemTok != "" {
		var result *idempotency.Result
		if err == nil {
			result = resultOf(rec, buf, h.dialect.ReplayHeaders())
		}
		var ferr error
		serr, ferr = h.keyed.SettleFinish(ctx, res, how, x.idemKey, x.idemTok, result)
		h.finishedKey(x, result, ferr)
	} else {
		switch how {
		case ledger.SettleCommit:
			serr = h.ledger.Commit(ctx, res)
		case ledger.SettleRelease:
			serr = h.ledger.Release(ctx, res)
		default:
			serr = h.ledger.MarkUncertain(ctx, res)
		}
	}
	committed = how == ledger.SettleCommit && serr == nil
	if serr != nil {
		h.logger.Error("settling a reservation", zap.String("op", x.route.Op.String()), zap.Error(serr))
	}
	return committed
}

// maxOrderReads bounds the order reads one capture makes: a read answered
// after another change to the order is applied only as far as it restricts
// the order, and is made again.
const maxOrderReads = 3

// held reports whether the ledger holds the capture's amount for it.
func held(d ledger.Decision) bool { return d.Outcome == ledger.Reserved || d.Outcome == ledger.Adopted }

// currencyMismatch reports whether the capture names a currency other than
// the order's.
func currencyMismatch(x *exchange, d ledger.Decision) bool {
	return x.req.Currency != "" && x.req.Currency != d.Entry.Currency
}

// vouch records that the PSP accepted the caller's credentials: it
// answered them with success.
func (h *Handler) vouch(x *exchange) {
	if x.id.Merchant == "" || x.id.NamedBySecret() {
		return
	}
	// Every success comes here and almost always finds the note fresh, so
	// no deadline is made per call: the Redis client's own read and write
	// timeouts (the store's timeout) bound the rare write.
	if err := h.creds.Accept(context.Background(), x.id.CredentialDigest); err != nil {
		h.logger.Warn("recording accepted credentials", zap.Error(err))
	}
}

// mustVerify reports whether the ledger's decision d would refuse the
// capture with what the ledger knows of the order (its remaining amount,
// state or currency), while the PSP has not lately accepted the caller's
// credentials. A merchant named by its user name could otherwise be
// answered by anyone who knows that name. A merchant named by a digest of
// its secret key is not: the ledger only finds its orders with the key. In
// shadow mode the caller is answered by the PSP, not told the refusal.
func (h *Handler) mustVerify(ctx context.Context, x *exchange, d ledger.Decision) bool {
	refused := !held(d) || currencyMismatch(x, d)
	if !refused || h.shadow {
		return false
	}
	return !h.mayTell(ctx, x)
}

// mayTell reports whether a refusal may state what the ledger knows of an
// order to the caller: its credentials name the merchant by a digest of
// its secret, or the PSP accepted them lately.
func (h *Handler) mayTell(ctx context.Context, x *exchange) bool {
	if x.id.NamedBySecret() {
		return true
	}
	sctx, cancel := h.storeContext(ctx)
	defer cancel()
	ok, err := h.creds.Accepted(sctx, x.id.CredentialDigest)
	if err != nil {
		// The PSP checks them instead.
		h.logger.Warn("reading accepted credentials", zap.Error(err))
		return false
	}
	return ok
}

// reserve works out the capture amount and reserves it, claiming the
// request's idempotency key in the same store call if it is still to be
// claimed (claim is then set). needsLearn reports that the ledger must
// first learn the order from the PSP, or reconcile it.
func (h *Handler) reserve(ctx context.Context, key ledger.Key, tag string, x *exchange) (d ledger.Decision, claim *idempotency.Claim, needsLearn bool, err error) {
	amount := x.req.Amount
	if !x.req.HasAmount {
		// A capture without an amount (the PSP allows it) takes the whole
		// authorized amount.
		e, ok, err := h.getEntry(ctx, key)
		if err != nil || !ok || e.Unverified {
			return d, nil, err == nil, err
		}
		amount = e.Amount
	}
	x.amount = amount
	sctx, cancel := h.storeContext(ctx)
	defer cancel()
	req := ledger.ReserveRequest{Amount: amount, Tag: tag}
	if x.claimWithReserve {
		x.claimWithReserve = false
		var c idempotency.Claim
		c, d, err = h.keyed.ClaimReserve(sctx, key, req, x.idemKey, x.req.Fingerprint)
		if err != nil {
			return d, nil, false, err
		}
		if c.Outcome != idempotency.Started {
			return d, &c, false, nil
		}
		claim = &c
	} else if d, err = h.ledger.Reserve(sctx, key, req); err != nil {
		return d, nil, false, err
	}
	return d, claim, d.Outcome == ledger.NotFound || d.Outcome == ledger.NeedsReconcile, nil
}

// captureRefusal explains a refused reservation.
func (h *Handler) captureRefusal(x *exchange, d ledger.Decision) (reason, msg string) {
	field := h.dialect.AmountField(x.route.Op)
	e := d.Entry
	switch d.Outcome {
	case ledger.Exceeds:
		msg = fmt.Sprintf("%s %d exceeds the remaining authorized amount %d", field, x.amount, e.Available())
		if e.Reserved > 0 {
			msg += fmt.Sprintf(" (%d more is held by captures in flight)", e.Reserved)
		}
		return reasonCaptureExceeds, msg
	case ledger.AlreadyCaptured:
		return reasonAlreadyCaptured, "the payment allows one capture and it has already been captured or a capture is in progress"
	default:
		state := e.State.String()
		if e.State == psp.StateAuthorized && !e.ExpiresAt.IsZero() && !h.now().Before(e.ExpiresAt) {
			state = "expired"
		}
		return reasonNotCapturable, fmt.Sprintf("the order cannot be captured: it is %s", state)
	}
}

// refuseCapture refuses a capture by policy, or in shadow mode lets it
// through unreserved; the ledger then follows what the PSP did.
func (h *Handler) refuseCapture(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, x *exchange, reason, msg string) error {
	return h.refuseByLedger(w, r, next, x, http.StatusForbidden, psp.CodeCaptureNotAllowed, reason, msg)
}

// refuseByLedger refuses a capture or an order change the ledger does not
// allow with status and code, or in shadow mode forwards it unheld and
// reads the order after it.
func (h *Handler) refuseByLedger(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, x *exchange, status int, code, reason, msg string) error {
	if !h.shadow {
		h.refuse(w, x, status, code, reason, msg)
		return nil
	}
	x.outcome, x.reason, x.message = outcomeShadowRefused, reason, msg
	h.m.refusal(reason)
	return h.forward(w, r, next, x, func(x *exchange, rec caddyhttp.ResponseRecorder, _ *bytes.Buffer, err error) {
		h.followShadow(r, next, x, rec.Status(), err)
	})
}

func (h *Handler) releaseReservation(res ledger.Reservation) {
	ctx, cancel := h.storeContext(context.Background())
	defer cancel()
	if err := h.ledger.Release(ctx, res); err != nil {
		h.logger.Error("releasing a capture reservation", zap.Error(err))
	}
}

func (h *Handler) getEntry(ctx context.Context, key ledger.Key) (ledger.Entry, bool, error) {
	ctx, cancel := h.storeContext(ctx)
	defer cancel()
	return h.ledger.Get(ctx, key)
}

// unsettled refuses because every order read came back after another
// change to the order: nothing the PSP said could be applied in full.
func (h *Handler) unsettled(w http.ResponseWriter, x *exchange) {
	w.Header().Set("Retry-After", "1")
	h.refuse(w, x, http.StatusServiceUnavailable, psp.CodeTemporarilyUnavail, reasonOrderUnsettled,
		"the order's state could not be settled with the PSP; nothing was sent")
}

// storeDown refuses because the shared store did not answer.
func (h *Handler) storeDown(w http.ResponseWriter, x *exchange, err error) error {
	h.logger.Error("ledger store unavailable", zap.Error(err))
	h.unavailable(w, x, "the gateway cannot reach its ledger; nothing was sent to the PSP")
	return nil
}

// learn reads the order from the PSP with the caller's own credentials
// and reconciles the ledger with it: in full if nothing changed the order
// since the read began, otherwise as far as it restricts the order. It
// answers the caller itself and
// returns true when the capture cannot go on: the order does not exist
// (404), the PSP refused the read (its own answer is passed on), or the PSP
// could not be asked (503).
func (h *Handler) learn(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, x *exchange, key ledger.Key) bool {
	tok, err := h.beginRead(r.Context(), key)
	if err != nil {
		_ = h.storeDown(w, x, err)
		return true
	}
	if f := tok.Fence(); f > 0 {
		// A Redis failover may have lost reservations of captures still on
		// their way to the PSP: a read now could miss them.
		w.Header().Set("Retry-After", strconv.FormatInt(int64((f+time.Second-1)/time.Second), 10))
		h.refuse(w, x, http.StatusServiceUnavailable, psp.CodeTemporarilyUnavail, reasonStoreFailover,
			"the gateway's store has just failed over; the order is decided again once captures sent before have reached the PSP")
		return true
	}
	lw, err := h.readOrder(r, next, x)
	if err != nil {
		h.logger.Warn("order lookup failed", zap.String("order_id", loggableOrderID(x.route.OrderID)), zap.Error(err))
		h.unavailable(w, x, "the gateway could not read the order from the PSP; nothing was sent")
		return true
	}
	switch {
	case lw.status == http.StatusOK:
	case lw.status == http.StatusNotFound:
		h.refuse(w, x, http.StatusNotFound, psp.CodeNoSuchOrder, reasonNoSuchOrder,
			"no such order: "+x.route.OrderID)
		x.message = "no such order" // the log has the id, when it is well-formed
		return true
	case lw.status >= 400 && lw.status <= 499:
		// The PSP refused these credentials (401, 403): its answer is the
		// caller's answer, and nothing was captured.
		x.status, x.upstream, x.outcome, x.reason = lw.status, lw.status, outcomeError, reasonLookupRefused
		h.m.decision(x.route.Op, outcomeError)
		h.m.refusal(reasonLookupRefused)
		lw.copyTo(w, h.dialect.ReadHeaders())
		return true
	default:
		h.unavailable(w, x, fmt.Sprintf("the PSP answered the order read with %d; nothing was sent", lw.status))
		return true
	}
	order, err := h.dialect.ParseOrder(lw.body.Bytes(), h.now())
	if err != nil {
		h.logger.Warn("unreadable order from the PSP", zap.String("order_id", loggableOrderID(x.route.OrderID)), zap.Error(err))
		h.unavailable(w, x, "the gateway could not read the order from the PSP; nothing was sent")
		return true
	}
	sctx, scancel := h.storeContext(r.Context())
	defer scancel()
	if _, err := h.ledger.Reconcile(sctx, key, order, tok); err != nil {
		_ = h.storeDown(w, x, err)
		return true
	}
	return false
}

// beginRead marks the start of an order read in the ledger.
func (h *Handler) beginRead(ctx context.Context, key ledger.Key) (ledger.ReadToken, error) {
	sctx, cancel := h.storeContext(ctx)
	defer cancel()
	return h.ledger.BeginRead(sctx, key)
}

// readOrder reads the order of x from the PSP with the caller's own
// credentials, through the same upstream reverse_proxy uses. An error means
// the PSP gave no answer.
func (h *Handler) readOrder(r *http.Request, next caddyhttp.Handler, x *exchange) (*lookupWriter, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Duration(h.LookupTimeout))
	defer cancel()
	if vars, ok := ctx.Value(caddyhttp.VarsCtxKey).(map[string]any); ok {
		// The read gets its own copy of Caddy's request variables: a
		// connection net/http dials for it may still be reading them after
		// the read is done, while reverse_proxy writes them for the capture.
		ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, maps.Clone(vars))
	}
	lr := r.Clone(ctx)
	path := h.dialect.OrderPath(x.route.OrderID)
	lr.Method = http.MethodGet
	lr.URL.Path, lr.URL.RawPath, lr.URL.RawQuery = path, "", ""
	lr.RequestURI = path
	lr.Body, lr.ContentLength, lr.TransferEncoding = http.NoBody, 0, nil
	for _, k := range []string{"Content-Type", "Content-Length", "Content-Encoding", "Expect",
		"Accept-Encoding", h.dialect.IdempotencyHeader()} {
		lr.Header.Del(k)
	}

	lw := newLookupWriter()
	start := h.now()
	err := next.ServeHTTP(lw, lr)
	h.m.upstreamDuration(psp.OpGetOrder, h.now().Sub(start))
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
func (h *Handler) followShadow(r *http.Request, next caddyhttp.Handler, x *exchange, status int, err error) {
	if err == nil && status >= 400 && status <= 499 {
		return
	}
	key := h.ledgerKey(x, x.route.OrderID)
	tok, err := h.beginRead(r.Context(), key)
	var lw *lookupWriter
	if err == nil {
		lw, err = h.readOrder(r, next, x)
	}
	var order psp.Order
	switch {
	case err != nil:
	case lw.status != http.StatusOK:
		err = fmt.Errorf("the PSP answered the order read with %d", lw.status)
	default:
		order, err = h.dialect.ParseOrder(lw.body.Bytes(), h.now())
	}
	ctx, cancel := h.storeContext(context.Background())
	defer cancel()
	if err == nil {
		_, err = h.ledger.Reconcile(ctx, key, order, tok)
	}
	if err != nil {
		h.logger.Warn("following a shadow-mode request", zap.String("order_id", loggableOrderID(x.route.OrderID)), zap.Error(err))
		_ = h.ledger.Forget(ctx, key)
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
