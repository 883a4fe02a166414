package caddymodule

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pspguard/pspguard/internal/psp"
	"github.com/pspguard/pspguard/rules"
)

// Decision outcomes, the values of the decisions_total "outcome" label.
const (
	outcomeAllowed       = "allowed"
	outcomeRefused       = "refused"
	outcomeShadowRefused = "shadow_refused"
	outcomeReplayed      = "replayed"
	outcomeError         = "error"
	outcomePassthrough   = "passthrough"
)

var allOutcomes = []string{outcomeAllowed, outcomeRefused, outcomeShadowRefused, outcomeReplayed, outcomeError, outcomePassthrough}

// Refusal reasons of the gateway's own (rules reasons come from rules/).
const (
	reasonCaptureExceeds         = "capture_exceeds"
	reasonNotCapturable          = "capture_not_capturable"
	reasonAlreadyCaptured        = "capture_already_captured"
	reasonCurrencyMismatch       = "capture_currency_mismatch"
	reasonNoSuchOrder            = "no_such_order"
	reasonBadValue               = "bad_value"
	reasonRequestTooLarge        = "request_too_large"
	reasonUnsupportedMediaType   = "unsupported_media_type"
	reasonIdempotencyInUse       = "idempotency_key_in_use"
	reasonIdempotencyReused      = "idempotency_key_reused"
	reasonIdempotencyKeyRequired = "idempotency_key_required"
	reasonUnavailable            = "unavailable"
	reasonUpstreamError          = "upstream_error" // decision log only: the PSP failed or did not answer
)

// Idempotency outcomes, the values of the idempotency_total "outcome" label.
const (
	idemStored    = "stored"    // a PSP answer was stored for replay
	idemReplayed  = "replayed"  // answered from the cache
	idemInFlight  = "in_flight" // 409: the same key is being processed
	idemMismatch  = "mismatch"  // 422: the same key with another request
	idemAbandoned = "abandoned" // not stored (gateway refusal, 5xx, transport failure)
	idemNoKey     = "no_key"    // a guarded write without a key
)

var allIdemOutcomes = []string{idemStored, idemReplayed, idemInFlight, idemMismatch, idemAbandoned, idemNoKey}

// metrics are created once and registered on Caddy's registry at every
// Provision, so their values survive config reloads.
type metricSet struct {
	decisions    *prometheus.CounterVec
	refusals     *prometheus.CounterVec
	idempotency  *prometheus.CounterVec
	upstream     *prometheus.HistogramVec
	captured     *prometheus.CounterVec
	rulesReloads *prometheus.CounterVec
	rulesInfo    *prometheus.GaugeVec
	stores       *storeCollector

	mu          sync.Mutex
	activeRules []string // labels of the active rules series
}

var metrics = &metricSet{
	decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "psp_guard", Name: "decisions_total",
		Help: "Guarded and passed-through requests by PSP, operation and outcome (allowed, refused, shadow_refused, replayed, error, passthrough).",
	}, []string{"psp", "operation", "outcome"}),
	refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "psp_guard", Name: "refusals_total",
		Help: "Requests the gateway answered itself or would have refused in shadow mode, by PSP and reason code.",
	}, []string{"psp", "reason"}),
	idempotency: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "psp_guard", Name: "idempotency_total",
		Help: "Idempotency key outcomes by PSP: stored, replayed, in_flight, mismatch, abandoned, no_key.",
	}, []string{"psp", "outcome"}),
	upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "psp_guard", Name: "upstream_duration_seconds",
		Help:    "Time the PSP took to answer guarded requests, by PSP and operation.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"psp", "operation"}),
	captured: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "psp_guard", Name: "captured_amount_total",
		Help: "Amount captured through the gateway in minor units, by PSP and currency.",
	}, []string{"psp", "currency"}),
	rulesReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "psp_guard", Name: "rules_reloads_total",
		Help: "Rules file loads by result (success, failure).",
	}, []string{"result"}),
	rulesInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "psp_guard", Name: "rules_info",
		Help: "The active rules: 1 for the schema version and digest (first 12 hex of SHA-256) in force.",
	}, []string{"version", "digest"}),
	stores: newStoreCollector(),
}

// handlerMetrics are the series one handler touches on every request,
// resolved once at Provision so the hot path does no label lookups.
type handlerMetrics struct {
	psp         string
	passthrough prometheus.Counter
	decisions   [][]prometheus.Counter // by operation, then by allOutcomes
	idems       []prometheus.Counter   // by allIdemOutcomes
	upstream    []lazyObserver         // by operation
}

// lazyObserver resolves a histogram series on first use: an operation's
// latency series appears once the operation has been seen.
type lazyObserver struct {
	once sync.Once
	obs  prometheus.Observer
}

