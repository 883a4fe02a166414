// Package guard is pspguard's request pipeline, apart from any server: it
// classifies a request by the PSP's dialect, reads and parses a guarded
// body once, claims its idempotency key, decides capture at purchase by the
// compliance rules, reserves a capture or an order change in the ledger,
// hands the PSP exactly the checked bytes, and follows the PSP's answer
// (learns the order, settles the reservation, stores the answer for
// replay). What it refuses never reaches the PSP and is answered in the
// PSP's own error format. Each request's outcome is recorded once: its
// decision metric and its decision log line.
//
// One file per step: read.go, claim.go, autocapture.go, reserve.go,
// forward.go, follow.go, refuse.go, and record.go for the outcome. The
// guard knows no PSP (internal/psp's dialect says what differs) and no
// server: caddymodule builds it and hands it Caddy's next handler.
package guard

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/pspguard/pspguard/internal/credentials"
	"github.com/pspguard/pspguard/internal/idempotency"
	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/psp"
	"github.com/pspguard/pspguard/rules"
)

// Next is the handler that takes a request on to the PSP (Caddy's
// reverse_proxy; caddyhttp.Handler is one). The guard calls it for the
// request it forwards and for its own order reads.
type Next interface {
	ServeHTTP(http.ResponseWriter, *http.Request) error
}

// Config is what a Guard is built from. Every field but UpstreamStatus and
// ReadContext is required.
type Config struct {
	Site    string      // the site label of the metrics and the decision log
	Dialect psp.Dialect // the PSP
	Mode    string      // "enforce", or "shadow": policy refusals are logged and counted, and the request goes on

	MaxBody    int64 // the largest guarded body accepted
	RequireKey bool  // guarded writes without an idempotency key are refused

	LookupTimeout   time.Duration // bounds the guard's own order read
	UpstreamTimeout time.Duration // bounds a forwarded guarded request
	// StoreTimeout bounds every store call. Zero for stores that never
	// block (the memory stores): they get no deadline, as a timer per call
	// is measurable work on every request.
	StoreTimeout time.Duration

	Rules       *atomic.Pointer[rules.Rules] // the rules in force; swapped by the caller's watcher
	Ledger      ledger.Store
	Idempotency idempotency.Store
	Keyed       ledger.Keyed      // a keyed capture's claim with its reservation
	Credentials credentials.Store // credentials the PSP accepted lately

	Metrics *Metrics
	Logger  *zap.Logger // the decision log is its child "decision"
	Now     func() time.Time

	// UpstreamStatus tells the status an error of Next stands for (502
	// when the PSP could not be reached, 504 when it did not answer in
	// time), or 0. Nil: errors stand for no status.
	UpstreamStatus func(error) int
	// ReadContext, if set, prepares the context of the guard's own order
	// read, which shares the caller's request context (Caddy gives the read
	// its own copy of the request variables).
	ReadContext func(context.Context) context.Context
}

// Guard runs the pipeline. It is safe for concurrent use.
type Guard struct {
	site          string
	dialect       psp.Dialect
	mode          string
	shadow        bool
	maxBody       int64
	requireKey    bool
	lookupTimeout time.Duration
	deadlines     *deadlines // of forwarded requests: Config.UpstreamTimeout
	storeTimeout  time.Duration
	rules         *atomic.Pointer[rules.Rules]
	ledger        ledger.Store
	idem          idempotency.Store
	keyed         ledger.Keyed
	creds         credentials.Store
	m             *Metrics
	logger        *zap.Logger
	decLog        *zap.Logger
	lines         *lineWriter
	now           func() time.Time
	upStatus      func(error) int
	readCtx       func(context.Context) context.Context
}

