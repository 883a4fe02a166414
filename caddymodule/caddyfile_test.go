package caddymodule

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`psp_guard {
		psp hellgate
		rules /etc/pspguard/rules.yaml
		mode shadow
		max_body 64KiB
		idempotency {
			capacity 5000
			ttl 1h
			require_key
		}
		store redis redis://:secret@127.0.0.1:6379/2 {
			timeout 250ms
			prefix shop
		}
		ledger {
			max_orders 2000
			order_ttl 48h
		}
		lookup_timeout 3s
		upstream_timeout 30s
		name eu
	}`)
	var h Handler
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := Handler{
		PSP: "hellgate", Rules: "/etc/pspguard/rules.yaml", Mode: "shadow", MaxBody: 64 * 1024,
		Idempotency:     &IdempotencyConfig{Capacity: 5000, TTL: caddy.Duration(3600e9), RequireKey: true},
		Store:           &StoreConfig{Type: "redis", URL: "redis://:secret@127.0.0.1:6379/2", Timeout: caddy.Duration(250e6), Prefix: "shop"},
		Ledger:          &LedgerConfig{MaxOrders: 2000, OrderTTL: caddy.Duration(48 * 3600e9)},
		LookupTimeout:   caddy.Duration(3e9),
		UpstreamTimeout: caddy.Duration(30e9),
	}
	if h.PSP != want.PSP || h.Rules != want.Rules || h.Mode != want.Mode || h.MaxBody != want.MaxBody ||
		*h.Idempotency != *want.Idempotency || !reflect.DeepEqual(h.Store, want.Store) || *h.Ledger != *want.Ledger ||
		h.LookupTimeout != want.LookupTimeout || h.UpstreamTimeout != want.UpstreamTimeout || h.Name != "eu" {
		t.Errorf("got %+v %+v %+v %+v\nwant %+v %+v %+v %+v", h.Idempotency, h.Store, h.Ledger, h.MaxBody,
			want.Idempotency, want.Store, want.Ledger, want.MaxBody)
	}
}

