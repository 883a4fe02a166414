package pspsim

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestCreateOrder(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	res := k.do("POST", "/payments/v1/authorizations/tok-1/order", orderJSON(6000, false))
	if res.status != 200 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	var out struct {
		OrderID                 string `json:"order_id"`
		RedirectURL             string `json:"redirect_url"`
		FraudStatus             string `json:"fraud_status"`
		AuthorizedPaymentMethod struct {
			Type string `json:"type"`
		} `json:"authorized_payment_method"`
	}
	decode(t, res.body, &out)
	if _, ok := normalizeUUID(out.OrderID); !ok || !strings.HasPrefix(out.RedirectURL, "https://") ||
		out.FraudStatus != "ACCEPTED" || out.AuthorizedPaymentMethod.Type != "invoice" {
		t.Errorf("answer %s", res.body)
	}

	v := k.order(out.OrderID)
	created := h.clock.Now()
	want := orderView{
		OrderID: out.OrderID, Status: statusAuthorized, FraudStatus: "ACCEPTED",
		OrderAmount: 6000, OriginalOrderAmount: 6000, RemainingAuthorizedAmount: 6000,
		PurchaseCountry: "SE", PurchaseCurrency: "SEK",
		CreatedAt: created.Format(klarnaTime), ExpiresAt: created.Add(28 * 24 * time.Hour).Format(klarnaTime),
	}
	v.OrderLines, v.Captures, v.Refunds = nil, nil, nil
	if fmt.Sprintf("%+v", v) != fmt.Sprintf("%+v", want) {
		t.Errorf("order\n got %+v\nwant %+v", v, want)
	}
	if _, err := time.Parse(time.RFC3339, want.ExpiresAt); err != nil {
		t.Errorf("expires_at is not RFC 3339: %v", err)
	}

	// The token is spent, even with another body.
	res = k.do("POST", "/payments/v1/authorizations/tok-1/order", orderJSON(100, false))
	if code, _ := klarnaErr(t, res, 403); code != "INVALID_OPERATION" {
		t.Errorf("second use of the token: code %q", code)
	}
	if n := len(h.sim.Stats().Orders); n != 1 {
		t.Errorf("%d orders, want 1", n)
	}
}

