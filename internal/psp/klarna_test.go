package psp

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/jsonstrict"
)

var (
	createRoute   = Route{Op: OpCreateOrder}
	checkoutRoute = Route{Op: OpCreateCheckoutOrder}
	captureRoute  = Route{Op: OpCapture, OrderID: orderID}
	updateRoute   = Route{Op: OpUpdateAuthorization, OrderID: orderID}
	refundRoute   = Route{Op: OpRefund, OrderID: orderID}
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fingerprint(t testing.TB, body string) [32]byte {
	t.Helper()
	fp, err := jsonstrict.Check([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

func TestKlarnaCreateOrderSeed(t *testing.T) {
	body := readTestdata(t, "klarna_create_order.json")
	req, err := Klarna().ParseRequest(keyed(createRoute), body)
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := jsonstrict.Check(body)
	want := &Request{
		Op:             OpCreateOrder,
		AutoCapture:    AutoCaptureTrue,
		AutoCaptureAt:  "auto_capture",
		OrderAmount:    10,
		HasOrderAmount: true,
		Currency:       "USD",
		PhysicalLines:  true,
		LineTypes:      LinePhysical,
		LinesTotal:     10,
		HasLines:       true,
		Fingerprint:    fp,
	}
	if !reflect.DeepEqual(req, want) {
		t.Errorf("ParseRequest =\n%+v, want\n%+v", req, want)
	}
}

func TestKlarnaCheckoutOrder(t *testing.T) {
	body := readTestdata(t, "klarna_checkout_order.json")
	req, err := Klarna().ParseRequest(checkoutRoute, body)
	if err != nil {
		t.Fatal(err)
	}
	if req.Op != OpCreateCheckoutOrder || req.AutoCapture != AutoCaptureTrue || req.OrderAmount != 50000 ||
		req.Currency != "SEK" || req.PhysicalLines || req.LinesTotal != 50000 || !req.HasLines {
		t.Errorf("ParseRequest = %+v", req)
	}
	// customer_account_info is [] and other_delivery_address null: not carried.
	if !req.EMD.Present || !reflect.DeepEqual(req.EMD.Keys, []string{"voucher"}) || !req.EMD.Has("voucher") {
		t.Errorf("EMD = %+v", req.EMD)
	}

	// On Checkout v3, a top-level auto_capture is not the flag.
	req, err = Klarna().ParseRequest(checkoutRoute, []byte(`{"order_amount":1,"purchase_currency":"SEK","order_lines":[],"auto_capture":true}`))
	if err != nil || req.AutoCapture != AutoCaptureAbsent {
		t.Errorf("top-level auto_capture on checkout: %+v, %v", req, err)
	}
	req, err = Klarna().ParseRequest(checkoutRoute, []byte(`{"order_amount":1,"purchase_currency":"SEK","order_lines":[],"options":{"auto_capture":false}}`))
	if err != nil || req.AutoCapture != AutoCaptureFalse {
		t.Errorf("options.auto_capture false: %+v, %v", req, err)
	}
}

func TestKlarnaCaptureWithOrderLines(t *testing.T) {
	body := readTestdata(t, "klarna_capture.json")
	req, err := Klarna().ParseRequest(keyed(captureRoute), body)
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := jsonstrict.Check(body)
	want := &Request{Op: OpCapture, OrderID: orderID, Amount: 6000, HasAmount: true,
		PhysicalLines: true, LineTypes: LinePhysical, LinesTotal: 6000, HasLines: true, Fingerprint: fp}
	if !reflect.DeepEqual(req, want) {
		t.Errorf("ParseRequest =\n%+v, want\n%+v", req, want)
	}
}

func TestKlarnaOtherOperations(t *testing.T) {
	tests := []struct {
		route Route
		body  string
		want  Request
	}{
		{captureRoute, `{"captured_amount":1}`, Request{Amount: 1, HasAmount: true}},
		{captureRoute, `{"captured_amount":200000000,"order_lines":[]}`, Request{Amount: 200000000, HasAmount: true, HasLines: true}},
		{captureRoute, `{"captured_amount":500,"order_lines":[{"total_amount":700},{"type":"discount","total_amount":-200}]}`,
			Request{Amount: 500, HasAmount: true, HasLines: true, LinesTotal: 500, LineTypes: LineDiscount}},
		{updateRoute, `{"order_amount":0}`, Request{Amount: 0, HasAmount: true}},
		{updateRoute, `{"order_amount":4000,"order_lines":[{"type":"physical","total_amount":4000}]}`,
			Request{Amount: 4000, HasAmount: true, HasLines: true, LinesTotal: 4000, PhysicalLines: true, LineTypes: LinePhysical}},
		{refundRoute, `{"refunded_amount":250,"description":"returned"}`, Request{Amount: 250, HasAmount: true}},
		{Route{Op: OpRelease, OrderID: orderID}, ``, Request{}},
		{Route{Op: OpRelease, OrderID: orderID}, `{}`, Request{}},
		{Route{Op: OpCancel, OrderID: orderID}, ``, Request{}},
		{Route{Op: OpCancel, OrderID: orderID}, `{"reason":"customer"}`, Request{}},
		{Route{Op: OpGetOrder, OrderID: orderID}, ``, Request{}},
	}
	for _, tt := range tests {
		req, err := Klarna().ParseRequest(keyed(tt.route), []byte(tt.body))
		if err != nil {
			t.Errorf("%v %s: %v", tt.route.Op, tt.body, err)
			continue
		}
		want := tt.want
		want.Op, want.OrderID = tt.route.Op, tt.route.OrderID
		if tt.body != "" {
			want.Fingerprint = fingerprint(t, tt.body)
		}
		if !reflect.DeepEqual(*req, want) {
			t.Errorf("%v %s:\n got %+v\nwant %+v", tt.route.Op, tt.body, *req, want)
		}
	}
}

// Every hazard is refused with 400 BAD_VALUE naming the field.
func TestKlarnaParseRequestHazards(t *testing.T) {
	const lines = `"order_lines":[{"type":"digital","total_amount":100}]`
	create := func(fields string) string {
		return `{"order_amount":100,"purchase_currency":"EUR",` + lines + `,` + fields + `}`
	}
	tests := []struct {
		name  string
		route Route
		body  string
		field string
		msg   string
	}{
		// auto_capture
		{"duplicate auto_capture", createRoute, create(`"auto_capture":false,"auto_capture":true`), "auto_capture", `duplicate member "auto_capture"`},
		{"duplicate auto_capture escaped", createRoute, create(`"auto_capture":false,"auto\u005fcapture":true`), "auto_capture", `duplicate member "auto_capture"`},
		{"case-variant auto_capture", createRoute, create(`"auto_capture":false,"Auto_Capture":true`), "Auto_Capture", `differ only by letter case`},
		{"auto_capture spelled in upper case alone", createRoute, create(`"AUTO_CAPTURE":true`), "AUTO_CAPTURE", "must be spelled auto_capture"},
		{"autoCapture", createRoute, create(`"autoCapture":true`), "autoCapture", "must be spelled auto_capture"},
		{"auto_capture string", createRoute, create(`"auto_capture":"true"`), "auto_capture", "auto_capture must be a boolean (true or false), not a string"},
		{"auto_capture 1", createRoute, create(`"auto_capture":1`), "auto_capture", "must be a boolean (true or false), not a number"},
		{"auto_capture null", createRoute, create(`"auto_capture":null`), "auto_capture", "must be a boolean (true or false), not null"},
		{"options.auto_capture string", checkoutRoute, create(`"options":{"auto_capture":"true"}`), "options.auto_capture", "options.auto_capture must be a boolean"},
		{"options.auto_capture duplicate", checkoutRoute, create(`"options":{"auto_capture":false,"auto_capture":true}`), "options.auto_capture", `duplicate member "auto_capture" in $.options`},
		{"options.auto_capture case variant", checkoutRoute, create(`"options":{"auto_capture":false,"AUTO_CAPTURE":true}`), "options.AUTO_CAPTURE", `differ only by letter case`},
		{"options null", checkoutRoute, create(`"options":null`), "options", "options must be an object, not null"},
		{"options array", checkoutRoute, create(`"options":[]`), "options", "options must be an object, not an array"},
		{"Options", checkoutRoute, create(`"Options":{"auto_capture":true}`), "Options", "must be spelled options"},

		// order_amount
		{"order_amount missing", createRoute, `{"purchase_currency":"EUR",` + lines + `}`, "order_amount", "order_amount is required"},
		{"order_amount 7000.0", createRoute, `{"order_amount":7000.0,"purchase_currency":"EUR",` + lines + `}`, "order_amount", "order_amount must be an integer between 0 and 200000000"},
		{"order_amount 7e3", createRoute, `{"order_amount":7e3,"purchase_currency":"EUR",` + lines + `}`, "order_amount", "must be an integer"},
		{"order_amount 7000.5", createRoute, `{"order_amount":7000.5,"purchase_currency":"EUR",` + lines + `}`, "order_amount", "must be an integer"},
		{"order_amount string", createRoute, `{"order_amount":"7000","purchase_currency":"EUR",` + lines + `}`, "order_amount", "must be an integer between 0 and 200000000, not a string"},
		{"order_amount overflow", createRoute, `{"order_amount":9223372036854775808,"purchase_currency":"EUR",` + lines + `}`, "order_amount", "must be an integer"},
		{"order_amount negative", createRoute, `{"order_amount":-1,"purchase_currency":"EUR",` + lines + `}`, "order_amount", "must be an integer between 0 and 200000000"},
		{"order_amount too large", createRoute, `{"order_amount":200000001,"purchase_currency":"EUR",` + lines + `}`, "order_amount", "must be an integer between 0 and 200000000"},
		{"order_amount null", createRoute, `{"order_amount":null,"purchase_currency":"EUR",` + lines + `}`, "order_amount", "not null"},

		// purchase_currency
		{"currency missing", createRoute, `{"order_amount":1,` + lines + `}`, "purchase_currency", "purchase_currency is required"},
		{"currency lower case", createRoute, `{"order_amount":1,"purchase_currency":"eur",` + lines + `}`, "purchase_currency", "three-letter currency code"},
		{"currency four letters", createRoute, `{"order_amount":1,"purchase_currency":"EURO",` + lines + `}`, "purchase_currency", "three-letter currency code"},
		{"currency number", createRoute, `{"order_amount":1,"purchase_currency":978,` + lines + `}`, "purchase_currency", "must be a string"},

		// order_lines
		{"order_lines missing", createRoute, `{"order_amount":1,"purchase_currency":"EUR"}`, "order_lines", "order_lines is required"},
		{"order_lines object", createRoute, `{"order_amount":1,"purchase_currency":"EUR","order_lines":{}}`, "order_lines", "order_lines must be an array, not an object"},
		{"order line not an object", createRoute, `{"order_amount":1,"purchase_currency":"EUR","order_lines":[1]}`, "order_lines[0]", "order_lines[0] must be an object, not a number"},
		{"order line type number", createRoute, `{"order_amount":1,"purchase_currency":"EUR","order_lines":[{"type":1,"total_amount":1}]}`, "order_lines[0].type", "must be a string"},
		{"order line type duplicate", createRoute, `{"order_amount":1,"purchase_currency":"EUR","order_lines":[{"type":"digital","type":"physical","total_amount":1}]}`, "order_lines[0].type", `duplicate member "type" in $.order_lines[0]`},
		{"order line total missing", createRoute, `{"order_amount":1,"purchase_currency":"EUR","order_lines":[{"total_amount":1},{"type":"digital"}]}`, "order_lines[1].total_amount", "order_lines[1].total_amount is required"},
		{"order line total fraction", createRoute, `{"order_amount":1,"purchase_currency":"EUR","order_lines":[{"total_amount":1.5}]}`, "order_lines[0].total_amount", "must be an integer between -200000000 and 200000000"},
		{"too many order lines", createRoute, `{"order_amount":1,"purchase_currency":"EUR","order_lines":[` + strings.Repeat(`{"total_amount":0},`, 1000) + `{"total_amount":0}]}`, "order_lines", "order_lines must have at most 1000 entries"},

		// attachment
		{"attachment string", createRoute, create(`"attachment":"x"`), "attachment", "attachment must be an object"},
		{"attachment body missing", createRoute, create(`"attachment":{"content_type":"application/vnd.klarna.internal.emd-v2+json"}`), "attachment.body", "attachment.body is required"},
		{"attachment content type missing", createRoute, create(`"attachment":{"body":"{}"}`), "attachment.content_type", "attachment.content_type is required"},
		{"attachment content type other", createRoute, create(`"attachment":{"content_type":"text/plain","body":"{}"}`), "attachment.content_type", "must be application/vnd.klarna.internal.emd-v2+json"},
		{"attachment body object", createRoute, create(`"attachment":{"content_type":"application/vnd.klarna.internal.emd-v2+json","body":{}}`), "attachment.body", "attachment.body must be a string, not an object"},
		{"attachment body not JSON", createRoute, create(`"attachment":{"content_type":"application/vnd.klarna.internal.emd-v2+json","body":"voucher"}`), "attachment.body", "attachment.body must hold a JSON object"},
		{"attachment body array", createRoute, create(`"attachment":{"content_type":"application/vnd.klarna.internal.emd-v2+json","body":"[]"}`), "attachment.body", "must be a JSON object, found an array"},
		{"attachment body duplicate", createRoute, create(`"attachment":{"content_type":"application/vnd.klarna.internal.emd-v2+json","body":"{\"voucher\":[],\"voucher\":[{}]}"}`), "attachment.body", `duplicate member "voucher"`},
		{"attachment body trailing data", createRoute, create(`"attachment":{"content_type":"application/vnd.klarna.internal.emd-v2+json","body":"{} {}"}`), "attachment.body", "unexpected data after the JSON object"},
		{"attachment body lone surrogate", createRoute, create(`"attachment":{"content_type":"application/vnd.klarna.internal.emd-v2+json","body":"{\"voucher\":\"\\ud800\"}"}`), "attachment.body", "lone UTF-16 high surrogate"},

		// captured_amount and friends
		{"captured_amount 0", captureRoute, `{"captured_amount":0}`, "captured_amount", "captured_amount must be an integer between 1 and 200000000"},
		{"captured_amount -0", captureRoute, `{"captured_amount":-0}`, "captured_amount", "captured_amount must be an integer between 1 and 200000000"},
		{"captured_amount 7000.0", captureRoute, `{"captured_amount":7000.0}`, "captured_amount", "captured_amount must be an integer between 1 and 200000000"},
		{"captured_amount 7e3", captureRoute, `{"captured_amount":7e3}`, "captured_amount", "captured_amount must be an integer between 1 and 200000000"},
		{"captured_amount string", captureRoute, `{"captured_amount":"7000"}`, "captured_amount", "not a string"},
		{"captured_amount null", captureRoute, `{"captured_amount":null}`, "captured_amount", "not null"},
		{"captured_amount overflow", captureRoute, `{"captured_amount":9223372036854775808}`, "captured_amount", "captured_amount must be an integer between 1 and 200000000"},
		{"captured_amount missing", captureRoute, `{"reference":"x"}`, "captured_amount", "captured_amount is required"},
		{"captured_amount duplicate", captureRoute, `{"captured_amount":1,"captured_amount":7000}`, "captured_amount", `duplicate member "captured_amount" in $`},
		{"captured_amount duplicate escaped", captureRoute, `{"captured_amount":1,"\u0063aptured_amount":7000}`, "captured_amount", `duplicate member "captured_amount"`},
		{"captured_amount case variant", captureRoute, `{"captured_amount":1,"Captured_Amount":7000}`, "Captured_Amount", "differ only by letter case"},
		{"capturedAmount", captureRoute, `{"capturedAmount":7000}`, "capturedAmount", "must be spelled captured_amount"},
		{"capture lines sum", captureRoute, `{"captured_amount":6000,"order_lines":[{"total_amount":5000}]}`, "order_lines", "order_lines: total_amount sum 5000 does not equal captured_amount 6000"},
		{"shipping_info object", captureRoute, `{"captured_amount":1,"shipping_info":{}}`, "shipping_info", "shipping_info must be an array"},
		{"too much shipping_info", captureRoute, `{"captured_amount":1,"shipping_info":[` + strings.Repeat(`{},`, 500) + `{}]}`, "shipping_info", "at most 500 entries"},
		{"update amount missing", updateRoute, `{"order_lines":[]}`, "order_amount", "order_amount is required"},
		{"update lines sum", updateRoute, `{"order_amount":100,"order_lines":[{"total_amount":90}]}`, "order_lines", "order_lines: total_amount sum 90 does not equal order_amount 100"},
		{"refund 0", refundRoute, `{"refunded_amount":0}`, "refunded_amount", "refunded_amount must be an integer between 1 and 200000000"},
		{"refund missing", refundRoute, `{}`, "refunded_amount", "refunded_amount is required"},

		// The document itself.
		{"trailing object", captureRoute, `{"captured_amount":1}{"captured_amount":7000}`, "", "unexpected data after the JSON object"},
		{"byte order mark", captureRoute, "\xEF\xBB\xBF{\"captured_amount\":1}", "", "byte order mark"},
		{"invalid UTF-8", captureRoute, "{\"captured_amount\":1,\"reference\":\"\xff\"}", "reference", "invalid UTF-8"},
		{"lone surrogate", captureRoute, `{"captured_amount":1,"reference":"\udc00"}`, "reference", "lone UTF-16 low surrogate"},
		{"depth 65", captureRoute, `{"captured_amount":1,"x":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`, "x" + strings.Repeat("[0]", 63), "too deeply nested"},
		{"empty capture body", captureRoute, ``, "", "the body is empty"},
		{"array body", captureRoute, `[{"captured_amount":1}]`, "", "must be a JSON object"},
		{"comment", captureRoute, `{"captured_amount":1 /* 7000 */}`, "captured_amount", "expected ',' or '}'"},
		{"single quotes", captureRoute, `{'captured_amount':1}`, "", "expected a member name in double quotes"},
		{"NaN", captureRoute, `{"captured_amount":NaN}`, "captured_amount", "NaN"},
		{"leading zero", captureRoute, `{"captured_amount":0100}`, "captured_amount", "leading zero"},
		{"trailing comma", captureRoute, `{"captured_amount":1,}`, "captured_amount", "trailing comma"},
		{"cancel with a bad body", Route{Op: OpCancel, OrderID: orderID}, `{"a":1,"a":2}`, "a", "duplicate member"},
		{"release with whitespace", Route{Op: OpRelease, OrderID: orderID}, " ", "", "the body is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := Klarna().ParseRequest(tt.route, []byte(tt.body))
			if req != nil {
				t.Errorf("request returned with the error: %+v", req)
			}
			assertBadValue(t, err, tt.field, tt.msg)
		})
	}
}

func TestKlarnaEMDKeys(t *testing.T) {
	body := `{"order_amount":100,"purchase_currency":"EUR","order_lines":[],"auto_capture":true,
	"attachment":{"content_type":"application/vnd.klarna.internal.emd-v2+json",
	"body":"{\"event\":[{\"event_name\":\"Concert\"}],\"voucher\":[],\"in_store_payment\":{},\"a\":\"\",\"b\":null,\"c\":0,\"d\":false,\"\\u0065\\u006d\\u0064\":\"x\"}"}}`
	req, err := Klarna().ParseRequest(createRoute, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if !req.EMD.Present || !reflect.DeepEqual(req.EMD.Keys, []string{"event", "c", "d", "emd"}) {
		t.Errorf("EMD = %+v", req.EMD)
	}
	if req.EMD.Has("voucher") || req.EMD.Has("in_store_payment") || !req.EMD.Has("event") {
		t.Errorf("Has: %+v", req.EMD)
	}

	req, err = Klarna().ParseRequest(createRoute, []byte(`{"order_amount":1,"purchase_currency":"EUR","order_lines":[],
	"attachment":{"content_type":"Application/Vnd.Klarna.Internal.Emd-V2+Json","body":"{}"}}`))
	if err != nil || !req.EMD.Present || len(req.EMD.Keys) != 0 {
		t.Errorf("empty EMD: %+v, %v", req, err)
	}
}

func TestKlarnaPhysicalLines(t *testing.T) {
	for typ, physical := range map[string]bool{
		`"physical"`: true, `"PHYSICAL"`: true, `"Physical"`: true, `"ph\u0079sical"`: true,
		`"digital"`: false, `"physical "`: false, `"gift_card"`: false,
	} {
		body := `{"order_amount":1,"purchase_currency":"EUR","order_lines":[{"type":"digital","total_amount":0},{"type":` + typ + `,"total_amount":1}]}`
		req, err := Klarna().ParseRequest(createRoute, []byte(body))
		if err != nil || req.PhysicalLines != physical {
			t.Errorf("type %s: %+v, %v; want PhysicalLines %v", typ, req, err, physical)
		}
	}
}

func TestKlarnaFingerprint(t *testing.T) {
	same := []string{
		`{"captured_amount":6000,"reference":"r1","order_lines":[{"type":"physical","total_amount":6000}]}`,
		"{ \"order_lines\" : [ { \"total_amount\" : 6000 , \"type\" : \"physical\" } ] ,\n\"reference\":\"r\\u0031\", \"captured_amount\":6000 }",
		`{"\u0063aptured_amount":6000,"reference":"\u0072\u0031","order_lines":[{"type":"phys\u0069cal","total_amount":6000}]}`,
	}
	changed := []string{
		`{"captured_amount":6000,"reference":"r2","order_lines":[{"type":"physical","total_amount":6000}]}`,
		`{"captured_amount":6000,"reference":"r1","order_lines":[{"type":"digital","total_amount":6000}]}`,
		`{"captured_amount":6000,"reference":"r1","order_lines":[{"type":"physical","total_amount":6000}],"description":"x"}`,
		`{"captured_amount":6000,"reference":"r1"}`,
	}
	parse := func(body string) [32]byte {
		req, err := Klarna().ParseRequest(keyed(captureRoute), []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return req.Fingerprint
	}
	want := parse(same[0])
	for _, b := range same[1:] {
		if parse(b) != want {
			t.Errorf("fingerprint changed by formatting: %s", b)
		}
	}
	for _, b := range changed {
		if parse(b) == want {
			t.Errorf("fingerprint unchanged by a content change: %s", b)
		}
	}
	if req, _ := Klarna().ParseRequest(keyed(Route{Op: OpCancel, OrderID: orderID}), nil); req.Fingerprint != ([32]byte{}) {
		t.Error("empty body has a fingerprint")
	}
}

// keyed is route as the gateway passes it for a request with an
// idempotency key.
func keyed(route Route) Route {
	route.Keyed = true
	return route
}

// A request without an idempotency key is parsed alike, but without the
// fingerprint only a key's claim compares.
func TestFingerprintOnlyWhenKeyed(t *testing.T) {
	for _, d := range []Dialect{Klarna(), Hellgate()} {
		for _, tc := range []struct {
			route Route
			body  string
		}{
			{createRoute, `{"order_amount":1000,"purchase_currency":"SEK","order_lines":[],"auto_capture":false}`},
			{captureRoute, `{"captured_amount":500,"amount":500,"currency_code":"EUR","reference":"r"}`},
		} {
			withKey, err := d.ParseRequest(keyed(tc.route), []byte(tc.body))
			if err != nil {
				continue // not a body of this dialect
			}
			without, err := d.ParseRequest(tc.route, []byte(tc.body))
			if err != nil {
				t.Fatalf("%s %v without a key: %v", d.Name(), tc.route.Op, err)
			}
			if withKey.Fingerprint == ([32]byte{}) || without.Fingerprint != ([32]byte{}) {
				t.Errorf("%s %v: fingerprint with a key %x, without %x; want one only with the key",
					d.Name(), tc.route.Op, withKey.Fingerprint, without.Fingerprint)
			}
			without.Fingerprint = withKey.Fingerprint
			if !reflect.DeepEqual(withKey, without) {
				t.Errorf("%s %v: parsed %+v with a key, %+v without", d.Name(), tc.route.Op, withKey, without)
			}
		}
	}
}

func TestKlarnaCreatedOrder(t *testing.T) {
	parse := func(route Route, body string) *Request {
		req, err := Klarna().ParseRequest(route, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	manual := parse(createRoute, `{"order_amount":10000,"purchase_currency":"EUR","order_lines":[]}`)
	auto := parse(createRoute, `{"order_amount":10000,"purchase_currency":"EUR","order_lines":[],"auto_capture":true}`)
	checkout := parse(checkoutRoute, `{"order_amount":10000,"purchase_currency":"EUR","order_lines":[],"options":{"auto_capture":true}}`)
	answer := `{"order_id":"` + orderID + `","redirect_url":"https://x.example/r","fraud_status":"ACCEPTED"}`

	id, o, ok := Klarna().CreatedOrder(manual, 200, nil, []byte(answer))
	if !ok || id != orderID || o != (Order{Amount: 10000, Currency: "EUR", State: StateAuthorized}) {
		t.Errorf("manual capture: %q %+v %v", id, o, ok)
	}
	id, o, ok = Klarna().CreatedOrder(auto, 200, nil, []byte(answer))
	if !ok || id != orderID || o != (Order{Amount: 10000, Currency: "EUR", Captured: 10000, State: StateCaptured}) {
		t.Errorf("auto-capture: %q %+v %v", id, o, ok)
	}
	id, _, ok = Klarna().CreatedOrder(manual, 200, nil, []byte(`{"order_id":"`+strings.ToUpper(orderID)+`"}`))
	if !ok || id != orderID {
		t.Errorf("upper-case order id: %q %v", id, ok)
	}
	for _, tt := range []struct {
		name   string
		req    *Request
		status int
		body   string
	}{
		{"checkout", checkout, 201, answer},
		{"checkout 200", checkout, 200, answer},
		{"error status", manual, 400, `{"error_code":"BAD_VALUE"}`},
		{"201", manual, 201, answer},
		{"no order id", manual, 200, `{"fraud_status":"ACCEPTED"}`},
		{"numeric order id", manual, 200, `{"order_id":42}`},
		{"order id with a slash", manual, 200, `{"order_id":"a/b"}`},
		{"duplicate order id", manual, 200, `{"order_id":"a","order_id":"b"}`},
		{"not JSON", manual, 200, `order`},
		{"nil request", nil, 200, answer},
	} {
		if id, o, ok := Klarna().CreatedOrder(tt.req, tt.status, http.Header{}, []byte(tt.body)); ok {
			t.Errorf("%s: learned %q %+v", tt.name, id, o)
		}
	}
}

func TestKlarnaParseOrder(t *testing.T) {
	now := time.Date(2026, 4, 10, 0, 0, 0, 0, time.UTC)
	expires := time.Date(2026, 4, 29, 10, 0, 0, 0, time.UTC)
	o, err := Klarna().ParseOrder(readTestdata(t, "klarna_order.json"), now)
	want := Order{Amount: 10000, Currency: "EUR", Captured: 6000, Released: 1000, State: StateAuthorized, ExpiresAt: expires}
	if err != nil || o != want {
		t.Fatalf("ParseOrder = %+v, %v; want %+v", o, err, want)
	}
	if o.Remaining() != 3000 {
		t.Errorf("Remaining = %d", o.Remaining())
	}

	order := func(status, extra string) []byte {
		return []byte(`{"order_amount":10000,"captured_amount":0,"remaining_authorized_amount":10000,"purchase_currency":"EUR","status":"` + status + `"` + extra + `}`)
	}
	for status, state := range map[string]OrderState{
		"AUTHORIZED": StateAuthorized, "PART_CAPTURED": StateAuthorized, "CAPTURED": StateCaptured,
		"CANCELLED": StateCancelled, "EXPIRED": StateExpired, "CLOSED": StateClosed,
	} {
		if o, err := Klarna().ParseOrder(order(status, ""), now); err != nil || o.State != state {
			t.Errorf("%s: %+v, %v", status, o, err)
		}
	}
	// expires_at reached: no longer capturable, whatever the status says.
	for _, at := range []string{"2026-04-10T00:00:00Z", "2026-04-09T23:59:59.999Z", "2026-04-10T01:00:00+02:00"} {
		if o, err := Klarna().ParseOrder(order("AUTHORIZED", `,"expires_at":"`+at+`"`), now); err != nil || o.State != StateExpired {
			t.Errorf("expires_at %s: %+v, %v", at, o, err)
		}
	}
	if o, _ := Klarna().ParseOrder(order("AUTHORIZED", `,"expires_at":"2026-04-10T00:00:01Z"`), now); o.State != StateAuthorized {
		t.Errorf("not yet expired: %+v", o)
	}
	if o, _ := Klarna().ParseOrder(order("CANCELLED", `,"expires_at":"2020-01-01T00:00:00Z"`), now); o.State != StateCancelled {
		t.Errorf("cancelled and expired: %+v", o)
	}
	// Released never goes negative.
	if o, _ := Klarna().ParseOrder([]byte(`{"order_amount":100,"captured_amount":100,"remaining_authorized_amount":50,"purchase_currency":"EUR","status":"CAPTURED"}`), now); o.Released != 0 {
		t.Errorf("Released = %d", o.Released)
	}

	for _, bad := range []string{
		`{"captured_amount":0,"remaining_authorized_amount":0,"purchase_currency":"EUR","status":"AUTHORIZED"}`,
		`{"order_amount":"100","captured_amount":0,"remaining_authorized_amount":0,"purchase_currency":"EUR","status":"AUTHORIZED"}`,
		`{"order_amount":100.0,"captured_amount":0,"remaining_authorized_amount":0,"purchase_currency":"EUR","status":"AUTHORIZED"}`,
		`{"order_amount":100,"remaining_authorized_amount":0,"purchase_currency":"EUR","status":"AUTHORIZED"}`,
		`{"order_amount":100,"captured_amount":0,"purchase_currency":"EUR","status":"AUTHORIZED"}`,
		`{"order_amount":100,"captured_amount":-1,"remaining_authorized_amount":0,"purchase_currency":"EUR","status":"AUTHORIZED"}`,
		`{"order_amount":100,"captured_amount":0,"remaining_authorized_amount":0,"status":"AUTHORIZED"}`,
		`{"order_amount":100,"captured_amount":0,"remaining_authorized_amount":0,"purchase_currency":"eur","status":"AUTHORIZED"}`,
		`{"order_amount":100,"captured_amount":0,"remaining_authorized_amount":0,"purchase_currency":"EUR"}`,
		`{"order_amount":100,"captured_amount":0,"remaining_authorized_amount":0,"purchase_currency":"EUR","status":"authorized"}`,
		`{"order_amount":100,"captured_amount":0,"remaining_authorized_amount":0,"purchase_currency":"EUR","status":"PENDING"}`,
		`{"order_amount":100,"captured_amount":0,"remaining_authorized_amount":0,"purchase_currency":"EUR","status":"AUTHORIZED","expires_at":"tomorrow"}`,
		`{"order_amount":100,"captured_amount":0,"remaining_authorized_amount":0,"purchase_currency":"EUR","status":"AUTHORIZED","expires_at":1}`,
		`{"order_amount":100,"order_amount":200,"captured_amount":0,"remaining_authorized_amount":0,"purchase_currency":"EUR","status":"AUTHORIZED"}`,
		`{"order_amount":100,"captured_amount":0,"remaining_authorized_amount":0,"purchase_currency":"EUR","status":"AUTHORIZED"} x`,
		``,
	} {
		if o, err := Klarna().ParseOrder([]byte(bad), now); err == nil {
			t.Errorf("ParseOrder(%s) = %+v, want an error", bad, o)
		}
	}
}

func TestKlarnaWriteError(t *testing.T) {
	rec := httptest.NewRecorder()
	msg := `captured_amount 7000 exceeds the remaining authorized amount 6000 ("quoted" <tag>)`
	Klarna().WriteError(rec, 403, Klarna().ErrorCode(CodeCaptureNotAllowed), msg, "captured_amount", "6a9b1cb1-0000-4000-8000-000000000001")
	if rec.Code != 403 || rec.Header().Get("Content-Type") != "application/json" ||
		rec.Header().Get("Klarna-Correlation-Id") != "6a9b1cb1-0000-4000-8000-000000000001" {
		t.Errorf("status %d, headers %v", rec.Code, rec.Header())
	}
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"error_code":     "CAPTURE_NOT_ALLOWED",
		"error_messages": []any{msg},
		"correlation_id": "6a9b1cb1-0000-4000-8000-000000000001",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("body %v, want %v", got, want)
	}
}

func TestDialectBasics(t *testing.T) {
	for _, tt := range []struct {
		name, idem, orderPath string
	}{
		{"klarna", "Klarna-Idempotency-Key", "/ordermanagement/v1/orders/" + orderID},
		{"hellgate", "X-Idempotency-Key", "/payments/" + orderID},
	} {
		d, err := ByName(tt.name)
		if err != nil {
			t.Fatal(err)
		}
		if d.Name() != tt.name || d.IdempotencyHeader() != tt.idem || d.OrderPath(orderID) != tt.orderPath {
			t.Errorf("%s: %q %q %q", tt.name, d.Name(), d.IdempotencyHeader(), d.OrderPath(orderID))
		}
		// The read the gateway makes is a guarded read of the same order.
		if r, err := d.Classify("GET", d.OrderPath(orderID)); err != nil || r != (Route{Op: OpGetOrder, OrderID: orderID}) {
			t.Errorf("%s: OrderPath does not classify as the order read: %+v, %v", tt.name, r, err)
		}
		for _, code := range []string{CodeBadValue, CodeCaptureNotAllowed, CodeTemporarilyUnavail} {
			if d.ErrorCode(code) != code {
				t.Errorf("%s: ErrorCode(%s) = %s", tt.name, code, d.ErrorCode(code))
			}
		}
	}
	for _, name := range []string{"", "Klarna", "adyen"} {
		if _, err := ByName(name); err == nil {
			t.Errorf("ByName(%q) accepted", name)
		}
		if _, ok := Lookup(name); ok {
			t.Errorf("Lookup(%q) found a dialect", name)
		}
	}
}

// The registry lists every dialect once, the default first, and finds each
// by the name it gives itself.
func TestRegistry(t *testing.T) {
	names := Names()
	if len(names) < 2 || names[0] != Default {
		t.Fatalf("Names() = %v, want %s first", names, Default)
	}
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			t.Errorf("%s listed twice", name)
		}
		seen[name] = true
		d, ok := Lookup(name)
		if !ok || d.Name() != name {
			t.Errorf("Lookup(%q) = %v, %v", name, d, ok)
		}
	}
	for _, name := range []string{"klarna", "hellgate"} {
		if !seen[name] {
			t.Errorf("%s is not registered", name)
		}
	}
	if !strings.HasPrefix(NamesText(), "klarna, ") && NamesText() != "klarna or hellgate" {
		t.Errorf("NamesText() = %q", NamesText())
	}
	if _, err := ByName("adyen"); err == nil || !strings.Contains(err.Error(), NamesText()) {
		t.Errorf("ByName(adyen): %v, want the names listed", err)
	}
}

// What differs between the PSPs in the pipeline is the dialect's to say.
func TestDialectTraits(t *testing.T) {
	k, h := Klarna(), Hellgate()
	if !k.RulesDecideAutoCapture() || h.RulesDecideAutoCapture() {
		t.Error("the rules decide Klarna's capture at purchase, not Hellgate's")
	}
	if k.MediaType() != "application/json" || h.MediaType() != "application/json" {
		t.Errorf("media types %q %q", k.MediaType(), h.MediaType())
	}
	if k.AmountField(Route{Op: OpCapture}) != "captured_amount" || k.AmountField(Route{Op: OpUpdateAuthorization}) != "order_amount" ||
		k.AmountField(Route{Op: OpRefund}) != "refunded_amount" || h.AmountField(Route{Op: OpCapture}) != "amount" {
		t.Error("amount fields")
	}
	if s := Stripe(); s.AmountField(Route{Op: OpCapture, OrderID: "pi_3MtwBw"}) != "amount_to_capture" ||
		s.AmountField(Route{Op: OpCapture, OrderID: "ch_3MmlLr"}) != "amount" {
		t.Error("Stripe's amount fields: a PaymentIntent capture's is amount_to_capture, a Charge capture's amount")
	}
	if k.CurrencyField(OpCreateOrder) != "purchase_currency" || h.CurrencyField(OpCapture) != "currency_code" ||
		Stripe().CurrencyField(OpCreateOrder) != "currency" {
		t.Error("currency fields")
	}
	for id, want := range map[string]string{
		"pi_3MtwBwLkdIwHu7ix28a3tqPa": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
		"ch_3MmlLrLkdIwHu7ix0snN0B15": "ch_3MmlLrLkdIwHu7ix0snN0B15",
		"py_1Abc":                     "py_1Abc",
		"pi_4111111111111111":         "",
		"pi_":                         "",
		"pi_abc-def":                  "",
		"cus_NffrFeUfNV2Hib":          "",
		orderID:                       "",
	} {
		if got := Stripe().LogOrderID(id); got != want {
			t.Errorf("stripe: LogOrderID(%q) = %q, want %q", id, got, want)
		}
	}
	// Logs keep an order id only in the form the PSP issues it: anything
	// else in its place may be what the caller sent, a card number too.
	for _, d := range []Dialect{k, h} {
		for id, want := range map[string]string{
			orderID:                  orderID,
			strings.ToUpper(orderID): "",
			"4111111111111111":       "",
			"":                       "",
		} {
			if got := d.LogOrderID(id); got != want {
				t.Errorf("%s: LogOrderID(%q) = %q, want %q", d.Name(), id, got, want)
			}
		}
	}
	for _, tt := range []struct {
		d           Dialect
		replay, got []string
	}{
		{k, []string{"Capture-Id", "Refund-Id", "Location", "Klarna-Correlation-Id"}, k.ReplayHeaders()},
		{h, []string{"Location", "X-Correlation-Id"}, h.ReplayHeaders()},
	} {
		for _, want := range append(tt.replay, "Content-Type") {
			if !slices.Contains(tt.got, want) {
				t.Errorf("%s: a replay does not carry %s", tt.d.Name(), want)
			}
		}
		if slices.Contains(tt.got, "Set-Cookie") {
			t.Errorf("%s: a replay carries Set-Cookie", tt.d.Name())
		}
		if !slices.Contains(tt.d.ReadHeaders(), "WWW-Authenticate") {
			t.Errorf("%s: a refused read loses WWW-Authenticate", tt.d.Name())
		}
	}
}

// Every route that can ask for capture at purchase reads its flag into
// AutoCapture; the routes without order lines in their body say so.
func TestKlarnaCaptureAtPurchaseFlags(t *testing.T) {
	order := `{"order_amount":100,"purchase_currency":"EUR","order_lines":[{"type":"physical","total_amount":100}]`
	hpp := `{"payment_session_url":"https://api.klarna.com/payments/v1/sessions/x","options":{"place_order_mode":%s}}`
	network := `{"currency":"EUR","request_payment_transaction":{"amount":100,"capture":%s}}`
	update := Route{Op: OpUpdateCheckoutOrder, OrderID: orderID}
	for _, tt := range []struct {
		name  string
		route Route
		body  string
		want  AutoCapture
	}{
		{"token order, auto_capture true", Route{Op: OpCreateTokenOrder}, order + `,"auto_capture":true}`, AutoCaptureTrue},
		{"token order, auto_capture false", Route{Op: OpCreateTokenOrder}, order + `,"auto_capture":false}`, AutoCaptureFalse},
		{"token order, options ignored", Route{Op: OpCreateTokenOrder}, order + `,"options":{"auto_capture":true}}`, AutoCaptureAbsent},
		{"checkout update, options.auto_capture", update, order + `,"options":{"auto_capture":true}}`, AutoCaptureTrue},
		{"checkout update, top-level ignored", update, order + `,"auto_capture":true}`, AutoCaptureAbsent},
		{"HPP CAPTURE_ORDER", Route{Op: OpCreateHPPSession}, strings.Replace(hpp, "%s", `"CAPTURE_ORDER"`, 1), AutoCaptureTrue},
		{"HPP escaped CAPTURE_ORDER", Route{Op: OpCreateHPPSession}, strings.Replace(hpp, "%s", `"CAPTURE\u005fORDER"`, 1), AutoCaptureTrue},
		{"HPP PLACE_ORDER", Route{Op: OpCreateHPPSession}, strings.Replace(hpp, "%s", `"PLACE_ORDER"`, 1), AutoCaptureFalse},
		{"HPP NONE", Route{Op: OpCreateHPPSession}, strings.Replace(hpp, "%s", `"NONE"`, 1), AutoCaptureFalse},
		{"HPP without options", Route{Op: OpCreateHPPSession}, `{"payment_session_url":"https://x"}`, AutoCaptureAbsent},
		{"HPP without place_order_mode", Route{Op: OpCreateHPPSession}, `{"options":{"purchase_type":"BUY"}}`, AutoCaptureAbsent},
		{"network NOW", Route{Op: OpAuthorizePayment}, strings.Replace(network, "%s", `"NOW"`, 1), AutoCaptureTrue},
		{"network LATER", Route{Op: OpAuthorizePayment}, strings.Replace(network, "%s", `"LATER"`, 1), AutoCaptureFalse},
		{"network without capture", Route{Op: OpAuthorizePayment}, `{"currency":"EUR","request_payment_transaction":{"amount":100}}`, AutoCaptureAbsent},
		{"network without transaction", Route{Op: OpAuthorizePayment}, `{"currency":"EUR"}`, AutoCaptureAbsent},
	} {
		req, err := Klarna().ParseRequest(tt.route, []byte(tt.body))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		linesUnknown := tt.route.Op == OpCreateHPPSession || tt.route.Op == OpAuthorizePayment
		if req.AutoCapture != tt.want || req.LinesUnknown != linesUnknown || req.OrderID != tt.route.OrderID {
			t.Errorf("%s: AutoCapture %v, LinesUnknown %v, order %q; want %v, %v", tt.name, req.AutoCapture, req.LinesUnknown, req.OrderID, tt.want, linesUnknown)
		}
		if !linesUnknown && (!req.PhysicalLines || req.OrderAmount != 100) {
			t.Errorf("%s: order lines or amount not read: %+v", tt.name, req)
		}
	}

	for _, tt := range []struct {
		name, field string
		route       Route
		body        string
	}{
		{"HPP lower case", "options.place_order_mode", Route{Op: OpCreateHPPSession}, strings.Replace(hpp, "%s", `"capture_order"`, 1)},
		{"HPP unknown mode", "options.place_order_mode", Route{Op: OpCreateHPPSession}, strings.Replace(hpp, "%s", `"AUTO"`, 1)},
		{"HPP empty mode", "options.place_order_mode", Route{Op: OpCreateHPPSession}, strings.Replace(hpp, "%s", `""`, 1)},
		{"HPP mode null", "options.place_order_mode", Route{Op: OpCreateHPPSession}, strings.Replace(hpp, "%s", `null`, 1)},
		{"HPP mode boolean", "options.place_order_mode", Route{Op: OpCreateHPPSession}, strings.Replace(hpp, "%s", `true`, 1)},
		{"HPP mode misspelled", "options.place_order_mode", Route{Op: OpCreateHPPSession}, `{"options":{"placeOrderMode":"CAPTURE_ORDER"}}`},
		{"HPP options misspelled", "options", Route{Op: OpCreateHPPSession}, `{"Options":{"place_order_mode":"CAPTURE_ORDER"}}`},
		{"HPP options not an object", "options", Route{Op: OpCreateHPPSession}, `{"options":[]}`},
		{"network lower case", "request_payment_transaction.capture", Route{Op: OpAuthorizePayment}, strings.Replace(network, "%s", `"now"`, 1)},
		{"network unknown", "request_payment_transaction.capture", Route{Op: OpAuthorizePayment}, strings.Replace(network, "%s", `"AUTOMATIC"`, 1)},
		{"network boolean", "request_payment_transaction.capture", Route{Op: OpAuthorizePayment}, strings.Replace(network, "%s", `true`, 1)},
		{"network misspelled", "request_payment_transaction.capture", Route{Op: OpAuthorizePayment}, `{"request_payment_transaction":{"Capture":"NOW"}}`},
		{"network transaction not an object", "request_payment_transaction", Route{Op: OpAuthorizePayment}, `{"request_payment_transaction":"NOW"}`},
		{"token order amount missing", "order_amount", Route{Op: OpCreateTokenOrder}, `{"purchase_currency":"EUR","order_lines":[],"auto_capture":true}`},
		{"checkout update options.auto_capture string", "options.auto_capture", update, order + `,"options":{"auto_capture":"true"}}`},
	} {
		_, err := Klarna().ParseRequest(tt.route, []byte(tt.body))
		var e *Error
		if !errors.As(err, &e) || e.Status != http.StatusBadRequest || !strings.Contains(e.Message, tt.field) {
			t.Errorf("%s: err = %v, want 400 naming %s", tt.name, err, tt.field)
		}
	}
}

// A Customer Token order's answer is a Payments create-order answer: the
// ledger learns the order from it.
func TestKlarnaCreatedTokenOrder(t *testing.T) {
	req, err := Klarna().ParseRequest(Route{Op: OpCreateTokenOrder}, []byte(`{"order_amount":500,"purchase_currency":"SEK","order_lines":[],"auto_capture":false}`))
	if err != nil {
		t.Fatal(err)
	}
	id, o, ok := Klarna().CreatedOrder(req, 200, nil, []byte(`{"order_id":"`+orderID+`","fraud_status":"ACCEPTED"}`))
	if !ok || id != orderID || o != (Order{Amount: 500, Currency: "SEK", State: StateAuthorized}) {
		t.Errorf("token order: %q %+v %v", id, o, ok)
	}
}
