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
	reasonAmountBelowCaptured    = "amount_below_captured"
	reasonOrderUnsettled         = "order_unsettled"
	reasonCapturesInFlight       = "captures_in_flight"
	reasonStoreFailover          = "store_failover"
	reasonNoSuchOrder            = "no_such_order"
	reasonLookupRefused          = "lookup_refused" // the PSP refused the caller's credentials for the order read
	reasonBadValue               = "bad_value"
	reasonRequestTooLarge        = "request_too_large"
	reasonUnsupportedMediaType   = "unsupported_media_type"
	reasonIdempotencyInUse       = "idempotency_key_in_use"
	reasonIdempotencyReused      = "idempotency_key_reused"
	reasonIdempotencyKeyRequired = "idempotency_key_required"
	reasonUnavailable            = "unavailable"
	reasonUpstreamError          = "upstream_error" // decision log only: the PSP failed or did not answer
)

// refusalReasons lists every value of the refusals_total "reason" label:
// the rules' reasons for refusing, then the gateway's own.
func refusalReasons() []string {
	var out []string
	for _, r := range rules.Reasons {
		if !r.Allows() {
			out = append(out, string(r))
		}
	}
	return append(out,
		reasonCaptureExceeds, reasonNotCapturable, reasonAlreadyCaptured, reasonCurrencyMismatch,
		reasonAmountBelowCaptured, reasonNoSuchOrder, reasonLookupRefused, reasonBadValue, reasonRequestTooLarge,
		reasonUnsupportedMediaType, reasonIdempotencyInUse, reasonIdempotencyReused,
		reasonIdempotencyKeyRequired, reasonUnavailable, reasonOrderUnsettled, reasonCapturesInFlight, reasonStoreFailover)
}

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
// Provision, so their values survive config reloads. Every family carries
// the guard's site (its `name`), so one process serving several sites shows
// each; the families that describe a guard's state are read from the live
// guards at scrape time (see siteCollector).
type metricSet struct {
	decisions    *prometheus.CounterVec
	refusals     *prometheus.CounterVec
	idempotency  *prometheus.CounterVec
	upstream     *prometheus.HistogramVec
	captured     *prometheus.CounterVec
	rulesReloads *prometheus.CounterVec
	storeDownFwd *prometheus.CounterVec
	sites        *siteCollector
}

var metrics = &metricSet{
	decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "psp_guard", Name: "decisions_total",
		Help: "Guarded and passed-through requests by site, PSP, operation and outcome (allowed, refused, shadow_refused, replayed, error, passthrough).",
	}, []string{"site", "psp", "operation", "outcome"}),
	refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "psp_guard", Name: "refusals_total",
		Help: "Requests the gateway answered itself or would have refused in shadow mode, by site, PSP and reason code.",
	}, []string{"site", "psp", "reason"}),
	idempotency: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "psp_guard", Name: "idempotency_total",
		Help: "Idempotency key outcomes by site and PSP: stored, replayed, in_flight, mismatch, abandoned, no_key.",
	}, []string{"site", "psp", "outcome"}),
	upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "psp_guard", Name: "upstream_duration_seconds",
		Help:    "Time the PSP took to answer guarded requests, by site, PSP and operation.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"site", "psp", "operation"}),
	captured: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "psp_guard", Name: "captured_amount_total",
		Help: "Amount captured through the gateway in minor units, by site, PSP and currency.",
	}, []string{"site", "psp", "currency"}),
	rulesReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "psp_guard", Name: "rules_reloads_total",
		Help: "Rules file loads by site and result (success, failure).",
	}, []string{"site", "result"}),
	storeDownFwd: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "psp_guard", Name: "store_down_forwarded_total",
		Help: "Allowed create-orders forwarded while the store did not answer, by site and PSP; the ledger learns these orders from the PSP before their first capture.",
	}, []string{"site", "psp"}),
	sites: newSiteCollector(),
}

// collectors are what provisionMetrics registers.
func (ms *metricSet) collectors() []prometheus.Collector {
	return []prometheus.Collector{ms.decisions, ms.refusals, ms.idempotency, ms.upstream,
		ms.captured, ms.rulesReloads, ms.storeDownFwd, ms.sites}
}

