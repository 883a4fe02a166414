package caddymodule

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// purchaseRoute is one Klarna route through which an order can be created
// already captured, with its flag spelled to ask for capture at purchase
// and not to.
type purchaseRoute struct {
	name       string
	op         string                                   // the gateway's operation and the simulator's, klarna.<op>
	path       func(g *gateway, merchant string) string // a fresh path for the merchant
	body       func(capture bool) string
	success    int
	linesKnown bool // the body carries order lines (else they may be physical)
}

func purchaseRoutes() []purchaseRoute {
	checkoutBody := func(capture bool) string {
		return strings.Replace(orderBody(1000, false, ""), `"auto_capture": false`, fmt.Sprintf(`"options": {"auto_capture": %t}`, capture), 1)
	}
	return []purchaseRoute{
		{name: "Payments", op: "create_order", success: 200, linesKnown: true,
			path: func(*gateway, string) string { return "/payments/v1/authorizations/" + randToken() + "/order" },
			body: func(capture bool) string { return orderBody(1000, capture, "") }},
		{name: "Customer Token", op: "create_token_order", success: 200, linesKnown: true,
			path: func(*gateway, string) string { return "/customer-token/v1/tokens/" + randToken() + "/order" },
			body: func(capture bool) string { return orderBody(1000, capture, "") }},
		{name: "Checkout v3 create", op: "create_checkout_order", success: 201, linesKnown: true,
			path: func(*gateway, string) string { return "/checkout/v3/orders" },
			body: checkoutBody},
		{name: "Checkout v3 update", op: "update_checkout_order", success: 200, linesKnown: true,
			path: func(g *gateway, merchant string) string { return "/checkout/v3/orders/" + g.checkoutOrder(merchant) },
			body: checkoutBody},
		{name: "HPP session", op: "create_hpp_session", success: 201,
			path: func(*gateway, string) string { return "/hpp/v1/sessions" },
			body: func(capture bool) string {
				return hppBody(map[bool]string{true: "CAPTURE_ORDER", false: "PLACE_ORDER"}[capture])
			}},
		{name: "network authorize", op: "authorize_payment", success: 200,
			path: func(*gateway, string) string { return "/v2/payment/authorize" },
			body: func(capture bool) string { return authorizeBody(map[bool]string{true: "NOW", false: "LATER"}[capture]) }},
	}
}

// hppBody is a Hosted Payment Page session body; mode "" leaves
// place_order_mode out.
func hppBody(mode string) string {
	opts := ""
	if mode != "" {
		opts = `,"place_order_mode":"` + mode + `"`
	}
	return `{"payment_session_url":"https://api.klarna.com/payments/v1/sessions/0b1d9815-165e-42e2-8867-35bc03789e00",` +
		`"merchant_urls":{"success":"https://shop.example/ok","cancel":"https://shop.example/cancel"},` +
		`"options":{"payment_method_categories":["klarna"]` + opts + `}}`
}

// authorizeBody is a network API authorization; capture "" leaves the
// member out.
func authorizeBody(capture string) string {
	c := ""
	if capture != "" {
		c = `,"capture":"` + capture + `"`
	}
	return `{"currency":"SEK","request_payment_transaction":{"amount":1000,"payment_transaction_reference":"ref-1"` + c + `}}`
}

// checkoutOrder creates a Checkout v3 order without auto-capture through
// the gateway and returns its id.
func (g *gateway) checkoutOrder(merchant string) string {
	g.t.Helper()
	resp, body := g.do("POST", "/checkout/v3/orders", merchant, strings.Replace(orderBody(1000, false, ""), `"auto_capture": false`, `"options": {"auto_capture": false}`, 1))
	var out struct {
		OrderID string `json:"order_id"`
	}
	if err := json.Unmarshal([]byte(body), &out); resp.StatusCode != 201 || err != nil || out.OrderID == "" {
		g.t.Fatalf("create checkout order: %d %s", resp.StatusCode, body)
	}
	return out.OrderID
}

