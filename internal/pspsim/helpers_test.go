package pspsim

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/testclock"
)

// harness is a simulator behind a real loopback HTTP server, with a settable
// clock and no real sleeping.
type harness struct {
	t     *testing.T
	sim   *Server
	srv   *httptest.Server
	clock *testclock.Clock

	// client sends the requests. Go's client resends a request that carries
	// X-Idempotency-Key when a reused connection closes without an answer,
	// which would hide a dropped connection; tests of drops use a client
	// without keep-alives.
	client *http.Client
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	h := &harness{t: t, clock: testclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))}
	if opts.Now == nil {
		opts.Now = h.clock.Now
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	h.sim = New(opts)
	h.sim.sleep = func(context.Context, time.Duration) error { return nil }
	h.srv = httptest.NewServer(h.sim)
	t.Cleanup(h.srv.Close)
	h.client = h.srv.Client()
	return h
}

// result is a response with its body read.
type result struct {
	status int
	header http.Header
	body   string
}

// send makes a request; hdr holds header name/value pairs.
func (h *harness) send(method, path, body string, hdr ...string) (result, error) {
	req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{}, err
	}
	return result{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

func (h *harness) do(method, path, body string, hdr ...string) result {
	h.t.Helper()
	res, err := h.send(method, path, body, hdr...)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	return res
}

// merchant sends requests with a PSP's credentials.
type merchant struct {
	h    *harness
	auth []string
}

// klarna is a Klarna merchant with Basic credentials user:secret.
func (h *harness) klarna(user string) merchant {
	return merchant{h, []string{"Authorization", basic(user + ":secret")}}
}

// hellgate is a Hellgate merchant with the given API key.
func (h *harness) hellgate(key string) merchant {
	return merchant{h, []string{"X-API-Key", key}}
}

func basic(credential string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(credential))
}

func (m merchant) do(method, path, body string, hdr ...string) result {
	m.h.t.Helper()
	return m.h.do(method, path, body, append(hdr, m.auth...)...)
}

func orderJSON(amount int64, autoCapture bool) string {
	return fmt.Sprintf(`{"purchase_country":"SE","purchase_currency":"SEK","order_amount":%d,"auto_capture":%t,
		"order_lines":[{"type":"digital","name":"E-book","quantity":1,"unit_price":%d,"total_amount":%d}]}`,
		amount, autoCapture, amount, amount)
}

var tokens struct {
	sync.Mutex
	n int
}

func newToken() string {
	tokens.Lock()
	defer tokens.Unlock()
	tokens.n++
	return fmt.Sprintf("token-%d", tokens.n)
}

// createOrder creates a Klarna Payments order and returns its id.
func (m merchant) createOrder(amount int64, autoCapture bool) string {
	m.h.t.Helper()
	res := m.do("POST", "/payments/v1/authorizations/"+newToken()+"/order", orderJSON(amount, autoCapture))
	if res.status != 200 {
		m.h.t.Fatalf("create order: %d %s", res.status, res.body)
	}
	var out struct {
		OrderID string `json:"order_id"`
	}
	decode(m.h.t, res.body, &out)
	return out.OrderID
}

func (m merchant) capture(orderID string, amount int64, hdr ...string) result {
	m.h.t.Helper()
	return m.do("POST", "/ordermanagement/v1/orders/"+orderID+"/captures", fmt.Sprintf(`{"captured_amount":%d}`, amount), hdr...)
}

// order reads a Klarna order through Order Management.
func (m merchant) order(id string) orderView {
	m.h.t.Helper()
	res := m.do("GET", "/ordermanagement/v1/orders/"+id, "")
	if res.status != 200 {
		m.h.t.Fatalf("get order: %d %s", res.status, res.body)
	}
	var v orderView
	decode(m.h.t, res.body, &v)
	return v
}

// createPayment creates a Hellgate one-off payment and returns its id.
func (m merchant) createPayment(amount int64, currency string) string {
	m.h.t.Helper()
	res := m.do("POST", "/payments/one-off", fmt.Sprintf(`{"amount":%d,"currency_code":%q,"reference":"order-1","source":{"type":"card"}}`, amount, currency))
	if res.status != 201 {
		m.h.t.Fatalf("create payment: %d %s", res.status, res.body)
	}
	var out struct {
		ID string `json:"id"`
	}
	decode(m.h.t, res.body, &out)
	return out.ID
}

func decode(t *testing.T, body string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("decoding %q: %v", body, err)
	}
}

// klarnaErr checks a Klarna error answer and returns its code and message.
func klarnaErr(t *testing.T, res result, status int) (code, message string) {
	t.Helper()
	if res.status != status {
		t.Fatalf("status %d, want %d: %s", res.status, status, res.body)
	}
	if ct := res.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var e struct {
		ErrorCode     string   `json:"error_code"`
		ErrorMessages []string `json:"error_messages"`
		CorrelationID string   `json:"correlation_id"`
	}
	decode(t, res.body, &e)
	if len(e.ErrorMessages) != 1 || e.ErrorMessages[0] == "" {
		t.Errorf("error_messages %q, want one message", e.ErrorMessages)
	}
	if _, ok := normalizeUUID(e.CorrelationID); !ok {
		t.Errorf("correlation_id %q is not a UUID", e.CorrelationID)
	}
	return e.ErrorCode, strings.Join(e.ErrorMessages, "")
}

// hellgateErr checks a Hellgate error answer and returns its code and message.
func hellgateErr(t *testing.T, res result, status int) (code, message string) {
	t.Helper()
	if res.status != status {
		t.Fatalf("status %d, want %d: %s", res.status, status, res.body)
	}
	if ct := res.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var e struct {
		Code          string `json:"code"`
		Message       string `json:"message"`
		CorrelationID string `json:"correlation_id"`
	}
	decode(t, res.body, &e)
	if e.Message == "" {
		t.Error("empty message")
	}
	if _, ok := normalizeUUID(e.CorrelationID); !ok {
		t.Errorf("correlation_id %q is not a UUID", e.CorrelationID)
	}
	return e.Code, e.Message
}
