package guard

import (
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pspguard/pspguard/internal/psp"
	"github.com/pspguard/pspguard/rules"
)

// Decision outcomes, the values of the decisions_total "outcome" label.
const (
	OutcomeAllowed       = "allowed"
	OutcomeRefused       = "refused"
	OutcomeShadowRefused = "shadow_refused"
	OutcomeReplayed      = "replayed"
	OutcomeError         = "error"
	OutcomePassthrough   = "passthrough"
)

var allOutcomes = []string{OutcomeAllowed, OutcomeRefused, OutcomeShadowRefused, OutcomeReplayed, OutcomeError, OutcomePassthrough}

// Outcomes lists every value of the decisions_total "outcome" label.
func Outcomes() []string { return slices.Clone(allOutcomes) }

// Refusal reasons of the gateway's own (rules reasons come from rules/).
const (
	ReasonCaptureExceeds         = "capture_exceeds"
	ReasonNotCapturable          = "capture_not_capturable"
	ReasonAlreadyCaptured        = "capture_already_captured"
	ReasonCurrencyMismatch       = "capture_currency_mismatch"
	ReasonAmountBelowCaptured    = "amount_below_captured"
	ReasonOrderUnsettled         = "order_unsettled"
	ReasonCapturesInFlight       = "captures_in_flight"
	ReasonStoreFailover          = "store_failover"
	ReasonNoSuchOrder            = "no_such_order"
	ReasonLookupRefused          = "lookup_refused" // the PSP refused the caller's credentials for the order read
	ReasonBadValue               = "bad_value"
	ReasonRequestTooLarge        = "request_too_large"
	ReasonUnsupportedMediaType   = "unsupported_media_type"
	ReasonIdempotencyInUse       = "idempotency_key_in_use"
	ReasonIdempotencyReused      = "idempotency_key_reused"
	ReasonIdempotencyKeyRequired = "idempotency_key_required"
	ReasonUnavailable            = "unavailable"
	ReasonUpstreamError          = "upstream_error" // decision log only: the PSP failed or did not answer
)

// RefusalReasons lists every value of the refusals_total "reason" label:
// the rules' reasons for refusing, then the gateway's own.
func RefusalReasons() []string {
	var out []string
	for _, r := range rules.Reasons {
		if !r.Allows() {
			out = append(out, string(r))
		}
	}
	return append(out,
		ReasonCaptureExceeds, ReasonNotCapturable, ReasonAlreadyCaptured, ReasonCurrencyMismatch,
		ReasonAmountBelowCaptured, ReasonNoSuchOrder, ReasonLookupRefused, ReasonBadValue, ReasonRequestTooLarge,
		ReasonUnsupportedMediaType, ReasonIdempotencyInUse, ReasonIdempotencyReused,
		ReasonIdempotencyKeyRequired, ReasonUnavailable, ReasonOrderUnsettled, ReasonCapturesInFlight, ReasonStoreFailover)
}

// Idempotency outcomes, the values of the idempotency_total "outcome" label.
const (
	IdemStored    = "stored"    // a PSP answer was stored for replay
	IdemReplayed  = "replayed"  // answered from the cache
	IdemInFlight  = "in_flight" // 409: the same key is being processed
	IdemMismatch  = "mismatch"  // 422: the same key with another request
	IdemAbandoned = "abandoned" // not stored (gateway refusal, 5xx, transport failure)
	IdemNoKey     = "no_key"    // a guarded write without a key
)

var allIdemOutcomes = []string{IdemStored, IdemReplayed, IdemInFlight, IdemMismatch, IdemAbandoned, IdemNoKey}

// IdempotencyOutcomes lists every value of the idempotency_total "outcome"
// label.
func IdempotencyOutcomes() []string { return slices.Clone(allIdemOutcomes) }

// Collectors are the metric families the pipeline writes, by site and
// PSP. They are made once per process and registered by the caller, so
// that their values outlive the guards that write them.
type Collectors struct {
	Decisions          *prometheus.CounterVec
	Refusals           *prometheus.CounterVec
	Idempotency        *prometheus.CounterVec
	UpstreamDuration   *prometheus.HistogramVec
	CapturedAmount     *prometheus.CounterVec
	StoreDownForwarded *prometheus.CounterVec
}