func provisionMetrics(reg *prometheus.Registry, pspName string) (*handlerMetrics, error) {
	if reg != nil {
		for _, c := range []prometheus.Collector{
			metrics.decisions, metrics.refusals, metrics.idempotency, metrics.upstream,
			metrics.captured, metrics.rulesReloads, metrics.rulesInfo, metrics.stores,
		} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					return nil, err
				}
			}
		}
	}
	// Create the series dashboards and alerts expect to see at zero, and
	// keep the ones the hot path touches.
	m := &handlerMetrics{psp: pspName}
	for _, op := range psp.Operations() {
		byOutcome := make([]prometheus.Counter, len(allOutcomes))
		for i, o := range allOutcomes {
			byOutcome[i] = metrics.decisions.WithLabelValues(pspName, op.String(), o)
		}
		m.decisions = append(m.decisions, byOutcome)
	}
	m.upstream = make([]lazyObserver, len(m.decisions))
	for _, r := range []string{"success", "failure"} {
		metrics.rulesReloads.WithLabelValues(r)
	}
	for _, o := range allIdemOutcomes {
		m.idems = append(m.idems, metrics.idempotency.WithLabelValues(pspName, o))
	}
	m.passthrough = m.decisions[psp.OpOther][slices.Index(allOutcomes, outcomePassthrough)]
	return m, nil
}

func (m *handlerMetrics) decision(op psp.Operation, outcome string) {
	if i := slices.Index(allOutcomes, outcome); i >= 0 && int(op) < len(m.decisions) {
		m.decisions[op][i].Inc()
		return
	}
	metrics.decisions.WithLabelValues(m.psp, op.String(), outcome).Inc()
}

func (m *handlerMetrics) refusal(reason string) {
	metrics.refusals.WithLabelValues(m.psp, reason).Inc()
}

func (m *handlerMetrics) idem(outcome string) {
	if i := slices.Index(allIdemOutcomes, outcome); i >= 0 {
		m.idems[i].Inc()
		return
	}
	metrics.idempotency.WithLabelValues(m.psp, outcome).Inc()
}

func (m *handlerMetrics) upstreamDuration(op psp.Operation, d time.Duration) {
	if int(op) < len(m.upstream) {
		l := &m.upstream[op]
		l.once.Do(func() { l.obs = metrics.upstream.WithLabelValues(m.psp, op.String()) })
		l.obs.Observe(d.Seconds())
		return
	}
	metrics.upstream.WithLabelValues(m.psp, op.String()).Observe(d.Seconds())
}

func (m *handlerMetrics) capturedAmount(currency string, amount int64) {
	metrics.captured.WithLabelValues(m.psp, currencyLabel(currency)).Add(float64(amount))
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

// setRulesInfo makes r the one active rules series: the previous rules'
// series is removed, so the gauge always shows exactly what is in force.
func (ms *metricSet) setRulesInfo(r *rules.Rules) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	digest := r.Digest()
	if len(digest) > 12 {
		digest = digest[:12]
	}
	labels := []string{strconv.Itoa(r.Version()), digest}
	if ms.activeRules != nil && (ms.activeRules[0] != labels[0] || ms.activeRules[1] != labels[1]) {
		ms.rulesInfo.DeleteLabelValues(ms.activeRules...)
	}
	ms.activeRules = labels
	ms.rulesInfo.WithLabelValues(labels...).Set(1)
}

// storeCollector reports the size of the live stores at scrape time.
type storeCollector struct {
	orders, reservations, results *prometheus.Desc
}

func newStoreCollector() *storeCollector {
	return &storeCollector{
		orders: prometheus.NewDesc("caddy_psp_guard_ledger_orders",
			"Orders held by the capture ledger, by store (memory, redis).", []string{"store"}, nil),
		reservations: prometheus.NewDesc("caddy_psp_guard_ledger_reservations",
			"Captures in flight or of unknown outcome holding a ledger reservation, by store.", []string{"store"}, nil),
		results: prometheus.NewDesc("caddy_psp_guard_idempotency_results",
			"Completed results held by the idempotency cache, by store.", []string{"store"}, nil),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.orders
	ch <- c.reservations
	ch <- c.results
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s := stats.sizes(ctx)
	for kind, v := range s.orders {
		ch <- prometheus.MustNewConstMetric(c.orders, prometheus.GaugeValue, v, kind)
	}
	for kind, v := range s.reservations {
		ch <- prometheus.MustNewConstMetric(c.reservations, prometheus.GaugeValue, v, kind)
	}
	for kind, v := range s.results {
		ch <- prometheus.MustNewConstMetric(c.results, prometheus.GaugeValue, v, kind)
	}
}
