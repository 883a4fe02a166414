package psp

import (
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

const paymentID = "54ba1fdb-7e4e-402b-aebb-66f9d5345cf8"

func TestHellgateParseRequest(t *testing.T) {
	create := Route{Op: OpCreateOrder}
	capture := Route{Op: OpCapture, OrderID: paymentID}
	tests := []struct {
		route Route
		body  string
		want  Request
	}{
		{create, `{"amount":1000,"currency_code":"EUR","reference":"Order #12345","source":{"type":"card"}}`,
			Request{OrderAmount: 1000, HasOrderAmount: true, Currency: "EUR"}},
		{capture, `{"amount":800,"currency_code":"EUR","reference":"Partial capture order #12345"}`,
			Request{Amount: 800, HasAmount: true, Currency: "EUR"}},
		{capture, `{"reference":"Full capture"}`, Request{}},
		{capture, `{}`, Request{}},
		{Route{Op: OpGetOrder, OrderID: paymentID}, ``, Request{}},
	}
	for _, tt := range tests {
		req, err := Hellgate().ParseRequest(keyed(tt.route), []byte(tt.body))
		if err != nil {
			t.Errorf("%s: %v", tt.body, err)
			continue
		}
		want := tt.want
		want.Op, want.OrderID = tt.route.Op, tt.route.OrderID
		if tt.body != "" {
			want.Fingerprint = fingerprint(t, tt.body)
		}
		if !reflect.DeepEqual(*req, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.body, *req, want)
		}
	}
}

func TestHellgateParseRequestHazards(t *testing.T) {
	create := Route{Op: OpCreateOrder}
	capture := Route{Op: OpCapture, OrderID: paymentID}
	tests := []struct {
		route      Route
		body       string
		field, msg string
	}{
		{create, `{"currency_code":"EUR"}`, "amount", "amount is required"},
		{create, `{"amount":0,"currency_code":"EUR"}`, "amount", "amount must be an integer between 1 and 200000000"},
		{create, `{"amount":10.5,"currency_code":"EUR"}`, "amount", "amount must be an integer between 1 and 200000000"},
		{create, `{"amount":{"value":10},"currency_code":"EUR"}`, "amount", "not an object"},
		{create, `{"amount":10}`, "currency_code", "currency_code is required"},
		{create, `{"amount":10,"currency_code":"Eur"}`, "currency_code", "three-letter currency code"},
		{create, `{"amount":10,"Amount":20,"currency_code":"EUR"}`, "Amount", "differ only by letter case"},
		{capture, `{"amount":800,"amount":1000}`, "amount", `duplicate member "amount"`},
		{capture, `{"amount":"800"}`, "amount", "not a string"},
		{capture, `{"amount":null}`, "amount", "not null"},
		{capture, `{"amount":8e2}`, "amount", "must be an integer"},
		{capture, `{"amount":200000001}`, "amount", "must be an integer between 1 and 200000000"},
		{capture, `{"AMOUNT":800}`, "AMOUNT", "must be spelled amount"},
		{capture, `{"amount":800,"currency_code":978}`, "currency_code", "must be a string"},
		{capture, `{"reference":7}`, "reference", "reference must be a string, not a number"},
		{capture, ``, "", "the body is empty"},
		{capture, `{"amount":800} {"amount":1000}`, "", "unexpected data after the JSON object"},
	}
	for _, tt := range tests {
		req, err := Hellgate().ParseRequest(tt.route, []byte(tt.body))
		if req != nil {
			t.Errorf("%s: request returned with the error", tt.body)
		}
		assertBadValue(t, err, tt.field, tt.msg)
	}
}

func payment(status, amount string) []byte {
	return []byte(`{"id":"` + paymentID + `","amount":` + amount + `,"currency_code":"EUR","status":"` + status + `","use_case":"ONE_OFF"}`)
}

