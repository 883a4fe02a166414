package caddymodule

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pspguard/pspguard/internal/guard"
)

// metrics are created once and registered on Caddy's registry at every
// Provision, so their values survive config reloads. Every family carries
// the guard's site (its `name`), so one process serving several sites shows
// each; the families the pipeline writes are internal/guard's, and those
// that describe a guard's state are read from the live guards at scrape
// time (see siteCollector).
type metricSet struct {
	guard        *guard.Collectors
	rulesReloads *prometheus.CounterVec
	sites        *siteCollector
}

var metrics = &metricSet{
	guard: guard.NewCollectors(),
	rulesReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "psp_guard", Name: "rules_reloads_total",
		Help: "Rules file loads by site and result (success, failure).",
	}, []string{"site", "result"}),
	sites: newSiteCollector(),
}

// collectors are what provisionMetrics registers.
func (ms *metricSet) collectors() []prometheus.Collector {
	g := ms.guard
	return []prometheus.Collector{g.Decisions, g.Refusals, g.Idempotency, g.UpstreamDuration,
		g.CapturedAmount, ms.rulesReloads, g.StoreDownForwarded, ms.sites}
}

// handlerMetrics are the series of one handler: the pipeline's, and the
// loads of its rules file.
type handlerMetrics struct {
	guard   *guard.Metrics
	reloads [2]prometheus.Counter // failure, success
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
	// Every counter series starts at zero, so that rate() and increase()
	// see the first decision, refusal or reload of each kind.
	m := &handlerMetrics{guard: metrics.guard.For(site, pspName)}
	m.reloads[0] = metrics.rulesReloads.WithLabelValues(site, "failure")
	m.reloads[1] = metrics.rulesReloads.WithLabelValues(site, "success")
	return m, nil
}

// rulesLoad counts a load of the rules file.
func (m *handlerMetrics) rulesLoad(ok bool) {
	if ok {
		m.reloads[1].Inc()
	} else {
		m.reloads[0].Inc()
	}
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
