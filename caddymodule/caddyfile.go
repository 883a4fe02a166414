package caddymodule

import (
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/pspguard/pspguard/internal/psp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("psp_guard", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("psp_guard", httpcaddyfile.Before, "reverse_proxy")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var g Handler
	if err := g.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	if g.Name == "" {
		g.Name = siteAddress(h)
	}
	return &g, nil
}

// siteAddress is the first address of the site block being adapted, the
// default name of its guards. Caddy's Helper keeps the block unexported and
// offers no accessor for its keys, so they are read by reflection; should a
// Caddy version rename the field, the name is left to its JSON default.
func siteAddress(h httpcaddyfile.Helper) string {
	block := reflect.ValueOf(h).FieldByName("parentBlock")
	if !block.IsValid() || block.Kind() != reflect.Struct {
		return ""
	}
	keys := block.FieldByName("Keys")
	if !keys.IsValid() || keys.Kind() != reflect.Slice || keys.Len() == 0 {
		return ""
	}
	text := keys.Index(0)
	if text.Kind() != reflect.Struct {
		return ""
	}
	if text = text.FieldByName("Text"); !text.IsValid() || text.Kind() != reflect.String {
		return ""
	}
	return text.String()
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	psp_guard {
//		psp             <name>   (one of psp.Names())
//		rules           <file>
//		mode            enforce|shadow
//		max_body        <size>
//		idempotency {
//			capacity    <n>
//			ttl         <duration>
//			require_key
//		}
//		store           memory
//		store           redis <url> | sentinel <master name> <addr>... | cluster <addr>... {
//			timeout     <duration>
//			failover_fence <duration>
//			prefix      <key prefix>
//			username    <ACL user name>
//			password    <password>
//			db          <number>   (not for cluster)
//			tls
//			ca_file     <PEM file>
//			cert_file   <PEM file>
//			key_file    <PEM file>
//			sentinel_password <password>   (sentinel only)
//		}
//
// Every store value may be a {env.NAME} placeholder, resolved when the
// config is loaded.
//
//		ledger {
//			max_orders  <n>
//			order_ttl   <duration>
//		}
//		lookup_timeout   <duration>
//		upstream_timeout <duration>
//		name             <site name>
//	}
//
// Every subdirective is optional but rules. Unknown, repeated or
// extra arguments are errors.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return d.Errf("psp_guard: %s given more than once", name)
		}
		seen[name] = true
		switch name {
		case "psp":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			if _, ok := psp.Lookup(v); !ok {
				return d.Errf("psp must be %s, not %q", psp.NamesText(), v)
			}
			h.PSP = v
		case "rules":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			h.Rules = v
		case "mode":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			if v != "enforce" && v != "shadow" {
				return d.Errf("mode must be enforce or shadow, not %q", v)
			}
			h.Mode = v
		case "max_body":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			n, err := humanize.ParseBytes(v)
			if err != nil || n == 0 || n > 1<<40 {
				return d.Errf("max_body: invalid size %q", v)
			}
			h.MaxBody = int64(n)
		case "idempotency":
			if err := h.unmarshalIdempotency(d); err != nil {
				return err
			}
		case "store":
			if err := h.unmarshalStore(d); err != nil {
				return err
			}
		case "ledger":
			if err := h.unmarshalLedger(d); err != nil {
				return err
			}
		case "lookup_timeout":
			v, err := durationArg(d)
			if err != nil {
				return err
			}
			h.LookupTimeout = v
		case "upstream_timeout":
			v, err := durationArg(d)
			if err != nil {
				return err
			}
			h.UpstreamTimeout = v
		case "name":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			if v == "" {
				return d.Errf("name must not be empty")
			}
			h.Name = v
		default:
			return d.Errf("unrecognized subdirective %q", name)
		}
	}
	return nil
}

func (h *Handler) unmarshalIdempotency(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	h.Idempotency = new(IdempotencyConfig)
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return d.Errf("idempotency: %s given more than once", name)
		}
		seen[name] = true
		switch name {
		case "capacity":
			n, err := positiveIntArg(d)
			if err != nil {
				return err
			}
			h.Idempotency.Capacity = n
		case "ttl":
			v, err := durationArg(d)
			if err != nil {
				return err
			}
			h.Idempotency.TTL = v
		case "require_key":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.Idempotency.RequireKey = true
		default:
			return d.Errf("unrecognized idempotency subdirective %q", name)
		}
	}
	return nil
}