// Every road to capture at purchase is held to the rules, as Payments
// create-order is: refused for a physical-goods merchant before the PSP
// sees it, allowed for allowed merchants, always allowed without the flag,
// and counted under its own operation.
func TestCaptureAtPurchaseRoutes(t *testing.T) {
	g := newGateway(t, exampleRules, "")
	for _, rt := range purchaseRoutes() {
		t.Run(rt.name, func(t *testing.T) {
			refused := fmt.Sprintf(`caddy_psp_guard_decisions_total{operation=%q,outcome="refused",psp="klarna"}`, rt.op)
			allowed := fmt.Sprintf(`caddy_psp_guard_decisions_total{operation=%q,outcome="allowed",psp="klarna"}`, rt.op)
			m := g.scrape()
			refusedBefore, allowedBefore := scrapeValue(m, refused), scrapeValue(m, allowed)
			send := func(merchant string, capture bool, want int, reason string) {
				t.Helper()
				path := rt.path(g, merchant)
				before := g.pspRequests("klarna." + rt.op)
				resp, body := g.do("POST", path, merchant, rt.body(capture))
				if resp.StatusCode != want {
					t.Fatalf("%s, capture %v: %d %s; want %d", merchant, capture, resp.StatusCode, body, want)
				}
				reached := g.pspRequests("klarna."+rt.op) - before
				if want != 403 {
					if reached != 1 {
						t.Fatalf("%s, capture %v: the PSP received %d requests, want 1", merchant, capture, reached)
					}
					return
				}
				if code, msg := klarnaError(t, body); code != "AUTO_CAPTURE_NOT_ALLOWED" || !strings.Contains(msg, reason) {
					t.Fatalf("%s: refusal %s %q, want AUTO_CAPTURE_NOT_ALLOWED naming %q", merchant, code, msg, reason)
				}
				if reached != 0 {
					t.Fatalf("%s: a refused capture at purchase reached the PSP", merchant)
				}
			}
			send("shoeshop", true, 403, `"physical_goods"`)
			send("shoeshop", false, rt.success, "")
			send("approvedshop", true, rt.success, "")
			if rt.linesKnown {
				send("digitalshop", true, rt.success, "")
			} else {
				// The order lines are not in the request: they may be physical.
				send("digitalshop", true, 403, "no order lines")
			}
			m = g.scrape()
			wantRefused := 1.0
			if !rt.linesKnown {
				wantRefused = 2
			}
			if r, a := scrapeValue(m, refused)-refusedBefore, scrapeValue(m, allowed)-allowedBefore; r != wantRefused || a != 4-wantRefused {
				t.Fatalf("decisions for %s: %v refused, %v allowed; want %v and %v", rt.op, r, a, wantRefused, 4-wantRefused)
			}
		})
	}
}

// A Customer Token order is learned by the ledger from its answer, as a
// Payments order is: its first capture needs no order read.
func TestCustomerTokenOrderLearned(t *testing.T) {
	g := newGateway(t, exampleRules, "")
	resp, body := g.do("POST", "/customer-token/v1/tokens/"+randToken()+"/order", "shoeshop", orderBody(1000, false, ""))
	var out struct {
		OrderID string `json:"order_id"`
	}
	if err := json.Unmarshal([]byte(body), &out); resp.StatusCode != 200 || err != nil {
		t.Fatalf("token order: %d %s", resp.StatusCode, body)
	}
	reads := g.pspRequests("klarna.get_order")
	resp, body = g.capture("shoeshop", out.OrderID, 1001)
	if code, msg := klarnaError(t, body); resp.StatusCode != 403 || code != "CAPTURE_NOT_ALLOWED" ||
		msg != "captured_amount 1001 exceeds the remaining authorized amount 1000" {
		t.Fatalf("over-capture: %d %s", resp.StatusCode, body)
	}
	if g.pspRequests("klarna.get_order") != reads || g.pspRequests("klarna.capture") != 0 {
		t.Fatal("the gateway read the order or the PSP received the capture")
	}
	if resp, body := g.capture("shoeshop", out.OrderID, 1000); resp.StatusCode != 201 {
		t.Fatalf("capture: %d %s", resp.StatusCode, body)
	}
	if o := g.sim.Stats().Orders[out.OrderID]; o.CapturedAmount != 1000 {
		t.Fatalf("the PSP captured %d, want 1000", o.CapturedAmount)
	}
}

// In shadow mode every route forwards what the rules would refuse, and
// counts it.
func TestCaptureAtPurchaseRoutesShadow(t *testing.T) {
	g := newGateway(t, exampleRules, "mode shadow")
	for _, rt := range purchaseRoutes() {
		t.Run(rt.name, func(t *testing.T) {
			series := fmt.Sprintf(`caddy_psp_guard_decisions_total{operation=%q,outcome="shadow_refused",psp="klarna"}`, rt.op)
			reason := `caddy_psp_guard_refusals_total{psp="klarna",reason="category_not_allowed"}`
			m := g.scrape()
			shadowBefore, reasonBefore := scrapeValue(m, series), scrapeValue(m, reason)
			before := g.pspRequests("klarna." + rt.op)
			if resp, body := g.do("POST", rt.path(g, "shoeshop"), "shoeshop", rt.body(true)); resp.StatusCode != rt.success {
				t.Fatalf("shadow: %d %s", resp.StatusCode, body)
			}
			if g.pspRequests("klarna."+rt.op) != before+1 {
				t.Fatal("the PSP did not receive the request")
			}
			m = g.scrape()
			if scrapeValue(m, series) != shadowBefore+1 || scrapeValue(m, reason) != reasonBefore+1 {
				t.Fatalf("shadow refusal not counted: %s %v -> %v", series, shadowBefore, scrapeValue(m, series))
			}
		})
	}
}

