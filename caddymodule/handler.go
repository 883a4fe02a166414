// Package caddymodule is the Caddy glue of pspguard: the psp_guard HTTP
// handler, its Caddyfile syntax, its metrics and its CLI commands. The
// request pipeline lives in internal/guard, policy in rules/, state in
// internal/ledger, internal/idempotency and internal/credentials, and
// knowledge of the PSPs' APIs in internal/psp; this package configures
// them, keeps their state across reloads, and puts the guard in Caddy's
// handler chain.
package caddymodule

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/pspguard/pspguard/internal/credentials"
	"github.com/pspguard/pspguard/internal/guard"
	"github.com/pspguard/pspguard/internal/idempotency"
	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/psp"
	"github.com/pspguard/pspguard/internal/stores"
	"github.com/pspguard/pspguard/rules"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults, documented on the fields they apply to.
const (
	defaultMaxBody       = 1 << 20
	defaultLookupTimeout = 10 * time.Second
	// defaultFenceMargin is what the failover fence adds to upstream_timeout
	// by default: time for a primary cut off from its replicas to stop
	// taking writes (Redis's min-replicas-max-lag, 10 s by default).
	defaultFenceMargin    = 10 * time.Second
	defaultUpstreamTimout = 2 * time.Minute
	defaultStoreTimeout   = 500 * time.Millisecond
	defaultSite           = "default"
)

// Handler is the psp_guard HTTP handler. It sits in front of reverse_proxy
// and checks guarded PSP requests before they reach the PSP: auto-capture
// against the compliance rules, captures against the ledger, and idempotency
// keys against the result cache. Everything else passes through untouched.
type Handler struct {
	// PSP dialect: the name of one of internal/psp's dialects (psp.Names);
	// psp.Default when empty.
	PSP string `json:"psp,omitempty"`

	// Path of the compliance rules file (YAML, version 1). Required. The
	// file is watched: a valid change takes effect within seconds, an
	// invalid one is refused and the last valid rules keep enforcing.
	Rules string `json:"rules,omitempty"`

	// Mode is "enforce" (default) or "shadow". In shadow mode nothing is
	// refused for policy reasons; would-be refusals are logged and counted.
	// Bad input is refused in both modes.
	Mode string `json:"mode,omitempty"`

	// MaxBody is the largest guarded request body accepted, in bytes.
	// Larger bodies get 413 REQUEST_TOO_LARGE. Default 1 MiB.
	MaxBody int64 `json:"max_body,omitempty"`

	// Idempotency configures the result cache.
	Idempotency *IdempotencyConfig `json:"idempotency,omitempty"`

	// Store selects where the ledger and the idempotency cache live.
	// Default: in memory, in this process.
	Store *StoreConfig `json:"store,omitempty"`

	// Ledger bounds the capture ledger.
	Ledger *LedgerConfig `json:"ledger,omitempty"`

	// LookupTimeout bounds the order read the gateway makes to learn an
	// order it has not seen. Default 10s; on timeout the capture is refused
	// with 503 (fail closed).
	LookupTimeout caddy.Duration `json:"lookup_timeout,omitempty"`

	// UpstreamTimeout bounds a guarded write once it is forwarded. The
	// write runs to completion even if the client goes away, so its result
	// can be recorded. Writes forwarded within the same short tick (a 64th
	// of the timeout, at most 50ms) share one deadline: a write may be cut
	// off up to one tick sooner, never later. Default 2m. With
	// LookupTimeout it sets how long an idempotency key's claim lives
	// (claimTTL): longer than a claimed request can run.
	UpstreamTimeout caddy.Duration `json:"upstream_timeout,omitempty"`

	// Name names this guard in metrics (the `site` label) and the decision
	// log, so one process serving several sites shows each. The Caddyfile
	// defaults it to the site block's first address; a JSON config without
	// it is site "default".
	Name string `json:"name,omitempty"`

	site    string // Name, or its default
	dialect psp.Dialect
	guard   *guard.Guard                 // the pipeline, built in Provision
	rules   *atomic.Pointer[rules.Rules] // the rules in force; swapped by the watcher
	watcher *rulesWatcher
	ledger  ledger.Store
	idem    idempotency.Store
	keyed   ledger.Keyed // a keyed capture's claim with its reservation, and their settlement
	// storeUp tells whether the shared store answered its last probe; nil
	// for the memory store, which always does.
	storeUp  func() bool
	poolKeys []string
	logger   *zap.Logger
	creds    credentials.Store // credentials the PSP accepted lately
	m        *handlerMetrics
	now      func() time.Time
}

// IdempotencyConfig configures the idempotency cache.
type IdempotencyConfig struct {
	// Capacity is how many completed results are kept (LRU). Default 100000.
	// Applies to the memory store.
	Capacity int `json:"capacity,omitempty"`
	// TTL is how long a completed result is replayed. Default 24h.
	TTL caddy.Duration `json:"ttl,omitempty"`
	// RequireKey refuses guarded writes that carry no idempotency key
	// (400 BAD_VALUE). Off by default.
	RequireKey bool `json:"require_key,omitempty"`
}