// The three Redis topologies, with every option of the block, and
// placeholders kept as written for the config to resolve when loaded.
func TestUnmarshalCaddyfileStoreRedis(t *testing.T) {
	for _, tc := range []struct {
		name, input string
		want        StoreConfig
	}{
		{"server", `store redis {env.REDIS_URL} {
			username {env.REDIS_USER}
			password {env.REDIS_PASSWORD}
			db 3
			tls
			ca_file /etc/redis/ca.pem
			cert_file /etc/redis/client.pem
			key_file /etc/redis/client-key.pem
		}`, StoreConfig{Type: "redis", URL: "{env.REDIS_URL}", Username: "{env.REDIS_USER}",
			Password: "{env.REDIS_PASSWORD}", DB: "3", TLS: true, CAFile: "/etc/redis/ca.pem",
			CertFile: "/etc/redis/client.pem", KeyFile: "/etc/redis/client-key.pem"}},
		{"sentinel", `store redis sentinel payments 10.0.0.1:26379 10.0.0.2:26379 10.0.0.3:26379 {
			timeout 300ms
			failover_fence 40s
			prefix shop
			password {env.REDIS_PASSWORD}
			sentinel_password {env.SENTINEL_PASSWORD}
			db {env.REDIS_DB}
		}`, StoreConfig{Type: "redis", Topology: "sentinel", MasterName: "payments",
			Addrs:   []string{"10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"},
			Timeout: caddy.Duration(300e6), FailoverFence: caddy.Duration(40e9), Prefix: "shop", Password: "{env.REDIS_PASSWORD}",
			SentinelPassword: "{env.SENTINEL_PASSWORD}", DB: "{env.REDIS_DB}"}},
		{"cluster", `store redis cluster 10.0.0.1:6379 10.0.0.2:6379 {
			username gateway
			password {env.REDIS_PASSWORD}
			tls
		}`, StoreConfig{Type: "redis", Topology: "cluster", Addrs: []string{"10.0.0.1:6379", "10.0.0.2:6379"},
			Username: "gateway", Password: "{env.REDIS_PASSWORD}", TLS: true}},
		{"cluster without block", `store redis cluster {env.REDIS_NODE}`,
			StoreConfig{Type: "redis", Topology: "cluster", Addrs: []string{"{env.REDIS_NODE}"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Handler
			if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("psp_guard {\n" + tc.input + "\n}")); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*h.Store, tc.want) {
				t.Errorf("got  %+v\nwant %+v", *h.Store, tc.want)
			}
		})
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, input, want string
	}{
		{"argument on directive", `psp_guard extra { rules r.yaml }`, "wrong argument count"},
		{"unknown subdirective", "psp_guard {\nrulez r.yaml\n}", `unrecognized subdirective "rulez"`},
		{"repeated subdirective", "psp_guard {\nrules a.yaml\nrules b.yaml\n}", "rules given more than once"},
		{"extra argument", "psp_guard {\nrules a.yaml b.yaml\n}", "wrong argument count"},
		{"missing value", "psp_guard {\nrules\n}", "rules needs a value"},
		{"unknown psp", "psp_guard {\npsp adyen\n}", `psp must be klarna, hellgate or stripe, not "adyen"`},
		{"unknown mode", "psp_guard {\nmode audit\n}", `mode must be enforce or shadow, not "audit"`},
		{"bad size", "psp_guard {\nmax_body lots\n}", `max_body: invalid size "lots"`},
		{"zero size", "psp_guard {\nmax_body 0\n}", `max_body: invalid size "0"`},
		{"bad capacity", "psp_guard {\nidempotency {\ncapacity -1\n}\n}", "capacity: must be a positive whole number"},
		{"bad ttl", "psp_guard {\nidempotency {\nttl forever\n}\n}", `ttl: invalid duration "forever"`},
		{"unknown idempotency option", "psp_guard {\nidempotency {\nsize 10\n}\n}", `unrecognized idempotency subdirective "size"`},
		{"repeated idempotency option", "psp_guard {\nidempotency {\nttl 1h\nttl 2h\n}\n}", "idempotency: ttl given more than once"},
		{"store redis without url", "psp_guard {\nstore redis\n}", "store redis needs a URL"},
		{"store memory with url", "psp_guard {\nstore memory redis://x\n}", "wrong argument count"},
		{"unknown store", "psp_guard {\nstore etcd\n}", `store must be memory or redis, not "etcd"`},
		{"unknown store option", "psp_guard {\nstore redis redis://x {\npool 5\n}\n}", `unrecognized store subdirective "pool"`},
		{"sentinel without master name", "psp_guard {\nstore redis sentinel\n}", "store redis sentinel needs the master name"},
		{"sentinel without addresses", "psp_guard {\nstore redis sentinel payments\n}", "needs at least one Sentinel address"},
		{"cluster without addresses", "psp_guard {\nstore redis cluster {\ntls\n}\n}", "store redis cluster needs at least one node address"},
		{"url with two arguments", "psp_guard {\nstore redis redis://a redis://b\n}", "wrong argument count"},
		{"db with cluster", "psp_guard {\nstore redis cluster 127.0.0.1:7000 {\ndb 1\n}\n}", "db is not for store redis cluster"},
		{"bad db", "psp_guard {\nstore redis redis://x {\ndb one\n}\n}", `db must be a whole number from 0, not "one"`},
		{"negative db", "psp_guard {\nstore redis redis://x {\ndb -1\n}\n}", `db must be a whole number from 0, not "-1"`},
		{"sentinel password without sentinel", "psp_guard {\nstore redis cluster 127.0.0.1:7000 {\nsentinel_password x\n}\n}", "sentinel_password is only for store redis sentinel"},
		{"tls with a value", "psp_guard {\nstore redis redis://x {\ntls yes\n}\n}", "wrong argument count"},
		{"password without value", "psp_guard {\nstore redis redis://x {\npassword\n}\n}", "password needs a value"},
		{"prefix with a hash tag", "psp_guard {\nstore redis cluster 127.0.0.1:7000 {\nprefix {pspguard}\n}\n}", `prefix "{pspguard}" must not contain { or }`},
		{"prefix with a brace beside a placeholder", "psp_guard {\nstore redis redis://x {\nprefix {env.SHOP}}\n}\n}", "must not contain { or }"},
		{"repeated store option", "psp_guard {\nstore redis redis://x {\nusername a\nusername b\n}\n}", "store: username given more than once"},
		{"unknown ledger option", "psp_guard {\nledger {\nsize 5\n}\n}", `unrecognized ledger subdirective "size"`},
		{"bad lookup timeout", "psp_guard {\nlookup_timeout -1s\n}", `lookup_timeout: invalid duration "-1s"`},
		{"block on value", "psp_guard {\nrules a.yaml {\nx\n}\n}", "rules takes no block"},
		{"empty name", "psp_guard {\nname \"\"\n}", "name must not be empty"},
		{"two names", "psp_guard {\nname eu na\n}", "wrong argument count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q; want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestCaddyfileAdapt compares the JSON each Caddyfile in
// testdata/caddyfile_adapt adapts to with the golden JSON after the
// "----------" separator. It also proves psp_guard orders itself before
// reverse_proxy without a global order option.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.SplitN(string(data), "----------", 2)
			if len(parts) != 2 {
				t.Fatalf("%s: no ---------- separator", f)
			}
			if !caddytest.CompareAdapt(t, f, parts[0], "caddyfile", strings.TrimSpace(parts[1])) {
				t.Fail()
			}
		})
	}
}

// A failover fence shorter than upstream_timeout would let a capture sent
// before a failover reach the PSP after the order was read again.
func TestFailoverFenceBounds(t *testing.T) {
	for _, tc := range []struct {
		input, want string // want: the error, or the fence
	}{
		{"upstream_timeout 30s\nstore redis redis://r:6379 {\nfailover_fence 10s\n}", "shorter than upstream_timeout"},
		{"upstream_timeout 30s\nstore redis redis://r:6379 {\nfailover_fence 30s\n}", "30s"},
		{"upstream_timeout 30s\nstore redis redis://r:6379", "40s"},
		{"store redis redis://r:6379", "2m10s"},
	} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("psp_guard {\nrules r.yaml\n" + tc.input + "\n}")); err != nil {
			t.Fatal(err)
		}
		h.setDefaults()
		err := h.Validate()
		switch {
		case strings.Contains(tc.want, " "):
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%q: Validate() = %v, want an error with %q", tc.input, err, tc.want)
			}
		default:
			if got := time.Duration(h.Store.FailoverFence).String(); got != tc.want {
				t.Errorf("%q: failover_fence %s, want %s", tc.input, got, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "fence") {
				t.Errorf("%q: Validate() = %v", tc.input, err)
			}
		}
	}
}