func TestHellgateParseOrder(t *testing.T) {
	o, err := Hellgate().ParseOrder(readTestdata(t, "hellgate_payment.json"), time.Time{})
	if want := (Order{Amount: 1000, Currency: "EUR", State: StateAuthorized, SingleCapture: true}); err != nil || o != want {
		t.Fatalf("ParseOrder = %+v, %v; want %+v", o, err, want)
	}
	tests := []struct {
		status, amount string
		want           Order
	}{
		{"authorized", `{"requested":1000,"authorized":1000}`, Order{Amount: 1000, State: StateAuthorized}},
		{"open", `{"requested":1000}`, Order{State: StatePending}},
		{"processing", `{"requested":1000}`, Order{State: StatePending}},
		{"processing", `{"requested":1000,"authorized":1000}`, Order{Amount: 1000, State: StatePending}},
		{"capturing", `{"requested":1000,"authorized":1000}`, Order{Amount: 1000, Captured: 1000, State: StateCaptured}},
		{"capturing", `{"requested":1000,"authorized":1000,"captured":800}`, Order{Amount: 1000, Captured: 800, Released: 200, State: StateCaptured}},
		{"captured", `{"requested":1000,"authorized":1000,"captured":800}`, Order{Amount: 1000, Captured: 800, Released: 200, State: StateCaptured}},
		{"settling", `{"requested":1000,"authorized":1000,"captured":1000}`, Order{Amount: 1000, Captured: 1000, State: StateCaptured}},
		{"settled", `{"requested":1000,"authorized":1000,"captured":1000}`, Order{Amount: 1000, Captured: 1000, State: StateCaptured}},
		{"voiding", `{"requested":1000,"authorized":1000}`, Order{Amount: 1000, State: StateCancelled}},
		{"voided", `{"requested":1000,"authorized":1000}`, Order{Amount: 1000, State: StateCancelled}},
		{"failed", `{"requested":1000}`, Order{State: StateClosed}},
	}
	for _, tt := range tests {
		o, err := Hellgate().ParseOrder(payment(tt.status, tt.amount), time.Time{})
		want := tt.want
		want.Currency, want.SingleCapture = "EUR", true
		if err != nil || o != want {
			t.Errorf("%s %s: %+v, %v; want %+v", tt.status, tt.amount, o, err, want)
		}
		if tt.status != "authorized" && o.Remaining() != 0 && o.State == StateCaptured {
			t.Errorf("%s: a captured payment has %d remaining", tt.status, o.Remaining())
		}
	}
	for _, bad := range [][]byte{
		payment("authorized", `{"requested":1000}`),
		payment("captured", `{"requested":1000,"authorized":1000}`),
		payment("authorized", `{"authorized":"1000"}`),
		payment("authorized", `{"authorized":1000.0}`),
		payment("authorized", `1000`),
		payment("AUTHORIZED", `{"authorized":1000}`),
		payment("refunded", `{"authorized":1000}`),
		[]byte(`{"amount":{"authorized":1000},"status":"authorized"}`),
		[]byte(`{"amount":{"authorized":1000},"currency_code":"EUR"}`),
		[]byte(`{"currency_code":"EUR","status":"authorized"}`),
		[]byte(`{"amount":{"authorized":1000,"authorized":5000},"currency_code":"EUR","status":"authorized"}`),
	} {
		if o, err := Hellgate().ParseOrder(bad, time.Time{}); err == nil {
			t.Errorf("ParseOrder(%s) = %+v, want an error", bad, o)
		}
	}
}

func TestHellgateCreatedOrder(t *testing.T) {
	req, err := Hellgate().ParseRequest(Route{Op: OpCreateOrder}, []byte(`{"amount":1000,"currency_code":"EUR","reference":"r"}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, status := range []int{200, 201} {
		id, o, ok := Hellgate().CreatedOrder(req, status, nil, readTestdata(t, "hellgate_payment.json"))
		if !ok || id != paymentID || o != (Order{Amount: 1000, Currency: "EUR", State: StateAuthorized, SingleCapture: true}) {
			t.Errorf("%d: %q %+v %v", status, id, o, ok)
		}
	}
	id, o, ok := Hellgate().CreatedOrder(req, 201, nil, payment("processing", `{"requested":1000}`))
	if !ok || id != paymentID || o.State != StatePending {
		t.Errorf("processing: %q %+v %v", id, o, ok)
	}
	for _, tt := range []struct {
		status int
		body   string
	}{
		{422, `{"code":"UNPROCESSABLE"}`},
		{202, string(payment("authorized", `{"authorized":1000}`))},
		{201, strings.Replace(string(payment("authorized", `{"authorized":1000}`)), paymentID, "a/b", 1)},
		{201, `{"amount":{"authorized":1000},"currency_code":"EUR","status":"authorized"}`},
		{201, string(payment("bogus", `{"authorized":1000}`))},
	} {
		if id, o, ok := Hellgate().CreatedOrder(req, tt.status, nil, []byte(tt.body)); ok {
			t.Errorf("%d %s: learned %q %+v", tt.status, tt.body, id, o)
		}
	}
	if _, _, ok := Hellgate().CreatedOrder(nil, 201, nil, readTestdata(t, "hellgate_payment.json")); ok {
		t.Error("learned without a request")
	}
}

func TestHellgateWriteError(t *testing.T) {
	rec := httptest.NewRecorder()
	Hellgate().WriteError(rec, 400, CodeBadValue, `amount must be an integer between 1 and 200000000, not a "string"`, "amount", "corr-1")
	if rec.Code != 400 || rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("X-Correlation-Id") != "corr-1" {
		t.Errorf("status %d, headers %v", rec.Code, rec.Header())
	}
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"code": "BAD_VALUE", "message": `amount must be an integer between 1 and 200000000, not a "string"`, "correlation_id": "corr-1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("body %v, want %v", got, want)
	}
}