// New builds a guard and starts the writer of its decision log lines;
// Close stops it.
func New(c Config) *Guard {
	g := &Guard{
		site: c.Site, dialect: c.Dialect, mode: c.Mode, shadow: c.Mode == "shadow",
		maxBody: c.MaxBody, requireKey: c.RequireKey,
		lookupTimeout: c.LookupTimeout, deadlines: newDeadlines(c.UpstreamTimeout), storeTimeout: c.StoreTimeout,
		rules: c.Rules, ledger: c.Ledger, idem: c.Idempotency, keyed: c.Keyed, creds: c.Credentials,
		m: c.Metrics, logger: c.Logger, decLog: c.Logger.Named("decision"), now: c.Now,
		upStatus: c.UpstreamStatus, readCtx: c.ReadContext,
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.upStatus == nil {
		g.upStatus = func(error) int { return 0 }
	}
	g.lines = startLineWriter()
	return g
}

// Close writes the decision lines still queued. Requests served after it
// write their own lines. It may be called more than once.
func (g *Guard) Close() { g.lines.stop() }

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
	idemID   string // the idempotency key as the dialect reads it; "" if none
	param    string // the request parameter a refusal names to the caller, if any
	idemKey  idempotency.Key
	idemTok  string
	// claimWithReserve: the key of this capture is claimed together with
	// its reservation (Guard.keyed), not before.
	claimWithReserve bool
	idemOut          string
	forwarded        bool
	storeDown        bool // forwarded although the store did not answer

	// What the compliance rules read and rested on, for the decision log.
	ruled       bool    // the rules decided this create-order
	ruleReason  string  // what the rules said, whatever happened next
	approval    string  // the approval the decision rested on, if any
	purchaseRef [8]byte // digest of the body, when not of the path's token
	refOfToken  bool    // the purchase reference is of the path's token (purchaseRef)

	// Kept in the exchange so that a request costs one allocation for them
	// all rather than one each.
	limited io.LimitedReader
	fwdBody bodyReader
	upCtx   upstreamContext
	rec     recorder
	line    decisionLine
}

// ServeHTTP classifies the request and, for a guarded operation, runs the
// pipeline: read the body once within max_body, parse it once, decide, hand
// the PSP exactly the checked bytes, and learn from its answer. Everything
// else is passed to next untouched.
func (g *Guard) ServeHTTP(w http.ResponseWriter, r *http.Request, next Next) error {
	route, err := g.dialect.Classify(r.Method, r.URL.EscapedPath())
	if err == nil && route.Op == psp.OpOther {
		// A lenient PSP framework may honour a method-override header and
		// route the request to a guarded operation the gateway did not see.
		e := psp.MethodOverride(r.Header)
		if e == nil {
			g.m.passthrough.Inc()
			if err := next.ServeHTTP(w, r); err != nil {
				return g.passthroughFailed(w, err)
			}
			return nil
		}
		err = e
	}
	x := &exchange{r: r, route: route, start: g.now()}
	defer g.record(x)
	if err != nil {
		g.refuseErr(w, x, err)
		return nil
	}
	return g.serve(w, r, next, x)
}

// serve takes a classified guarded request through the steps.
func (g *Guard) serve(w http.ResponseWriter, r *http.Request, next Next, x *exchange) error {
	buf, ok := g.read(w, r, x)
	if buf != nil {
		defer putBuffer(buf)
	}
	if !ok {
		return nil
	}
	op := x.route.Op
	if op == psp.OpGetOrder {
		return g.serveRead(w, r, next, x)
	}

	// Idempotency: claim the key before deciding, so a concurrent duplicate
	// is stopped here and a completed one is replayed without a decision.
	if done := g.claimKey(w, r, x); done {
		return nil
	}
	defer g.settleKey(x)

	switch {
	case op.AsksCapture():
		// The rules decide it without the store, so it is forwarded even
		// while the store is down: the ledger learns the order from the
		// PSP before its first capture.
		if refused := g.checkAutoCapture(w, x); refused {
			return nil
		}
		return g.forward(w, r, next, x, g.afterCreate)
	case op == psp.OpCapture:
		return g.serveCapture(w, r, next, x)
	default:
		// The change's hold asks the store.
		return g.serveChange(w, r, next, x)
	}
}

// storeContext bounds one store operation. It is detached from the
// caller: a store change the gateway started is finished even if the caller
// hangs up. Stores that never block get no deadline (Config.StoreTimeout).
func (g *Guard) storeContext(parent context.Context) (context.Context, context.CancelFunc) {
	if g.storeTimeout == 0 {
		return context.Background(), noCancel
	}
	return context.WithTimeout(context.WithoutCancel(parent), g.storeTimeout)
}

func noCancel() {}

func (g *Guard) ledgerKey(x *exchange, orderID string) ledger.Key {
	return ledger.Key{PSP: g.dialect.Name(), Merchant: x.id.Merchant, OrderID: orderID}
}