func TestCreateOrderAutoCapture(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	v := k.order(k.createOrder(6000, true))
	if v.Status != statusCaptured || v.CapturedAmount != 6000 || v.RemainingAuthorizedAmount != 0 ||
		len(v.Captures) != 1 || v.Captures[0].Amount != 6000 {
		t.Errorf("auto-captured order %+v", v)
	}
	if st := h.sim.Stats().Orders[v.OrderID]; !st.AutoCapture || st.Captures != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestCreateOrderValidation(t *testing.T) {
	lines := func(totals ...string) string {
		var b []string
		for _, tot := range totals {
			b = append(b, `{"type":"physical","total_amount":`+tot+`}`)
		}
		return "[" + strings.Join(b, ",") + "]"
	}
	order := func(amount, orderLines string, extra string) string {
		return `{"purchase_country":"SE","purchase_currency":"SEK","order_amount":` + amount + `,"order_lines":` + orderLines + extra + `}`
	}
	tooMany := make([]string, 1001)
	for i := range tooMany {
		tooMany[i] = "0"
	}
	tests := []struct {
		name, body, field string
	}{
		{"not JSON", `{"order_amount":`, "body"},
		{"array", `[]`, "body"},
		{"null", `null`, "body"},
		{"empty", ``, "body"},
		{"missing order_amount", `{"purchase_country":"SE","purchase_currency":"SEK","order_lines":` + lines("100") + `}`, "order_amount"},
		{"null order_amount", order("null", lines("100"), ""), "order_amount"},
		{"fractional amount", order("60.5", lines("60"), ""), "order_amount"},
		{"amount with exponent", order("6e3", lines("6000"), ""), "order_amount"},
		{"amount as string", order(`"6000"`, lines("6000"), ""), "order_amount"},
		{"negative amount", order("-1", lines("-1"), ""), "order_amount"},
		{"amount too large", order("200000001", lines("200000001"), ""), "order_amount"},
		{"missing order_lines", `{"purchase_country":"SE","purchase_currency":"SEK","order_amount":100}`, "order_lines"},
		{"empty order_lines", order("0", "[]", ""), "order_lines"},
		{"order_lines not an array", order("100", `{"total_amount":100}`, ""), "order_lines"},
		{"too many order lines", order("0", lines(tooMany...), ""), "order_lines"},
		{"line not an object", order("100", `[100]`, ""), "order_lines[0]"},
		{"line without total", order("100", `[{"type":"physical"}]`, ""), "order_lines[0].total_amount"},
		{"fractional line total", order("100", lines("50", "50.0"), ""), "order_lines[1].total_amount"},
		{"sum differs", order("6000", lines("5000"), ""), "order_amount"},
		{"missing purchase_country", `{"purchase_currency":"SEK","order_amount":100,"order_lines":` + lines("100") + `}`, "purchase_country"},
		{"empty purchase_country", `{"purchase_country":"","purchase_currency":"SEK","order_amount":100,"order_lines":` + lines("100") + `}`, "purchase_country"},
		{"missing purchase_currency", `{"purchase_country":"SE","order_amount":100,"order_lines":` + lines("100") + `}`, "purchase_currency"},
		{"bad purchase_currency", `{"purchase_country":"SE","purchase_currency":"KR","order_amount":100,"order_lines":` + lines("100") + `}`, "purchase_currency"},
		{"auto_capture as string", order("100", lines("100"), `,"auto_capture":"true"`), "auto_capture"},
		{"auto_capture as number", order("100", lines("100"), `,"auto_capture":1`), "auto_capture"},
	}
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := newToken()
			res := k.do("POST", "/payments/v1/authorizations/"+token+"/order", tt.body)
			code, msg := klarnaErr(t, res, 400)
			if code != "BAD_VALUE" || !strings.Contains(msg, " "+tt.field+":") {
				t.Errorf("code %q, message %q; want BAD_VALUE naming %s", code, msg, tt.field)
			}
			if res := k.do("POST", "/payments/v1/authorizations/"+token+"/order", orderJSON(100, false)); res.status != 200 {
				t.Errorf("a refused create spent the token: %d", res.status)
			}
		})
	}
}

