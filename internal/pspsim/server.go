package pspsim

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure a Server.
type Options struct {
	Latency          time.Duration    // added to every PSP request (not to /_sim/)
	FailPercent      int              // 0..100: share of PSP requests answered 503 TEMPORARILY_UNAVAILABLE without effect
	DropAfterCapture int              // 0..100: share of captures applied and then answered by closing the connection
	FailAfterCapture int              // 0..100: share of captures applied and then answered 500
	DropAfterChange  int              // 0..100: share of order changes (PATCH authorization, release, cancel) applied and then answered by closing the connection
	FailAfterChange  int              // 0..100: share of order changes applied and then answered 500
	ReadDelay        time.Duration    // an order read answers this long after it took its snapshot
	Seed             int64            // seeds the fault draws; 0 seeds from the clock
	Now              func() time.Time // default time.Now
	// NoLimits makes Klarna Order Management and Stripe apply every
	// well-formed capture, whatever the remaining authorization or the
	// order's state, and Klarna every PATCH authorization, even below the
	// captured amount: what a gateway in front lets through is then money
	// moved, and Books shows it as a violation.
	NoLimits bool
	// Passwords are the Klarna Basic-auth passwords of the user names
	// listed: any other password is refused with 401, as the PSP refuses
	// wrong credentials. A user name not listed is accepted with any
	// non-empty password.
	Passwords map[string]string
}

// Faults is how the simulator misbehaves. Percentages outside 0..100 and
// negative latencies are clamped.
type Faults struct {
	Latency          time.Duration
	FailPercent      int
	DropAfterCapture int
	FailAfterCapture int
	DropAfterChange  int
	FailAfterChange  int
	ReadDelay        time.Duration
}

func (f Faults) clamped() Faults {
	pct := func(p int) int { return min(max(p, 0), 100) }
	f.Latency = max(f.Latency, 0)
	f.ReadDelay = max(f.ReadDelay, 0)
	f.FailPercent = pct(f.FailPercent)
	f.DropAfterCapture = pct(f.DropAfterCapture)
	f.FailAfterCapture = pct(f.FailAfterCapture)
	f.DropAfterChange = pct(f.DropAfterChange)
	f.FailAfterChange = pct(f.FailAfterChange)
	return f
}

const (
	maxBodyBytes   = 10 << 20 // larger bodies get 413 REQUEST_TOO_LARGE
	requestLogSize = 10000    // requests kept for Requests
	idempotencyTTL = 24 * time.Hour
)

// Server simulates the Klarna and Hellgate APIs. It is an http.Handler and
// safe for concurrent use.
type Server struct {
	opts  Options
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error // replaced by tests
	idem  *idemStore

	// mu guards everything below. PSP operations run under it, so each one
	// sees and leaves a consistent state, as a PSP's database would.
	mu       sync.Mutex
	faults   Faults
	noLimits bool
	rng      *rand.Rand
	orders   map[string]*klarnaOrder  // Klarna orders by id
	tokens   map[string]bool          // Klarna authorization tokens already used
	payments map[string]*payment      // Hellgate payments by id
	stripe   map[string]*stripeObject // Stripe PaymentIntents and Charges by id
	counts   counters
	log      requestLog
	books    books
}

// New returns a simulator with no orders or payments.
func New(opts Options) *Server {
	s := &Server{
		opts:  opts,
		now:   opts.Now,
		sleep: sleepContext,
		idem:  newIdemStore(idempotencyTTL),
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.clear()
	return s
}

// Reset forgets all orders, payments, idempotency keys, counters and
// recorded requests, restores the faults given to New and reseeds the fault
// draws: the server is as New left it.
func (s *Server) Reset() {
	s.mu.Lock()
	s.clear()
	s.mu.Unlock()
	s.idem.reset()
}

// clear sets the state New starts with. Callers hold mu, or own s alone.
func (s *Server) clear() {
	seed := s.opts.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	s.rng = rand.New(rand.NewPCG(uint64(seed), uint64(seed)>>1|1))
	s.faults = Faults{
		Latency:          s.opts.Latency,
		FailPercent:      s.opts.FailPercent,
		DropAfterCapture: s.opts.DropAfterCapture,
		FailAfterCapture: s.opts.FailAfterCapture,
		DropAfterChange:  s.opts.DropAfterChange,
		FailAfterChange:  s.opts.FailAfterChange,
		ReadDelay:        s.opts.ReadDelay,
	}.clamped()
	s.noLimits = s.opts.NoLimits
	s.orders = make(map[string]*klarnaOrder)
	s.tokens = make(map[string]bool)
	s.payments = make(map[string]*payment)
	s.stripe = make(map[string]*stripeObject)
	s.counts = newCounters()
	s.log = newRequestLog(requestLogSize)
	s.books = books{}
}

// SetFaults changes the faults for requests that arrive from now on.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f.clamped()
	s.mu.Unlock()
}

