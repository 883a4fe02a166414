package caddymodule

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
		*h.Idempotency != *want.Idempotency || *h.Store != *want.Store || *h.Ledger != *want.Ledger ||
		h.LookupTimeout != want.LookupTimeout || h.UpstreamTimeout != want.UpstreamTimeout {
		t.Errorf("got %+v %+v %+v %+v\nwant %+v %+v %+v %+v", h.Idempotency, h.Store, h.Ledger, h.MaxBody,
			want.Idempotency, want.Store, want.Ledger, want.MaxBody)
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
		{"unknown psp", "psp_guard {\npsp adyen\n}", `psp must be klarna or hellgate, not "adyen"`},
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
		{"unknown ledger option", "psp_guard {\nledger {\nsize 5\n}\n}", `unrecognized ledger subdirective "size"`},
		{"bad lookup timeout", "psp_guard {\nlookup_timeout -1s\n}", `lookup_timeout: invalid duration "-1s"`},
		{"block on value", "psp_guard {\nrules a.yaml {\nx\n}\n}", "rules takes no block"},
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
