package caddymodule

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pspguard/pspguard/internal/redistest"
)

// BenchmarkServeHTTP runs the whole psp_guard handler for the requests the
// load benchmark (make bench) sends, with a stub in place of reverse_proxy
// that reads the body and answers as the PSP does. What it measures is the
// gateway's own work per request: classify, read and parse the body,
// decide, keep the ledger and the idempotency cache, metrics and the
// decision log (encoded, then discarded).
func BenchmarkServeHTTP(b *testing.B) {
	stores := []struct {
		name  string
		store func(b *testing.B) *StoreConfig
	}{
		{"memory", func(*testing.B) *StoreConfig { return nil }},
		{"redis", func(b *testing.B) *StoreConfig {
			return &StoreConfig{Type: "redis", URL: redistest.URL(b), Prefix: "pspguard-bench"}
		}},
	}
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			h := benchHandler(b, st.store(b))
			b.Run("create_order", func(b *testing.B) { benchCreateOrder(b, h) })
			b.Run("capture", func(b *testing.B) { benchCapture(b, h) })
			if st.name == "memory" {
				b.Run("passthrough", func(b *testing.B) { benchPassthrough(b, h) })
			}
		})
	}
}

// benchCreateOrder is a create-order with auto_capture for a merchant the
// rules allow; the PSP answers with a new order id every time, which the
// ledger learns.
func benchCreateOrder(b *testing.B, h *Handler) {
	body := []byte(orderBody(10000, true, ""))
	r := benchRequest(b, "POST", "/payments/v1/authorizations/b4bd3423-24e3-4a1a-a3ad-3d03c6ab8a43/order", body)
	answer := []byte(`{"order_id":"00000000-0000-4000-8000-000000000000",` +
		`"redirect_url":"https://pspsim.test/confirmation/00000000-0000-4000-8000-000000000000",` +
		`"fraud_status":"ACCEPTED","authorized_payment_method":{"type":"invoice"}}`)
	idAt := bytes.Index(answer, []byte("000000000000\""))
	n := uint64(0)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return err
		}
		n++
		hexID(answer[idAt:idAt+12], n)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
		w.WriteHeader(http.StatusOK)
		_, err := w.Write(answer)
		return err
	})
	serve(b, h, r, body, next, http.StatusOK, nil)
}

// benchCapture captures 1 from an order the ledger knows, with a fresh
// idempotency key per request: a claim, a reservation and its commit, and
// the answer stored for replay.
func benchCapture(b *testing.B, h *Handler) {
	const orderID = "f3392f8b-6116-4073-ab96-e330819e2c07"
	learn := benchRequest(b, "POST", "/payments/v1/authorizations/b4bd3423-24e3-4a1a-a3ad-3d03c6ab8a43/order",
		[]byte(orderBody(200000000, false, "")))
	w := &discardWriter{header: http.Header{}}
	if err := h.ServeHTTP(w, learn, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusOK)
		_, err := io.WriteString(w, `{"order_id":"`+orderID+`","fraud_status":"ACCEPTED"}`)
		return err
	})); err != nil || w.status != http.StatusOK {
		b.Fatalf("creating the order: %d, %v", w.status, err)
	}

	body := []byte(`{"captured_amount": 1, "description": "shipped"}`)
	r := benchRequest(b, "POST", "/ordermanagement/v1/orders/"+orderID+"/captures", body)
	key := []byte("bench-" + b.Name() + "-000000000000")
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return err
		}
		hdr := w.Header()
		hdr["Capture-Id"] = []string{"4ba29b50-be7b-44f5-a492-113e6a865e22"}
		hdr["Location"] = []string{"/ordermanagement/v1/orders/" + orderID + "/captures/4ba29b50-be7b-44f5-a492-113e6a865e22"}
		hdr["Content-Length"] = []string{"0"}
		w.WriteHeader(http.StatusCreated)
		return nil
	})
	n := uint64(0)
	serve(b, h, r, body, next, http.StatusCreated, func() {
		n++
		hexID(key[len(key)-12:], n)
		r.Header["Klarna-Idempotency-Key"] = []string{string(key)}
	})
}

// benchPassthrough is a request the gateway does not guard.
func benchPassthrough(b *testing.B, h *Handler) {
	r := benchRequest(b, "GET", "/settlements/v1/payouts/12345", nil)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusOK)
		return nil
	})
	serve(b, h, r, nil, next, http.StatusOK, nil)
}

// serve runs the benchmark loop: each iteration hands the handler r with
// its body rewound, after calling prepare, and expects status.
func serve(b *testing.B, h *Handler, r *http.Request, body []byte, next caddyhttp.Handler, status int, prepare func()) {
	w := &discardWriter{header: http.Header{}}
	rb := new(rewindBody)
	b.ReportAllocs()
	for b.Loop() {
		if prepare != nil {
			prepare()
		}
		rb.Reset(body)
		r.Body, r.ContentLength = rb, int64(len(body))
		clear(w.header)
		w.status = 0
		if err := h.ServeHTTP(w, r, next); err != nil || w.status != status {
			b.Fatalf("status %d, %v; want %d", w.status, err, status)
		}
	}
}

// benchHandler provisions a handler with the demo rules and the given
// store, with the decision log encoded as Caddy's default logger does and
// written nowhere.
func benchHandler(b *testing.B, store *StoreConfig) *Handler {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel)
	h := &Handler{Rules: "../testdata/rules/example.yaml", Store: store, logger: zap.New(core)}
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = h.Cleanup() })
	if err := h.Validate(); err != nil {
		b.Fatal(err)
	}
	return h
}

func benchRequest(b *testing.B, method, path string, body []byte) *http.Request {
	r, err := http.NewRequest(method, "http://localhost:8080"+path, bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	r.RequestURI = path
	r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("digitalshop:secret")))
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	return r
}

// hexID writes n as 12 lower-case hex digits into dst.
func hexID(dst []byte, n uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = "0123456789abcdef"[n&15]
		n >>= 4
	}
}

// rewindBody is a request body that can be read again after Reset.
type rewindBody struct{ bytes.Reader }

func (*rewindBody) Close() error { return nil }

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.header }

func (w *discardWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *discardWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(p), nil
}