// handlerMetrics are the series one handler touches on every request,
// resolved once at Provision so the hot path does no label lookups.
type handlerMetrics struct {
	site, psp   string
	passthrough prometheus.Counter
	decisions   [][]prometheus.Counter        // by operation, then by allOutcomes
	refusals    map[string]prometheus.Counter // by reason
	idems       []prometheus.Counter          // by allIdemOutcomes
	reloads     [2]prometheus.Counter         // failure, success
	storeDown   prometheus.Counter            // create-orders forwarded with the store down
	upstream    []lazyObserver                // by operation
}

// lazyObserver resolves a histogram series on first use: an operation's
// latency series appears once the operation has been seen.
type lazyObserver struct {
	once sync.Once
	obs  prometheus.Observer
}

func provisionMetrics(reg *prometheus.Registry, site, pspName string) (*handlerMetrics, error) {
	if reg != nil {
		for _, c := range metrics.collectors() {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					return nil, err
				}
			}
		}
	}
	// Create every counter series at zero, so that rate() and increase()
	// see the first decision, refusal or reload of each kind, and keep the
	// ones the hot path touches.
	m := &handlerMetrics{site: site, psp: pspName, refusals: map[string]prometheus.Counter{}}
	for _, op := range psp.Operations() {
		byOutcome := make([]prometheus.Counter, len(allOutcomes))
		for i, o := range allOutcomes {
			byOutcome[i] = metrics.decisions.WithLabelValues(site, pspName, op.String(), o)
		}
		m.decisions = append(m.decisions, byOutcome)
	}
	m.upstream = make([]lazyObserver, len(m.decisions))
	for _, r := range refusalReasons() {
		m.refusals[r] = metrics.refusals.WithLabelValues(site, pspName, r)
	}
	for _, o := range allIdemOutcomes {
		m.idems = append(m.idems, metrics.idempotency.WithLabelValues(site, pspName, o))
	}
	m.reloads[0] = metrics.rulesReloads.WithLabelValues(site, "failure")
	m.reloads[1] = metrics.rulesReloads.WithLabelValues(site, "success")
	m.storeDown = metrics.storeDownFwd.WithLabelValues(site, pspName)
	m.passthrough = m.decisions[psp.OpOther][slices.Index(allOutcomes, outcomePassthrough)]
	return m, nil
}

func (m *handlerMetrics) decision(op psp.Operation, outcome string) {
	if i := slices.Index(allOutcomes, outcome); i >= 0 && int(op) < len(m.decisions) {
		m.decisions[op][i].Inc()
		return
	}
	metrics.decisions.WithLabelValues(m.site, m.psp, op.String(), outcome).Inc()
}

func (m *handlerMetrics) refusal(reason string) {
	if c, ok := m.refusals[reason]; ok {
		c.Inc()
		return
	}
	metrics.refusals.WithLabelValues(m.site, m.psp, reason).Inc()
}

func (m *handlerMetrics) idem(outcome string) {
	if i := slices.Index(allIdemOutcomes, outcome); i >= 0 {
		m.idems[i].Inc()
		return
	}
	metrics.idempotency.WithLabelValues(m.site, m.psp, outcome).Inc()
}

// rulesLoad counts a load of the rules file.
func (m *handlerMetrics) rulesLoad(ok bool) {
	if ok {
		m.reloads[1].Inc()
	} else {
		m.reloads[0].Inc()
	}
}

func (m *handlerMetrics) upstreamDuration(op psp.Operation, d time.Duration) {
	if int(op) < len(m.upstream) {
		l := &m.upstream[op]
		l.once.Do(func() { l.obs = metrics.upstream.WithLabelValues(m.site, m.psp, op.String()) })
		l.obs.Observe(d.Seconds())
		return
	}
	metrics.upstream.WithLabelValues(m.site, m.psp, op.String()).Observe(d.Seconds())
}

func (m *handlerMetrics) capturedAmount(currency string, amount int64) {
	metrics.captured.WithLabelValues(m.site, m.psp, currencyLabel(currency)).Add(float64(amount))
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

// liveGuards are the provisioned handlers. The state families are read
// from them at scrape time, so they show exactly the rules and stores of
// the sites that are loaded: a site removed by a reload disappears with
// its handler's Cleanup.
var liveGuards = &guardSet{hs: map[*Handler]struct{}{}}

type guardSet struct {
	mu sync.Mutex
	hs map[*Handler]struct{}
}

func (g *guardSet) add(h *Handler) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hs[h] = struct{}{}
}