// Ambiguous bodies on the new routes are refused before the PSP, whatever
// the merchant: shoeshop may not capture at purchase, so a body the gateway
// misread as not asking for it would reach the PSP and fail the test.
func TestHazardCaptureAtPurchaseRoutes(t *testing.T) {
	g := newGateway(t, exampleRules, "")
	token := func() string { return "/customer-token/v1/tokens/" + randToken() + "/order" }
	update := "/checkout/v3/orders/" + g.checkoutOrder("shoeshop")
	const hpp, auth = "/hpp/v1/sessions", "/v2/payment/authorize"
	hppWith := func(opts string) string {
		return `{"payment_session_url":"https://api.klarna.com/payments/v1/sessions/x","options":` + opts + `}`
	}
	authWith := func(tx string) string { return `{"currency":"SEK","request_payment_transaction":` + tx + `}` }

	rows := []hazard{
		{name: "token: duplicate auto_capture", path: token(), body: createBody(`,"auto_capture":false,"auto_capture":true`), status: 400, code: "BAD_VALUE", field: "auto_capture"},
		{name: "token: auto_capture as string", path: token(), body: createBody(`,"auto_capture":"true"`), status: 400, code: "BAD_VALUE", field: "auto_capture"},
		{name: "token: Auto_Capture", path: token(), body: createBody(`,"Auto_Capture":true`), status: 400, code: "BAD_VALUE", field: "auto_capture"},
		{name: "token: escaped name read as auto_capture", path: token(), body: createBody(`,"auto\u005fcapture":true`), status: 403, code: "AUTO_CAPTURE_NOT_ALLOWED", field: "auto_capture"},
		{name: "token: trailing object", path: token(), body: createBody(`,"auto_capture":false`) + `{"auto_capture":true}`, status: 400, code: "BAD_VALUE", field: "after the JSON object"},
		{name: "update: duplicate options.auto_capture", path: update, body: createBody(`,"options":{"auto_capture":false,"auto_capture":true}`), status: 400, code: "BAD_VALUE", field: "options"},
		{name: "update: duplicate options", path: update, body: createBody(`,"options":{"auto_capture":false},"options":{"auto_capture":true}`), status: 400, code: "BAD_VALUE", field: "options"},
		{name: "update: options.auto_capture as 1", path: update, body: createBody(`,"options":{"auto_capture":1}`), status: 400, code: "BAD_VALUE", field: "options.auto_capture"},
		{name: "update: order_amount as string", path: update, body: strings.Replace(createBody(`,"options":{"auto_capture":true}`), `"order_amount":1000`, `"order_amount":"1000"`, 1), status: 400, code: "BAD_VALUE", field: "order_amount"},
		{name: "HPP: duplicate place_order_mode", path: hpp, body: hppWith(`{"place_order_mode":"PLACE_ORDER","place_order_mode":"CAPTURE_ORDER"}`), status: 400, code: "BAD_VALUE", field: "place_order_mode"},
		{name: "HPP: duplicate options", path: hpp, body: hppWith(`{"place_order_mode":"PLACE_ORDER"},"options":{"place_order_mode":"CAPTURE_ORDER"}`), status: 400, code: "BAD_VALUE", field: "options"},
		{name: "HPP: place_order_mode in lower case", path: hpp, body: hppWith(`{"place_order_mode":"capture_order"}`), status: 400, code: "BAD_VALUE", field: "options.place_order_mode"},
		{name: "HPP: place_order_mode with a space", path: hpp, body: hppWith(`{"place_order_mode":"CAPTURE_ORDER "}`), status: 400, code: "BAD_VALUE", field: "options.place_order_mode"},
		{name: "HPP: unknown place_order_mode", path: hpp, body: hppWith(`{"place_order_mode":"AUTO_CAPTURE"}`), status: 400, code: "BAD_VALUE", field: "options.place_order_mode"},
		{name: "HPP: place_order_mode not a string", path: hpp, body: hppWith(`{"place_order_mode":true}`), status: 400, code: "BAD_VALUE", field: "options.place_order_mode"},
		{name: "HPP: place_order_mode null", path: hpp, body: hppWith(`{"place_order_mode":null}`), status: 400, code: "BAD_VALUE", field: "options.place_order_mode"},
		{name: "HPP: Place_Order_Mode", path: hpp, body: hppWith(`{"Place_Order_Mode":"CAPTURE_ORDER"}`), status: 400, code: "BAD_VALUE", field: "options.place_order_mode"},
		{name: "HPP: placeOrderMode", path: hpp, body: hppWith(`{"placeOrderMode":"CAPTURE_ORDER"}`), status: 400, code: "BAD_VALUE", field: "options.place_order_mode"},
		{name: "HPP: options not an object", path: hpp, body: hppWith(`"CAPTURE_ORDER"`), status: 400, code: "BAD_VALUE", field: "options"},
		{name: "HPP: escaped value read as CAPTURE_ORDER", path: hpp, body: hppWith(`{"place_order_mode":"CAPTURE\u005fORDER"}`), status: 403, code: "AUTO_CAPTURE_NOT_ALLOWED", field: "physical_goods"},
		{name: "HPP: trailing object", path: hpp, body: hppWith(`{"place_order_mode":"PLACE_ORDER"}`) + `{"options":{"place_order_mode":"CAPTURE_ORDER"}}`, status: 400, code: "BAD_VALUE", field: "after the JSON object"},
		{name: "network: duplicate capture", path: auth, body: authWith(`{"amount":1000,"capture":"LATER","capture":"NOW"}`), status: 400, code: "BAD_VALUE", field: "capture"},
		{name: "network: duplicate transaction", path: auth, body: authWith(`{"amount":1000,"capture":"LATER"},"request_payment_transaction":{"amount":1000,"capture":"NOW"}`), status: 400, code: "BAD_VALUE", field: "request_payment_transaction"},
		{name: "network: capture in lower case", path: auth, body: authWith(`{"amount":1000,"capture":"now"}`), status: 400, code: "BAD_VALUE", field: "request_payment_transaction.capture"},
		{name: "network: capture as boolean", path: auth, body: authWith(`{"amount":1000,"capture":true}`), status: 400, code: "BAD_VALUE", field: "request_payment_transaction.capture"},
		{name: "network: unknown capture", path: auth, body: authWith(`{"amount":1000,"capture":"IMMEDIATELY"}`), status: 400, code: "BAD_VALUE", field: "request_payment_transaction.capture"},
		{name: "network: Capture", path: auth, body: authWith(`{"amount":1000,"Capture":"NOW"}`), status: 400, code: "BAD_VALUE", field: "request_payment_transaction.capture"},
		{name: "network: transaction not an object", path: auth, body: authWith(`"NOW"`), status: 400, code: "BAD_VALUE", field: "request_payment_transaction"},
		{name: "network: capture NOW", path: auth, body: authWith(`{"amount":1000,"capture":"NOW"}`), status: 403, code: "AUTO_CAPTURE_NOT_ALLOWED", field: "physical_goods"},
	}
	// Paths under the new prefixes must be canonical too.
	for _, p := range []struct{ name, path, body string }{
		{"token: trailing slash", token() + "/", createBody(`,"auto_capture":true`)},
		{"token: upper-case segment", strings.Replace(token(), "/order", "/ORDER", 1), createBody(`,"auto_capture":true`)},
		{"token: upper-case prefix", strings.Replace(token(), "/customer-token/", "/Customer-Token/", 1), createBody(`,"auto_capture":true`)},
		{"update: json suffix", update + ".json", createBody(`,"options":{"auto_capture":true}`)},
		{"update: order id with shortened groups", "/checkout/v3/orders/a-0-0-0-b", createBody(`,"options":{"auto_capture":true}`)},
		{"HPP: trailing slash", hpp + "/", hppWith(`{"place_order_mode":"CAPTURE_ORDER"}`)},
		{"HPP: percent-encoded letter", "/%68pp/v1/sessions", hppWith(`{"place_order_mode":"CAPTURE_ORDER"}`)},
		{"HPP: upper-case segment", "/hpp/v1/Sessions", hppWith(`{"place_order_mode":"CAPTURE_ORDER"}`)},
		{"network: upper-case prefix", "/V2/payment/authorize", authWith(`{"amount":1000,"capture":"NOW"}`)},
		{"network: matrix parameter", auth + ";v=1", authWith(`{"amount":1000,"capture":"NOW"}`)},
		{"network: dot segment", "/v2/./payment/authorize", authWith(`{"amount":1000,"capture":"NOW"}`)},
	} {
		rows = append(rows, hazard{name: p.name, path: p.path, body: p.body, status: 400, code: "BAD_VALUE", field: "path"})
	}
	runHazards(t, g, asMerchant("shoeshop"), rows, klarnaError)
}