func TestCreateOrderAccepts(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	tests := []struct{ name, body string }{
		{"discount line", `{"purchase_country":"SE","purchase_currency":"SEK","order_amount":900,"order_lines":[{"total_amount":1000},{"type":"discount","total_amount":-100}]}`},
		{"zero amount", `{"purchase_country":"SE","purchase_currency":"SEK","order_amount":0,"order_lines":[{"total_amount":0}]}`},
		{"maximum amount", `{"purchase_country":"SE","purchase_currency":"SEK","order_amount":200000000,"order_lines":[{"total_amount":200000000}]}`},
		{"null auto_capture", `{"purchase_country":"SE","purchase_currency":"sek","order_amount":1,"order_lines":[{"total_amount":1}],"auto_capture":null}`},
		{"unknown members", `{"purchase_country":"SE","purchase_currency":"SEK","order_amount":1,"order_lines":[{"total_amount":1}],"merchant_reference1":"A-1","attachment":{"content_type":"application/vnd.klarna.internal.emd-v2+json","body":"{}"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if res := k.do("POST", "/payments/v1/authorizations/"+newToken()+"/order", tt.body); res.status != 200 {
				t.Errorf("status %d: %s", res.status, res.body)
			}
		})
	}
}

func TestCheckoutOrder(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	body := func(extra string) string {
		return `{"purchase_country":"SE","purchase_currency":"SEK","locale":"sv-SE","order_amount":5000,
			"order_lines":[{"type":"digital","total_amount":5000}]` + extra + `}`
	}
	res := k.do("POST", "/checkout/v3/orders", body(`,"merchant_urls":{"terms":"https://shop.test/terms"}`))
	if res.status != 201 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	var out checkoutOrderView
	decode(t, res.body, &out)
	if out.Status != "checkout_incomplete" || out.OrderAmount != 5000 || out.PurchaseCurrency != "SEK" || out.HTMLSnippet == "" {
		t.Errorf("answer %s", res.body)
	}
	if loc := res.header.Get("Location"); loc != "/checkout/v3/orders/"+out.OrderID {
		t.Errorf("Location %q", loc)
	}
	if v := k.order(out.OrderID); v.Status != statusAuthorized || v.RemainingAuthorizedAmount != 5000 {
		t.Errorf("order in Order Management %+v", v)
	}
	res = k.do("GET", "/checkout/v3/orders/"+out.OrderID, "")
	var read checkoutOrderView
	decode(t, res.body, &read)
	if res.status != 200 || read.Status != "checkout_complete" {
		t.Errorf("checkout read: %d %s", res.status, res.body)
	}

	// auto_capture is options.auto_capture; a top-level member is ignored.
	res = k.do("POST", "/checkout/v3/orders", body(`,"auto_capture":true`))
	decode(t, res.body, &out)
	if v := k.order(out.OrderID); v.Status != statusAuthorized {
		t.Errorf("top-level auto_capture captured a Checkout order: %s", v.Status)
	}
	res = k.do("POST", "/checkout/v3/orders", body(`,"options":{"auto_capture":true}`))
	decode(t, res.body, &out)
	if v := k.order(out.OrderID); v.Status != statusCaptured || v.CapturedAmount != 5000 || !out.Options.AutoCapture {
		t.Errorf("options.auto_capture order %+v", v)
	}

	for _, bad := range []struct{ extra, field string }{
		{`,"options":{"auto_capture":"yes"}`, "options.auto_capture"},
		{`,"options":[]`, "options"},
	} {
		code, msg := klarnaErr(t, k.do("POST", "/checkout/v3/orders", body(bad.extra)), 400)
		if code != "BAD_VALUE" || !strings.Contains(msg, bad.field+":") {
			t.Errorf("%s: code %q, message %q", bad.extra, code, msg)
		}
	}

	// An order created through Payments is not a Checkout order.
	if code, _ := klarnaErr(t, k.do("GET", "/checkout/v3/orders/"+k.createOrder(100, false), ""), 404); code != "NOT_FOUND" {
		t.Errorf("code %q", code)
	}
}

func TestCreateSession(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	res := k.do("POST", "/payments/v1/sessions", orderJSON(1000, false))
	var out struct {
		SessionID   string            `json:"session_id"`
		ClientToken string            `json:"client_token"`
		Categories  []json.RawMessage `json:"payment_method_categories"`
	}
	decode(t, res.body, &out)
	if _, ok := normalizeUUID(out.SessionID); res.status != 200 || !ok || out.ClientToken == "" || len(out.Categories) == 0 {
		t.Errorf("session: %d %s", res.status, res.body)
	}
	if code, _ := klarnaErr(t, k.do("POST", "/payments/v1/sessions", `{`), 400); code != "BAD_VALUE" {
		t.Errorf("malformed session request: code %q", code)
	}
}

func TestIsCurrency(t *testing.T) {
	for in, want := range map[string]bool{"SEK": true, "eur": true, "EU": false, "EURO": false, "E1R": false, "": false, "ÅÄÖ": false} {
		if got := isCurrency(in); got != want {
			t.Errorf("isCurrency(%q) = %v", in, got)
		}
	}
}

// FuzzParseOrderInput checks that every body is either refused with a
// field error or accepted as an order Klarna would accept.
func FuzzParseOrderInput(f *testing.F) {
	f.Add([]byte(orderJSON(6000, true)), false)
	f.Add([]byte(`{"purchase_country":"SE","purchase_currency":"SEK","order_amount":900,"order_lines":[{"total_amount":1000},{"total_amount":-100}],"options":{"auto_capture":true}}`), true)
	f.Add([]byte(`{"order_amount":1e2}`), false)
	f.Fuzz(func(t *testing.T, body []byte, checkout bool) {
		in, err := parseOrderInput(body, checkout)
		if err != nil {
			if _, ok := err.(*fieldError); !ok {
				t.Fatalf("error %T %v is not a field error", err, err)
			}
			return
		}
		if in.amount < 0 || in.amount > maxAmount || !isCurrency(in.currency) || in.country == "" {
			t.Fatalf("accepted %+v", in)
		}
		o, _ := parseObject(body)
		sum, present, err := orderLines(o, true)
		if err != nil || !present || sum != in.amount {
			t.Fatalf("accepted order lines summing to %d for order_amount %d (%v)", sum, in.amount, err)
		}
	})
}