// StoreConfig selects the state store. Every string may be a {env.NAME}
// placeholder, resolved when the config is loaded: the config Caddy serves
// at /config/ and autosaves keeps the placeholder, not the value.
type StoreConfig struct {
	// Type is "memory" (default) or "redis".
	Type string `json:"type,omitempty"`
	// Topology of Redis: empty for one server (URL), "sentinel" (a primary
	// and replicas watched by Sentinel: MasterName and the Sentinels'
	// Addrs) or "cluster" (Redis Cluster: Addrs of any reachable nodes).
	Topology string `json:"topology,omitempty"`
	// URL of the Redis server (redis:// or rediss://, with password and db).
	URL string `json:"url,omitempty"`
	// MasterName is the name Sentinel knows the primary by.
	MasterName string `json:"master_name,omitempty"`
	// Addrs are host:port addresses of the Sentinels or Cluster nodes.
	Addrs []string `json:"addrs,omitempty"`
	// Timeout bounds every store operation; a slower store is treated as
	// down (503, fail closed). Default 500ms.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Prefix of every Redis key. Default "pspguard". No '{' or '}': each
	// order's keys carry their own hash tag, so that orders spread over a
	// Cluster's slots.
	Prefix string `json:"prefix,omitempty"`
	// Username and Password authenticate to Redis (ACL user names from
	// Redis 6; a password alone for requirepass).
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// DB is the database number; not for a Cluster, which has only 0.
	DB string `json:"db,omitempty"`
	// TLS connects over TLS; CAFile (PEM) replaces the system's trusted
	// roots, CertFile and KeyFile are a client certificate. Any of the
	// files turns TLS on.
	TLS      bool   `json:"tls,omitempty"`
	CAFile   string `json:"ca_file,omitempty"`
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
	// SentinelPassword authenticates to the Sentinels themselves.
	SentinelPassword string `json:"sentinel_password,omitempty"`
	// FailoverFence is how long after a Redis failover captures and order
	// changes of orders the new primary may lack writes of wait (503 with
	// Retry-After), so that every capture sent before the failover has
	// reached the PSP when the order is read again. Default upstream_timeout
	// + 10s; never less than upstream_timeout.
	FailoverFence caddy.Duration `json:"failover_fence,omitempty"`
}