func (g *guardSet) remove(h *Handler) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.hs, h)
}

func (g *guardSet) list() []*Handler {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*Handler, 0, len(g.hs))
	for h := range g.hs {
		out = append(out, h)
	}
	return out
}

// siteCollector reports, per site, the rules in force and the size of the
// stores, read from the live guards at scrape time.
type siteCollector struct {
	rulesInfo, orders, reservations, results, storeUp *prometheus.Desc
}

func newSiteCollector() *siteCollector {
	return &siteCollector{
		rulesInfo: prometheus.NewDesc("caddy_psp_guard_rules_info",
			"The rules in force, by site: 1 for the schema version and digest (first 12 hex of SHA-256).",
			[]string{"site", "version", "digest"}, nil),
		orders: prometheus.NewDesc("caddy_psp_guard_ledger_orders",
			"Orders held by the capture ledger, by site and store; memory only (a Redis ledger has no key that counts its orders).", []string{"site", "store"}, nil),
		reservations: prometheus.NewDesc("caddy_psp_guard_ledger_reservations",
			"Captures in flight or of unknown outcome holding a ledger reservation, by site and store; with Redis, those this instance forwarded.", []string{"site", "store"}, nil),
		results: prometheus.NewDesc("caddy_psp_guard_idempotency_results",
			"Completed results held by the idempotency cache, by site and store; memory only.", []string{"site", "store"}, nil),
		storeUp: prometheus.NewDesc("caddy_psp_guard_store_up",
			"1 if the site's store answered its last probe (every 2s), 0 if not, by site and store.", []string{"site", "store"}, nil),
	}
}

func (c *siteCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.rulesInfo
	ch <- c.orders
	ch <- c.reservations
	ch <- c.results
	ch <- c.storeUp
}

// Collect reports each site once, however many of its handlers are live:
// several psp_guard blocks of one site, or the old and new handler during a
// reload, which share their stores unless the store configuration changed.
func (c *siteCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	type siteStore struct{ site, store string }
	type siteOf struct {
		site string
		v    any // a rules digest or a store
	}
	seen := map[siteOf]bool{}
	first := func(site string, v any) bool {
		k := siteOf{site, v}
		if seen[k] {
			return false
		}
		seen[k] = true
		return true
	}
	var (
		orders, results = map[siteStore]float64{}, map[siteStore]float64{}
		reserved        = map[siteStore]float64{}
		up              = map[siteStore]float64{}
	)
	for _, h := range liveGuards.list() {
		if r := h.rules.Load(); r != nil && first(h.site, r.Digest()) {
			ch <- prometheus.MustNewConstMetric(c.rulesInfo, prometheus.GaugeValue, 1,
				h.site, strconv.Itoa(r.Version()), shortDigest(r.Digest()))
		}
		ss := siteStore{h.site, h.Store.Type}
		// A site is up when every store it uses answers.
		if v, ok := up[ss]; !ok || v == 1 {
			up[ss] = 1
			if h.storeUp != nil && !h.storeUp() {
				up[ss] = 0
			}
		}
		if first(h.site, h.ledger) {
			// A Redis ledger counts no orders (-1) and this process's
			// reservations.
			if o, r, err := h.ledger.Stats(ctx); err == nil {
				if o >= 0 {
					orders[ss] += float64(o)
				}
				reserved[ss] += float64(r)
			}
		}
		if first(h.site, h.idem) {
			// A Redis cache counts no results (-1).
			if n, err := h.idem.Len(ctx); err == nil && n >= 0 {
				results[ss] += float64(n)
			}
		}
	}
	for ss, v := range orders {
		ch <- prometheus.MustNewConstMetric(c.orders, prometheus.GaugeValue, v, ss.site, ss.store)
	}
	for ss, v := range reserved {
		ch <- prometheus.MustNewConstMetric(c.reservations, prometheus.GaugeValue, v, ss.site, ss.store)
	}
	for ss, v := range results {
		ch <- prometheus.MustNewConstMetric(c.results, prometheus.GaugeValue, v, ss.site, ss.store)
	}
	for ss, v := range up {
		ch <- prometheus.MustNewConstMetric(c.storeUp, prometheus.GaugeValue, v, ss.site, ss.store)
	}
}

// shortDigest is the first 12 hex digits of a rules digest, as rules_info
// and the decision log show it.
func shortDigest(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}