// Faults returns the faults in effect.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// SetNoLimits switches the mode Options.NoLimits describes on or off for
// requests executed from now on.
func (s *Server) SetNoLimits(on bool) {
	s.mu.Lock()
	s.noLimits = on
	s.mu.Unlock()
}

// NoLimits reports whether the simulator applies captures without limits.
func (s *Server) NoLimits() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.noLimits
}

// ServeHTTP answers a PSP request, or a control request under /_sim/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		s.serveControl(w, r)
		return
	}
	rt := resolve(r.Method, r.URL.Path)
	who := identify(rt.psp, r.Header, s.opts.Passwords)
	body, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	var tooLarge *http.MaxBytesError
	if readErr != nil && !errors.As(readErr, &tooLarge) {
		return // the client went away while sending
	}
	seq, faults := s.arrive(r, rt, who, body)

	if err := s.sleep(r.Context(), faults.Latency); err != nil {
		return
	}
	if s.draw(faults.FailPercent) {
		s.answered(seq, http.StatusServiceUnavailable, outcomeFailed)
		pspError(rt.psp, http.StatusServiceUnavailable, "TEMPORARILY_UNAVAILABLE", "Service temporarily unavailable").write(w)
		return
	}

	var resp response
	executed := true
	switch {
	case tooLarge != nil:
		resp = pspError(rt.psp, http.StatusRequestEntityTooLarge, "REQUEST_TOO_LARGE", "Request body exceeds "+strconv.Itoa(maxBodyBytes)+" bytes")
	case rt.psp != "" && who.owner == "":
		resp = unauthorized(rt.psp)
	default:
		resp, executed = s.perform(r, rt, who, body, seq)
	}
	if resp.status == 0 {
		return // the client left while waiting for an idempotent twin
	}
	if executed && resp.status/100 == 2 {
		// The PSP applied the request; the answer may still be lost.
		drop, fail := 0, 0
		switch {
		case rt.capture:
			drop, fail = faults.DropAfterCapture, faults.FailAfterCapture
		case rt.change:
			drop, fail = faults.DropAfterChange, faults.FailAfterChange
		}
		if s.draw(drop) {
			s.answered(seq, 0, outcomeDropped)
			dropConnection(w)
			return
		}
		if s.draw(fail) {
			s.answered(seq, http.StatusInternalServerError, outcomeFailedAfter)
			pspError(rt.psp, http.StatusInternalServerError, "INTERNAL_SERVER_ERROR", "Internal server error").write(w)
			return
		}
	}
	if rt.read && faults.ReadDelay > 0 {
		// The snapshot is taken; what happens meanwhile is not in it.
		if err := s.sleep(r.Context(), faults.ReadDelay); err != nil {
			s.answered(seq, 0, outcomeAnswered)
			return
		}
	}
	out := outcomeAnswered
	if !executed {
		out = outcomeReplayed
	}
	s.answered(seq, resp.status, out)
	resp.write(w)
}

// perform runs the operation, or replays the answer stored under the
// request's idempotency key. executed is false for a replay.
func (s *Server) perform(r *http.Request, rt route, who identity, body []byte, seq uint64) (resp response, executed bool) {
	key := ""
	if rt.idempotent {
		key = r.Header.Get(idempotencyHeader(rt.psp))
	}
	if key == "" {
		return s.execute(rt, who, r.URL.RawQuery, body, seq), true
	}
	if rt.psp == pspStripe {
		return s.performStripe(r, rt, who, body, seq, key)
	}
	e, first := s.idem.begin(idemKey{psp: rt.psp, owner: who.owner, key: key}, s.now(), "")
	if !first {
		select {
		case <-e.done:
			return e.resp, false
		case <-r.Context().Done():
			return response{}, false
		}
	}
	resp = s.execute(rt, who, r.URL.RawQuery, body, seq)
	s.idem.complete(e, resp)
	return resp, true
}

// performStripe is perform with Stripe's idempotency: a repeated key with
// other parameters (method, path, or body as Rack reads it) is a 400
// idempotency_error, one whose first request is still running a 409, and
// a replay carries Idempotent-Replayed: true.
func (s *Server) performStripe(r *http.Request, rt route, who identity, body []byte, seq uint64, key string) (response, bool) {
	if len(key) > maxStripeIdempotencyKey {
		return stripeInvalid("", "Idempotency-Key must be at most %d characters", maxStripeIdempotencyKey), true
	}
	fp := stripeFingerprint(r, body)
	e, first := s.idem.begin(idemKey{psp: rt.psp, owner: who.owner, key: key}, s.now(), fp)
	if !first {
		if e.fp != fp {
			return stripeError(http.StatusBadRequest, "idempotency_error", "", "",
				"Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '%s' if you meant to execute a different request.", key), false
		}
		select {
		case <-e.done:
			replay := e.resp
			replay.header = replay.header.Clone()
			if replay.header == nil {
				replay.header = http.Header{}
			}
			replay.header.Set("Idempotent-Replayed", "true")
			return replay, false
		default:
			return stripeError(http.StatusConflict, "idempotency_error", "", "",
				"There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through): %s. Please try again later.", key), false
		}
	}
	resp := s.execute(rt, who, r.URL.RawQuery, body, seq)
	s.idem.complete(e, resp)
	return resp, true
}

