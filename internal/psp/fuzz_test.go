package psp

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pspguard/pspguard/internal/jsonstrict"
)

func dialectOf(hellgate bool) (Dialect, *router) {
	if hellgate {
		return Hellgate(), hellgateRouter
	}
	return Klarna(), klarnaRouter
}

// routes reports whether the router classifies any request as op (OpOther
// included).
func (rt *router) routes(op Operation) bool {
	if op == OpOther {
		return true
	}
	for _, p := range rt.patterns {
		if p.op == op {
			return true
		}
	}
	return false
}

// FuzzClassify checks that classification never panics, that a guarded
// operation is only ever recognised on its canonical path, and that every
// path a lenient router would send to a guarded operation is either
// classified as that operation or refused.
func FuzzClassify(f *testing.F) {
	om := "/ordermanagement/v1/orders/" + orderID
	for _, seed := range []struct {
		method, path string
		hellgate     bool
	}{
		{"POST", om + "/captures", false},
		{"POST", om + "/captures/", false},
		{"POST", om + "/captures;x=1", false},
		{"POST", om + "/captures.json", false},
		{"POST", "/%6Frdermanagement/v1/orders/x/captures", false},
		{"POST", "/OrderManagement/v1/orders/x/captures", false},
		{"POST", "//ordermanagement/v1/orders/x/captures", false},
		{"POST", "/a/../ordermanagement/v1/orders/x/./captures", false},
		{"post", om + "/captures", false},
		{"PATCH", om + "/authorization", false},
		{"GET", om, false},
		{"POST", "/payments/v1/authorizations/tok/order", false},
		{"POST", "/checkout/v3/orders", false},
		{"POST", "/checkout/v3/orders/" + orderID, false},
		{"POST", "/checkout/v3/orders/a-0-0-0-b", false},
		{"POST", "/customer-token/v1/tokens/tok/order", false},
		{"POST", "/hpp/v1/sessions", false},
		{"POST", "/%68pp/v1/sessions/", false},
		{"POST", "/v2/payment/authorize", false},
		{"POST", "/V2/payment/authorize;x", false},
		{"POST", "/payments/one-off", true},
		{"POST", "/payments/" + paymentID + "/capture", true},
		{"GET", "/payments/" + paymentID, true},
		{"POST", `\payments\x\capture`, true},
		{"GET", "/other/path", false},
	} {
		f.Add(seed.method, seed.path, seed.hellgate)
	}
	f.Fuzz(func(t *testing.T, method, path string, hellgate bool) {
		d, rt := dialectOf(hellgate)
		route, err := d.Classify(method, path)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Code != CodeBadValue || route != (Route{}) {
				t.Fatalf("error %#v with route %+v", err, route)
			}
		}
		if err == nil && route.Op != OpOther {
			p := patternOf(rt, route.Op)
			if method != p.method {
				t.Fatalf("%s %s classified as %v, whose method is %s", method, path, route.Op, p.method)
			}
			segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
			canonical := "/" + strings.Join(withID(p.segs, segs), "/")
			if path != canonical || !validPathSegments(segs) {
				t.Fatalf("%s classified as %v, but its canonical form is %s", path, route.Op, canonical)
			}
			if p.hasID && normalizeID(segs[slices.Index(p.segs, "")]) != route.OrderID {
				t.Fatalf("%s: order id %q", path, route.OrderID)
			}
		}
		for _, lenient := range lenientForms(path) {
			for _, p := range rt.patterns {
				if !strings.EqualFold(method, p.method) || !lenientMatch(lenient, p.segs) {
					continue
				}
				if err == nil && route.Op != p.op {
					t.Fatalf("%s %s: a lenient router reads %s (%v), the gateway classified %v", method, path, lenient, p.op, route.Op)
				}
			}
		}
	})
}

func patternOf(rt *router, op Operation) pattern {
	for _, p := range rt.patterns {
		if p.op == op {
			return p
		}
	}
	panic("no pattern for " + op.String())
}

// withID fills the pattern's id segment from the path's segments.
func withID(pattern, segs []string) []string {
	out := slices.Clone(pattern)
	for i, s := range out {
		if s == "" && i < len(segs) {
			out[i] = segs[i]
		}
	}
	return out
}