// LedgerConfig bounds the capture ledger.
type LedgerConfig struct {
	// MaxOrders is how many orders the memory ledger holds at most; the
	// least recently used order without a capture in flight is evicted and
	// re-learned from the PSP when needed. Default 1000000.
	MaxOrders int `json:"max_orders,omitempty"`
	// OrderTTL is how long an order is kept in Redis after its last change
	// (the authorization lifetime). Default 720h (30 days).
	OrderTTL caddy.Duration `json:"order_ttl,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.psp_guard",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets defaults, loads the rules, and acquires the shared state.
func (h *Handler) Provision(ctx caddy.Context) error {
	if h.logger == nil {
		h.logger = ctx.Logger()
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.setDefaults()

	d, err := psp.ByName(h.PSP)
	if err != nil {
		return err
	}
	h.dialect = d
	h.site = h.Name
	if h.site == "" {
		h.site = defaultSite
	}

	m, err := provisionMetrics(ctx.GetMetricsRegistry(), h.site, d.Name())
	if err != nil {
		return err
	}
	h.m = m

	if h.Rules == "" {
		return errors.New("psp_guard: rules file is required")
	}
	r, err := rules.Load(h.Rules)
	if err != nil {
		m.rulesLoad(false)
		return fmt.Errorf("loading rules %s: %w", h.Rules, err)
	}
	h.rules = new(atomic.Pointer[rules.Rules])
	h.rules.Store(r)
	m.rulesLoad(true)
	h.logger.Info("rules loaded", zap.String("site", h.site), zap.String("file", h.Rules),
		zap.String("digest", r.Digest()), zap.Int("version", r.Version()))
	h.watcher = newRulesWatcher(h.Rules, r, rulesPollInterval, h.logger, m, func(nr *rules.Rules) {
		h.rules.Store(nr)
	})

	if err := h.acquireState(); err != nil {
		return err
	}
	var storeTimeout time.Duration
	if h.Store.Type != "memory" {
		// The memory stores never block: no deadline, which would cost a
		// timer per store call.
		storeTimeout = time.Duration(h.Store.Timeout)
	}
	h.guard = guard.New(guard.Config{
		Site:            h.site,
		Dialect:         d,
		Mode:            h.Mode,
		MaxBody:         h.MaxBody,
		RequireKey:      h.Idempotency.RequireKey,
		LookupTimeout:   time.Duration(h.LookupTimeout),
		UpstreamTimeout: time.Duration(h.UpstreamTimeout),
		StoreTimeout:    storeTimeout,
		Rules:           h.rules,
		Ledger:          h.ledger,
		Idempotency:     h.idem,
		Keyed:           h.keyed,
		Credentials:     h.creds,
		Metrics:         m.guard,
		Logger:          h.logger,
		Now:             h.now,
		UpstreamStatus:  upstreamStatus,
		ReadContext:     readContext,
	})
	liveGuards.add(h)
	return nil
}

func (h *Handler) setDefaults() {
	if h.PSP == "" {
		h.PSP = psp.Default
	}
	if h.Mode == "" {
		h.Mode = "enforce"
	}
	if h.MaxBody == 0 {
		h.MaxBody = defaultMaxBody
	}
	if h.Idempotency == nil {
		h.Idempotency = new(IdempotencyConfig)
	}
	if h.Idempotency.Capacity == 0 {
		h.Idempotency.Capacity = idempotency.DefaultCapacity
	}
	if h.Idempotency.TTL == 0 {
		h.Idempotency.TTL = caddy.Duration(idempotency.DefaultTTL)
	}
	if h.Store == nil {
		h.Store = new(StoreConfig)
	}
	if h.Store.Type == "" {
		h.Store.Type = "memory"
	}
	if h.Store.Timeout == 0 {
		h.Store.Timeout = caddy.Duration(defaultStoreTimeout)
	}
	if h.Store.Prefix == "" {
		h.Store.Prefix = stores.DefaultPrefix
	}
	if h.Ledger == nil {
		h.Ledger = new(LedgerConfig)
	}
	if h.Ledger.MaxOrders == 0 {
		h.Ledger.MaxOrders = ledger.DefaultMaxOrders
	}
	if h.Ledger.OrderTTL == 0 {
		h.Ledger.OrderTTL = caddy.Duration(ledger.DefaultOrderTTL)
	}
	if h.LookupTimeout == 0 {
		h.LookupTimeout = caddy.Duration(defaultLookupTimeout)
	}
	if h.UpstreamTimeout == 0 {
		h.UpstreamTimeout = caddy.Duration(defaultUpstreamTimout)
	}
	if h.Store.FailoverFence == 0 {
		h.Store.FailoverFence = caddy.Duration(time.Duration(h.UpstreamTimeout) + defaultFenceMargin)
	}
}

// Validate checks the provisioned configuration.
func (h *Handler) Validate() error {
	switch h.Mode {
	case "enforce", "shadow":
	default:
		return fmt.Errorf("psp_guard: mode must be enforce or shadow, not %q", h.Mode)
	}
	if h.MaxBody < 0 {
		return fmt.Errorf("psp_guard: max_body must be positive")
	}
	if h.Idempotency.Capacity < 0 || h.Idempotency.TTL < 0 {
		return fmt.Errorf("psp_guard: idempotency capacity and ttl must be positive")
	}
	if h.Ledger.MaxOrders < 0 || h.Ledger.OrderTTL < 0 {
		return fmt.Errorf("psp_guard: ledger max_orders and order_ttl must be positive")
	}
	if h.LookupTimeout < 0 || h.UpstreamTimeout < 0 || h.Store.Timeout < 0 {
		return fmt.Errorf("psp_guard: timeouts must be positive")
	}
	if h.Store.FailoverFence < h.UpstreamTimeout {
		return fmt.Errorf("psp_guard: store failover_fence %s is shorter than upstream_timeout %s: a capture sent before a failover could reach the PSP after the fence",
			time.Duration(h.Store.FailoverFence), time.Duration(h.UpstreamTimeout))
	}
	if !utf8.ValidString(h.site) || strings.TrimSpace(h.site) != h.site || h.site == "" {
		return fmt.Errorf("psp_guard: name %q must be valid UTF-8 without leading or trailing spaces", h.Name)
	}
	switch h.Store.Type {
	case "memory":
		if h.Store.URL != "" {
			return fmt.Errorf("psp_guard: store memory takes no URL")
		}
	case "redis":
		switch h.Store.Topology {
		case topologyServer:
			if h.Store.URL == "" {
				return fmt.Errorf("psp_guard: store redis needs a URL")
			}
		case topologySentinel, topologyCluster:
			if h.Store.URL != "" {
				return fmt.Errorf("psp_guard: store redis %s takes addresses, not a URL", h.Store.Topology)
			}
		default:
			return fmt.Errorf("psp_guard: store redis topology must be sentinel or cluster, not %q", h.Store.Topology)
		}
	default:
		return fmt.Errorf("psp_guard: store must be memory or redis, not %q", h.Store.Type)
	}
	return nil
}

// Cleanup stops the rules watcher and releases the shared state. It runs
// even after a failed Provision, so it releases only what was acquired.
func (h *Handler) Cleanup() error {
	liveGuards.remove(h)
	if h.watcher != nil {
		h.watcher.stop()
	}
	if h.guard != nil {
		h.guard.Close()
	}
	return h.releaseState()
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