// NewCollectors makes the families, named caddy_psp_guard_*.
func NewCollectors() *Collectors {
	return &Collectors{
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "psp_guard", Name: "decisions_total",
			Help: "Guarded and passed-through requests by site, PSP, operation and outcome (allowed, refused, shadow_refused, replayed, error, passthrough).",
		}, []string{"site", "psp", "operation", "outcome"}),
		Refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "psp_guard", Name: "refusals_total",
			Help: "Requests the gateway answered itself or would have refused in shadow mode, by site, PSP and reason code.",
		}, []string{"site", "psp", "reason"}),
		Idempotency: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "psp_guard", Name: "idempotency_total",
			Help: "Idempotency key outcomes by site and PSP: stored, replayed, in_flight, mismatch, abandoned, no_key.",
		}, []string{"site", "psp", "outcome"}),
		UpstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "caddy", Subsystem: "psp_guard", Name: "upstream_duration_seconds",
			Help:    "Time the PSP took to answer guarded requests, by site, PSP and operation.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"site", "psp", "operation"}),
		CapturedAmount: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "psp_guard", Name: "captured_amount_total",
			Help: "Amount captured through the gateway in minor units, by site, PSP and currency.",
		}, []string{"site", "psp", "currency"}),
		StoreDownForwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "psp_guard", Name: "store_down_forwarded_total",
			Help: "Allowed create-orders forwarded while the store did not answer, by site and PSP; the ledger learns these orders from the PSP before their first capture.",
		}, []string{"site", "psp"}),
	}
}

// Metrics are the series one guard touches on every request, resolved once
// so that the hot path does no label lookups.
type Metrics struct {
	c           *Collectors
	site, psp   string
	passthrough prometheus.Counter
	decisions   [][]prometheus.Counter        // by operation, then by allOutcomes
	refusals    map[string]prometheus.Counter // by reason
	idems       []prometheus.Counter          // by allIdemOutcomes
	storeDown   prometheus.Counter            // create-orders forwarded with the store down
	upstream    []lazyObserver                // by operation
}

// lazyObserver resolves a histogram series on first use: an operation's
// latency series appears once the operation has been seen.
type lazyObserver struct {
	once sync.Once
	obs  prometheus.Observer
}

// For resolves the series of one site and PSP. Every counter series is
// created at zero, so that rate() and increase() see the first decision
// or refusal of each kind.
func (c *Collectors) For(site, pspName string) *Metrics {
	m := &Metrics{c: c, site: site, psp: pspName, refusals: map[string]prometheus.Counter{}}
	for _, op := range psp.Operations() {
		byOutcome := make([]prometheus.Counter, len(allOutcomes))
		for i, o := range allOutcomes {
			byOutcome[i] = c.Decisions.WithLabelValues(site, pspName, op.String(), o)
		}
		m.decisions = append(m.decisions, byOutcome)
	}
	m.upstream = make([]lazyObserver, len(m.decisions))
	for _, r := range RefusalReasons() {
		m.refusals[r] = c.Refusals.WithLabelValues(site, pspName, r)
	}
	for _, o := range allIdemOutcomes {
		m.idems = append(m.idems, c.Idempotency.WithLabelValues(site, pspName, o))
	}
	m.storeDown = c.StoreDownForwarded.WithLabelValues(site, pspName)
	m.passthrough = m.decisions[psp.OpOther][slices.Index(allOutcomes, OutcomePassthrough)]
	return m
}

func (m *Metrics) decision(op psp.Operation, outcome string) {
	if i := slices.Index(allOutcomes, outcome); i >= 0 && int(op) < len(m.decisions) {
		m.decisions[op][i].Inc()
		return
	}
	m.c.Decisions.WithLabelValues(m.site, m.psp, op.String(), outcome).Inc()
}

func (m *Metrics) refusal(reason string) {
	if c, ok := m.refusals[reason]; ok {
		c.Inc()
		return
	}
	m.c.Refusals.WithLabelValues(m.site, m.psp, reason).Inc()
}

func (m *Metrics) idem(outcome string) {
	if i := slices.Index(allIdemOutcomes, outcome); i >= 0 {
		m.idems[i].Inc()
		return
	}
	m.c.Idempotency.WithLabelValues(m.site, m.psp, outcome).Inc()
}

func (m *Metrics) upstreamDuration(op psp.Operation, d time.Duration) {
	if int(op) < len(m.upstream) {
		l := &m.upstream[op]
		l.once.Do(func() { l.obs = m.c.UpstreamDuration.WithLabelValues(m.site, m.psp, op.String()) })
		l.obs.Observe(d.Seconds())
		return
	}
	m.c.UpstreamDuration.WithLabelValues(m.site, m.psp, op.String()).Observe(d.Seconds())
}

func (m *Metrics) capturedAmount(currency string, amount int64) {
	m.c.CapturedAmount.WithLabelValues(m.site, m.psp, currencyLabel(currency)).Add(float64(amount))
}

// currencyLabel keeps the currency label to ISO-4217-shaped values.
func currencyLabel(c string) string {
	if len(c) != 3 {
		return "other"
	}
	for i := 0; i < 3; i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return "other"
		}
	}
	return c
}