func validPathSegments(segs []string) bool {
	for _, s := range segs {
		if !validID(s) {
			return false
		}
	}
	return true
}

// lenientForms is what lenient routers make of a path: percent-decoded
// (up to three times), '\' as '/', matrix parameters dropped, segments
// trimmed, case folded, empty and dot segments resolved, and with or
// without a trailing ".json"-like suffix.
func lenientForms(path string) []string {
	for i := 0; i < 3; i++ {
		path = decodePercent(path)
	}
	path = strings.ReplaceAll(path, `\`, "/")
	path = strings.ToLower(strings.ToUpper(path))
	var segs []string
	for _, s := range strings.Split(path, "/") {
		if i := strings.IndexByte(s, ';'); i >= 0 {
			s = s[:i]
		}
		s = strings.TrimSpace(s)
		switch s {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, s)
		}
	}
	forms := []string{"/" + strings.Join(segs, "/")}
	if n := len(segs); n > 0 {
		last := segs[n-1]
		for _, cut := range []int{strings.IndexByte(last, '.'), strings.LastIndexByte(last, '.')} {
			if cut > 0 {
				forms = append(forms, "/"+strings.Join(append(slices.Clone(segs[:n-1]), last[:cut]), "/"))
			}
		}
	}
	return forms
}

func decodePercent(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// lenientMatch matches a lenient path against a pattern: literal segments
// equal, the id segment anything.
func lenientMatch(path string, pattern []string) bool {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(segs) != len(pattern) {
		return false
	}
	for i, lit := range pattern {
		if lit != "" && segs[i] != lit {
			return false
		}
	}
	return true
}

// lenientRequest is how a lenient reader (encoding/json: names matched
// case-insensitively, the last duplicate wins) reads the policy fields.
type lenientRequest struct {
	AutoCapture    any `json:"auto_capture"`
	OrderAmount    any `json:"order_amount"`
	CapturedAmount any `json:"captured_amount"`
	RefundedAmount any `json:"refunded_amount"`
	Amount         any `json:"amount"`
	Currency       any `json:"purchase_currency"`
	CurrencyCode   any `json:"currency_code"`
	Options        struct {
		AutoCapture    any `json:"auto_capture"`
		PlaceOrderMode any `json:"place_order_mode"`
	} `json:"options"`
	Transaction struct {
		Capture any `json:"capture"`
	} `json:"request_payment_transaction"`
}

// FuzzParseRequest checks, per operation and dialect, that ParseRequest
// never panics, refuses only with 400 BAD_VALUE, and that whatever it
// accepts, a lenient reader reads with the same policy values.
func FuzzParseRequest(f *testing.F) {
	for _, seed := range []struct {
		op       Operation
		body     string
		hellgate bool
	}{
		{OpCreateOrder, `{"order_amount":10,"purchase_currency":"USD","auto_capture":true,"order_lines":[{"type":"physical","total_amount":10}]}`, false},
		{OpCreateOrder, `{"order_amount":10,"purchase_currency":"USD","auto_capture":false,"AUTO_CAPTURE":true,"order_lines":[]}`, false},
		{OpCreateOrder, `{"order_amount":10,"purchase_currency":"USD","order_lines":[],"attachment":{"content_type":"application/vnd.klarna.internal.emd-v2+json","body":"{\"voucher\":[{}]}"}}`, false},
		{OpCreateCheckoutOrder, `{"order_amount":10,"purchase_currency":"USD","order_lines":[],"options":{"auto_capture":true}}`, false},
		{OpUpdateCheckoutOrder, `{"order_amount":10,"purchase_currency":"USD","order_lines":[],"options":{"auto_capture":true}}`, false},
		{OpCreateTokenOrder, `{"order_amount":10,"purchase_currency":"USD","auto_capture":true,"order_lines":[{"type":"physical","total_amount":10}]}`, false},
		{OpCreateHPPSession, `{"payment_session_url":"https://x","options":{"place_order_mode":"CAPTURE_ORDER"}}`, false},
		{OpCreateHPPSession, `{"options":{"place_order_mode":"PLACE_ORDER","Place_Order_Mode":"CAPTURE_ORDER"}}`, false},
		{OpAuthorizePayment, `{"currency":"EUR","request_payment_transaction":{"amount":100,"capture":"NOW"}}`, false},
		{OpAuthorizePayment, `{"request_payment_transaction":{"capture":"LATER","CAPTURE":"NOW"}}`, false},
		{OpCapture, `{"captured_amount":6000,"order_lines":[{"total_amount":6000}],"shipping_info":[]}`, false},
		{OpCapture, `{"captured_amount":6000,"captured_amount":7000}`, false},
		{OpCapture, `{"captured_amount":7000.0}`, false},
		{OpUpdateAuthorization, `{"order_amount":5000}`, false},
		{OpRefund, `{"refunded_amount":100}`, false},
		{OpCancel, ``, false},
		{OpRelease, `{}`, false},
		{OpCreateOrder, `{"amount":1000,"currency_code":"EUR","reference":"r"}`, true},
		{OpCapture, `{"amount":800,"currency_code":"EUR","reference":"r"}`, true},
		{OpCapture, `{"reference":"r"}`, true},
	} {
		f.Add(uint8(seed.op), []byte(seed.body), seed.hellgate)
	}
	f.Fuzz(func(t *testing.T, op uint8, body []byte, hellgate bool) {
		d, rt := dialectOf(hellgate)
		route := Route{Op: Operation(op % uint8(numOperations)), OrderID: orderID, Keyed: true}
		if !rt.routes(route.Op) {
			return // another PSP's operation: the dialect never sees it
		}
		req, err := d.ParseRequest(route, body)
		unkeyed := route
		unkeyed.Keyed = false
		req2, err2 := d.ParseRequest(unkeyed, body)
		var same bool
		if err == nil && err2 == nil {
			want := *req
			want.Fingerprint = [32]byte{}
			same = reflect.DeepEqual(*req2, want)
		}
		if (err == nil) != (err2 == nil) || err == nil && !same {
			t.Fatalf("parsed without a key: %+v, %v; with one: %+v, %v", req2, err2, req, err)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Code != CodeBadValue || req != nil {
				t.Fatalf("error %#v with request %+v", err, req)
			}
			return
		}
		if req.Op != route.Op || req.OrderID != route.OrderID {
			t.Fatalf("route not carried: %+v", req)
		}
		if !route.Op.HasBody() || len(body) == 0 {
			return
		}
		if fp, err := jsonstrict.Check(body); err != nil || fp != req.Fingerprint {
			t.Fatalf("accepted a body jsonstrict refuses (%v) or with another fingerprint", err)
		}
		var lv lenientRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&lv); err != nil {
			var te *json.UnmarshalTypeError
			if !errors.As(err, &te) {
				t.Fatalf("accepted, but encoding/json refuses: %v", err)
			}
			return // a non-policy member has a type the lenient struct cannot hold
		}
		switch {
		case hellgate && route.Op == OpCreateOrder:
			sameInt(t, "amount", lv.Amount, req.OrderAmount, true)
			sameString(t, "currency_code", lv.CurrencyCode, req.Currency)
		case hellgate && route.Op == OpCapture:
			sameInt(t, "amount", lv.Amount, req.Amount, req.HasAmount)
			sameString(t, "currency_code", lv.CurrencyCode, req.Currency)
		case hellgate:
		case route.Op == OpCreateHPPSession:
			want := map[AutoCapture][]any{AutoCaptureAbsent: {nil}, AutoCaptureFalse: {"PLACE_ORDER", "NONE"}, AutoCaptureTrue: {"CAPTURE_ORDER"}}[req.AutoCapture]
			if !slices.Contains(want, lv.Options.PlaceOrderMode) {
				t.Fatalf("place_order_mode: the gateway read %v, a lenient reader %v", req.AutoCapture, lv.Options.PlaceOrderMode)
			}
		case route.Op == OpAuthorizePayment:
			want := map[AutoCapture][]any{AutoCaptureAbsent: {nil}, AutoCaptureFalse: {"LATER"}, AutoCaptureTrue: {"NOW"}}[req.AutoCapture]
			if !slices.Contains(want, lv.Transaction.Capture) {
				t.Fatalf("capture: the gateway read %v, a lenient reader %v", req.AutoCapture, lv.Transaction.Capture)
			}
		case route.Op.AsksCapture():
			sameInt(t, "order_amount", lv.OrderAmount, req.OrderAmount, true)
			sameString(t, "purchase_currency", lv.Currency, req.Currency)
			flag := lv.AutoCapture
			if route.Op == OpCreateCheckoutOrder || route.Op == OpUpdateCheckoutOrder {
				flag = lv.Options.AutoCapture
			}
			want := map[AutoCapture]any{AutoCaptureAbsent: nil, AutoCaptureFalse: false, AutoCaptureTrue: true}[req.AutoCapture]
			if flag != want {
				t.Fatalf("auto-capture: the gateway read %v, a lenient reader %v", req.AutoCapture, flag)
			}
		case route.Op == OpCapture:
			sameInt(t, "captured_amount", lv.CapturedAmount, req.Amount, true)
		case route.Op == OpUpdateAuthorization:
			sameInt(t, "order_amount", lv.OrderAmount, req.Amount, true)
		case route.Op == OpRefund:
			sameInt(t, "refunded_amount", lv.RefundedAmount, req.Amount, true)
		}
	})
}

func sameInt(t *testing.T, field string, lenient any, got int64, present bool) {
	t.Helper()
	if !present {
		if lenient != nil {
			t.Fatalf("%s: the gateway read nothing, a lenient reader %v", field, lenient)
		}
		return
	}
	n, ok := lenient.(json.Number)
	if !ok {
		t.Fatalf("%s: the gateway read %d, a lenient reader %v", field, got, lenient)
	}
	if v, err := n.Int64(); err != nil || v != got {
		t.Fatalf("%s: the gateway read %d, a lenient reader %s", field, got, n)
	}
}

func sameString(t *testing.T, field string, lenient any, got string) {
	t.Helper()
	if s, _ := lenient.(string); s != got {
		t.Fatalf("%s: the gateway read %q, a lenient reader %v", field, got, lenient)
	}
}

// FuzzEMD checks the extra merchant data: the attachment body is accepted
// exactly when it is a strict JSON object, and the keys read are its
// top-level members with non-empty values, as a lenient reader sees them.
func FuzzEMD(f *testing.F) {
	for _, seed := range []string{
		`{"voucher":[{"voucher_name":"Gift card"}]}`,
		`{"event":[{"event_name":"Concert"}],"voucher":[],"in_store_payment":{},"a":"","b":null}`,
		`{"voucher":[],"voucher":[{}]}`,
		`{"Voucher":[{}],"voucher":[{}]}`,
		`{"\u0076oucher":[{}]}`,
		`[]`,
		`{} {}`,
		`{"x":"\ud800"}`,
		``,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, emd string) {
		encoded, _ := json.Marshal(emd)
		var sent string // what the PSP finds in the string (invalid UTF-8 became U+FFFD)
		if err := json.Unmarshal(encoded, &sent); err != nil {
			t.Fatal(err)
		}
		body := `{"order_amount":1,"purchase_currency":"EUR","order_lines":[],"attachment":{"content_type":"` +
			emdContentType + `","body":` + string(encoded) + `}}`
		req, err := Klarna().ParseRequest(createRoute, []byte(body))
		_, checkErr := jsonstrict.Check([]byte(sent))
		if checkErr != nil {
			if err == nil {
				t.Fatalf("EMD %q accepted, jsonstrict refuses it: %v", sent, checkErr)
			}
			assertBadValue(t, err, "attachment.body", "attachment.body must hold a JSON object")
			return
		}
		if err != nil {
			t.Fatalf("EMD %q refused: %v", sent, err)
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(sent), &doc); err != nil {
			t.Fatalf("EMD %q accepted, encoding/json refuses it: %v", sent, err)
		}
		var want []string
		for k, v := range doc {
			if !emptyValue(v) {
				want = append(want, k)
			}
		}
		got := slices.Clone(req.EMD.Keys)
		slices.Sort(got)
		slices.Sort(want)
		if !req.EMD.Present || !slices.Equal(got, want) {
			t.Fatalf("EMD %q: keys %q, a lenient reader finds %q", sent, got, want)
		}
	})
}

func emptyValue(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}
