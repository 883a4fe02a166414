package pspsim

import (
	"strconv"
	"strings"
	"testing"
)

// A Customer Token order is a Payments order on a stored token: same body,
// same answer, any number per token, and auto_capture captures it at once.
func TestCreateTokenOrder(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	path := "/customer-token/v1/tokens/" + newToken() + "/order"
	for _, auto := range []bool{false, true} {
		res := k.do("POST", path, orderJSON(3000, auto))
		var out struct {
			OrderID     string `json:"order_id"`
			FraudStatus string `json:"fraud_status"`
		}
		decode(t, res.body, &out)
		if res.status != 200 || out.OrderID == "" || out.FraudStatus != "ACCEPTED" {
			t.Fatalf("token order: %d %s", res.status, res.body)
		}
		v := k.order(out.OrderID)
		if captured := map[bool]int64{false: 0, true: 3000}[auto]; v.CapturedAmount != captured || v.OrderAmount != 3000 {
			t.Errorf("auto_capture %v: order %+v", auto, v)
		}
	}
	if code, _ := klarnaErr(t, k.do("POST", path, `{"order_amount":1}`), 400); code != "BAD_VALUE" {
		t.Errorf("bad body: %s", code)
	}
}

// A Checkout v3 order can be updated, options.auto_capture included, until
// something is captured from it.
func TestUpdateCheckoutOrder(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	body := func(amount int, opts string) string {
		return `{"purchase_country":"SE","purchase_currency":"SEK","order_amount":` + strconv.Itoa(amount) +
			`,"order_lines":[{"type":"physical","total_amount":` + strconv.Itoa(amount) + `}],"options":` + opts + `}`
	}
	var out checkoutOrderView
	decode(t, k.do("POST", "/checkout/v3/orders", body(5000, `{"auto_capture":false}`)).body, &out)
	path := "/checkout/v3/orders/" + out.OrderID

	res := k.do("POST", path, body(6000, `{"auto_capture":false}`))
	if res.status != 200 {
		t.Fatalf("update: %d %s", res.status, res.body)
	}
	if v := k.order(out.OrderID); v.OrderAmount != 6000 || v.CapturedAmount != 0 {
		t.Errorf("after an update: %+v", v)
	}
	if code, _ := klarnaErr(t, k.do("POST", path, body(6000, `{"auto_capture":"true"}`)), 400); code != "BAD_VALUE" {
		t.Errorf("bad flag: %s", code)
	}
	res = k.do("POST", path, body(6000, `{"auto_capture":true}`))
	if v := k.order(out.OrderID); res.status != 200 || v.CapturedAmount != 6000 || v.Status != statusCaptured {
		t.Errorf("update with auto_capture: %d, order %+v", res.status, v)
	}
	if code, _ := klarnaErr(t, k.do("POST", path, body(7000, `{"auto_capture":false}`)), 403); code != "READ_ONLY_ORDER" {
		t.Errorf("update of a captured order: %s", code)
	}
	if code, _ := klarnaErr(t, h.klarna("PK2_shop").do("POST", path, body(1, `{}`)), 404); code != "NOT_FOUND" {
		t.Errorf("another merchant's order: %s", code)
	}
}

func TestCreateHPPSession(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	for _, mode := range []string{"", `,"place_order_mode":"PLACE_ORDER"`, `,"place_order_mode":"CAPTURE_ORDER"`, `,"place_order_mode":"NONE"`} {
		res := k.do("POST", "/hpp/v1/sessions", `{"payment_session_url":"https://api.klarna.com/payments/v1/sessions/x","options":{"purchase_type":"BUY"`+mode+`}}`)
		var out struct {
			SessionID   string `json:"session_id"`
			RedirectURL string `json:"redirect_url"`
		}
		decode(t, res.body, &out)
		if res.status != 201 || out.SessionID == "" || out.RedirectURL == "" {
			t.Errorf("%q: %d %s", mode, res.status, res.body)
		}
	}
	for _, bad := range []struct{ body, field string }{
		{`{"options":{"place_order_mode":"CAPTURE_ORDER"}}`, "payment_session_url"},
		{`{"payment_session_url":"x","options":{"place_order_mode":"capture_order"}}`, "options.place_order_mode"},
		{`{"payment_session_url":"x","options":{"place_order_mode":true}}`, "options.place_order_mode"},
		{`{"payment_session_url":"x","options":[]}`, "options"},
	} {
		code, msg := klarnaErr(t, k.do("POST", "/hpp/v1/sessions", bad.body), 400)
		if code != "BAD_VALUE" || !strings.Contains(msg, bad.field) {
			t.Errorf("%s: %s %q", bad.body, code, msg)
		}
	}
}

func TestAuthorizePayment(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	for capture, captured := range map[string]int64{"": 0, `,"capture":"LATER"`: 0, `,"capture":"NOW"`: 2500} {
		res := k.do("POST", "/v2/payment/authorize", `{"currency":"EUR","request_payment_transaction":{"amount":2500`+capture+`}}`)
		var out struct {
			Result      string `json:"result"`
			Transaction struct {
				ID             string `json:"payment_transaction_id"`
				CapturedAmount int64  `json:"captured_amount"`
			} `json:"payment_transaction"`
		}
		decode(t, res.body, &out)
		if res.status != 200 || out.Result != "APPROVED" || out.Transaction.ID == "" || out.Transaction.CapturedAmount != captured {
			t.Errorf("%q: %d %s", capture, res.status, res.body)
		}
	}
	for _, bad := range []struct{ body, field string }{
		{`{"currency":"EUR","request_payment_transaction":{"amount":1,"capture":"now"}}`, "request_payment_transaction.capture"},
		{`{"currency":"EUR","request_payment_transaction":{"amount":1,"capture":true}}`, "request_payment_transaction.capture"},
		{`{"currency":"EUR"}`, "request_payment_transaction"},
		{`{"request_payment_transaction":{"amount":1}}`, "currency"},
		{`{"currency":"EUR","request_payment_transaction":{"amount":"1"}}`, "request_payment_transaction.amount"},
	} {
		code, msg := klarnaErr(t, k.do("POST", "/v2/payment/authorize", bad.body), 400)
		if code != "BAD_VALUE" || !strings.Contains(msg, bad.field) {
			t.Errorf("%s: %s %q", bad.body, code, msg)
		}
	}
	if res := h.do("POST", "/v2/payment/authorize", `{}`); res.status != 401 {
		t.Errorf("without credentials: %d", res.status)
	}
}