func (h *Handler) unmarshalStore(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	h.Store = &StoreConfig{Type: d.Val()}
	switch h.Store.Type {
	case "memory":
		if d.NextArg() {
			return d.ArgErr()
		}
		if d.NextBlock(d.Nesting()) {
			return d.Errf("store memory takes no block")
		}
		return nil
	case "redis":
		if !d.NextArg() {
			return d.Errf("store redis needs a URL, e.g. redis://127.0.0.1:6379/0, or sentinel or cluster")
		}
		switch v := d.Val(); v {
		case topologySentinel:
			h.Store.Topology = v
			if !d.NextArg() {
				return d.Errf("store redis sentinel needs the master name, then the Sentinels' addresses")
			}
			h.Store.MasterName = d.Val()
			h.Store.Addrs = d.RemainingArgs()
			if len(h.Store.Addrs) == 0 {
				return d.Errf("store redis sentinel needs at least one Sentinel address after the master name")
			}
		case topologyCluster:
			h.Store.Topology = v
			h.Store.Addrs = d.RemainingArgs()
			if len(h.Store.Addrs) == 0 {
				return d.Errf("store redis cluster needs at least one node address")
			}
		default:
			h.Store.URL = v
			if d.NextArg() {
				return d.ArgErr()
			}
		}
	default:
		return d.Errf("store must be memory or redis, not %q", h.Store.Type)
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return d.Errf("store: %s given more than once", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "timeout":
			h.Store.Timeout, err = durationArg(d)
		case "failover_fence":
			h.Store.FailoverFence, err = durationArg(d)
		case "prefix":
			h.Store.Prefix, err = oneArg(d)
			if v := h.Store.Prefix; err == nil && strings.ContainsAny(envPlaceholders.ReplaceAllString(v, ""), "{}") {
				return d.Err(errPrefixBraces(v).Error())
			}
		case "username":
			h.Store.Username, err = oneArg(d)
		case "password":
			h.Store.Password, err = oneArg(d)
		case "db":
			if h.Store.Topology == topologyCluster {
				return d.Errf("db is not for store redis cluster: a Redis Cluster has database 0 only")
			}
			h.Store.DB, err = oneArg(d)
			if err == nil && !isPlaceholder(h.Store.DB) {
				if n, convErr := strconv.Atoi(h.Store.DB); convErr != nil || n < 0 {
					return d.Errf("db must be a whole number from 0, not %q", h.Store.DB)
				}
			}
		case "tls":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.Store.TLS = true
		case "ca_file":
			h.Store.CAFile, err = oneArg(d)
		case "cert_file":
			h.Store.CertFile, err = oneArg(d)
		case "key_file":
			h.Store.KeyFile, err = oneArg(d)
		case "sentinel_password":
			if h.Store.Topology != topologySentinel {
				return d.Errf("sentinel_password is only for store redis sentinel")
			}
			h.Store.SentinelPassword, err = oneArg(d)
		default:
			return d.Errf("unrecognized store subdirective %q", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// isPlaceholder tells whether a value is resolved later, when the config
// is loaded.
func isPlaceholder(v string) bool {
	return strings.HasPrefix(v, "{") && strings.HasSuffix(v, "}")
}

// envPlaceholders are the {env.NAME} placeholders in a value, resolved
// when the config is loaded (and checked again then).
var envPlaceholders = regexp.MustCompile(`\{env\.[^{}]+\}`)

func (h *Handler) unmarshalLedger(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	h.Ledger = new(LedgerConfig)
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return d.Errf("ledger: %s given more than once", name)
		}
		seen[name] = true
		switch name {
		case "max_orders":
			n, err := positiveIntArg(d)
			if err != nil {
				return err
			}
			h.Ledger.MaxOrders = n
		case "order_ttl":
			v, err := durationArg(d)
			if err != nil {
				return err
			}
			h.Ledger.OrderTTL = v
		default:
			return d.Errf("unrecognized ledger subdirective %q", name)
		}
	}
	return nil
}

// oneArg reads exactly one argument of the current subdirective.
func oneArg(d *caddyfile.Dispenser) (string, error) {
	name := d.Val()
	if !d.NextArg() {
		return "", d.Errf("%s needs a value", name)
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.ArgErr()
	}
	if d.NextBlock(d.Nesting()) {
		return "", d.Errf("%s takes no block", name)
	}
	return v, nil
}

func durationArg(d *caddyfile.Dispenser) (caddy.Duration, error) {
	name := d.Val()
	v, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil || dur <= 0 {
		return 0, d.Errf("%s: invalid duration %q", name, v)
	}
	return caddy.Duration(dur), nil
}

func positiveIntArg(d *caddyfile.Dispenser) (int, error) {
	name := d.Val()
	v, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, d.Errf("%s: must be a positive whole number, not %q", name, v)
	}
	return n, nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*Handler)(nil)