func (s *Server) execute(rt route, who identity, query string, body []byte, seq uint64) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	return rt.handle(s, &call{who: who, params: rt.params, query: query, body: body, now: s.now(), seq: seq})
}

// arrive counts and records a PSP request and returns its sequence number
// and the faults that apply to it.
func (s *Server) arrive(r *http.Request, rt route, who identity, body []byte) (uint64, Faults) {
	rec := RecordedRequest{
		Time:      s.now(),
		PSP:       rt.psp,
		Operation: rt.op,
		Merchant:  who.name,
		Method:    r.Method,
		Path:      r.URL.EscapedPath(),
		RawQuery:  r.URL.RawQuery,
		Header:    recordedHeader(r.Header),
		Body:      body,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts.arrived(rt.op)
	return s.log.add(rec), s.faults
}

// answered notes how a recorded request ended.
func (s *Server) answered(seq uint64, status int, out outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts.ended(out)
	s.log.answered(seq, status, out)
}

// draw reports whether a fault with the given percentage strikes.
func (s *Server) draw(percent int) bool {
	if percent <= 0 {
		return false
	}
	if percent >= 100 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.IntN(100) < percent
}

// dropConnection closes the connection without an answer, the way a PSP
// or network fails after the PSP applied the request. Where the connection
// cannot be taken over (HTTP/2), aborting the handler resets the stream.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

func sleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// response is a complete PSP answer: what operations return, what is
// written, and what idempotency keys replay. It is not changed once built.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (resp response) write(w http.ResponseWriter) {
	h := w.Header()
	for k, v := range resp.header {
		h[k] = append([]string(nil), v...)
	}
	if resp.status != http.StatusNoContent {
		h.Set("Content-Length", strconv.Itoa(len(resp.body)))
	}
	w.WriteHeader(resp.status)
	w.Write(resp.body)
}

// call is one PSP operation's input.
type call struct {
	who    identity
	params []string // path parameters, in path order
	query  string   // the raw query string
	body   []byte
	now    time.Time
	seq    uint64 // the RecordedRequest's Seq
}

// route is what the method and path select.
type route struct {
	psp        string // pspKlarna, pspHellgate, or "" for a path of neither
	op         string // "<psp>.<operation>", the Stats key
	idempotent bool   // honours the PSP's idempotency header
	capture    bool   // subject to DropAfterCapture and FailAfterCapture
	change     bool   // an order change, subject to DropAfterChange and FailAfterChange
	read       bool   // an order read, subject to ReadDelay
	params     []string
	handle     func(s *Server, c *call) response
}

const (
	pspKlarna   = "klarna"
	pspHellgate = "hellgate"
)

// maxStripeIdempotencyKey is the longest Idempotency-Key Stripe accepts.
const maxStripeIdempotencyKey = 255

// resolve routes a request by its decoded path, as the PSPs' servers do.
func resolve(method, path string) route {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	switch {
	case segs[0] == "payments" && len(segs) > 1 && segs[1] == "v1",
		segs[0] == "checkout", segs[0] == "ordermanagement",
		segs[0] == "customer-token", segs[0] == "hpp", segs[0] == "v2":
		return klarnaRoute(method, segs)
	case segs[0] == "payments":
		return hellgateRoute(method, segs)
	case segs[0] == "v1":
		return stripeRoute(method, segs)
	}
	return route{op: "unknown", handle: func(*Server, *call) response {
		return klarnaError(http.StatusNotFound, "NOT_FOUND", "No such resource")
	}}
}

// endpoint returns rt if the method is the one it serves, and a 405 route
// otherwise.
func endpoint(method, want string, rt route) route {
	if method == want {
		return rt
	}
	psp := rt.psp
	return route{psp: psp, op: psp + ".unknown", handle: func(*Server, *call) response {
		resp := pspError(psp, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "Method "+method+" is not allowed here")
		resp.header.Set("Allow", want)
		return resp
	}}
}

// notFound is the route of an unknown path under a PSP's prefix.
func notFound(psp string) route {
	return route{psp: psp, op: psp + ".unknown", handle: func(*Server, *call) response {
		return pspError(psp, http.StatusNotFound, "NOT_FOUND", "No such resource")
	}}
}
