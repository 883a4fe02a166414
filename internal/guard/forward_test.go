package guard

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pspguard/pspguard/internal/psp"
)

// A proxy that aborts an answer it began (http.ErrAbortHandler, as
// reverse_proxy does when the PSP's body falls short) has given no
// answer: the caller gets 502 in the PSP's format, with the header fields
// it had before and none of the abandoned answer's. Any other panic is not
// the guard's to stop.
func TestForwardAbortedAnswer(t *testing.T) {
	f := newFixture(t, psp.Klarna(), "enforce")
	var value any
	f.next = nextFunc(func(w http.ResponseWriter, _ *http.Request) error {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Encoding", "gzip")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"order_id":`))
		panic(value)
	})

	value = http.ErrAbortHandler
	r := httptest.NewRequest("POST", createPath(), strings.NewReader(klarnaOrder(500, false, "physical")))
	r.Header.Set("Content-Type", "application/json")
	r.SetBasicAuth("shoeshop", "secret")
	w := httptest.NewRecorder()
	w.Header().Set("Server", "Caddy")
	if err := f.g.ServeHTTP(w, r, f.next); err != nil {
		t.Fatal(err)
	}
	if code, _ := klarnaError(t, w.Body.String()); w.Code != http.StatusBadGateway || code != "TEMPORARILY_UNAVAILABLE" {
		t.Errorf("aborted answer: %d %s", w.Code, w.Body)
	}
	if h := w.Header(); h.Get("Server") != "Caddy" || h.Get("Content-Type") != "application/json" || h.Get("Content-Encoding") != "" {
		t.Errorf("header %v: want Server kept, the answer's Content-Encoding gone", h)
	}
	if n := f.decisions(psp.OpCreateOrder, OutcomeError); n != 1 {
		t.Errorf("decisions_total{create_order,error} = %v, want 1", n)
	}

	value = "another failure"
	defer func() {
		if p := recover(); p != value {
			t.Errorf("panic %v, want %v to go on", p, value)
		}
	}()
	f.do("POST", createPath(), klarnaOrder(500, false, "physical"), "Authorization", basic("shoeshop"))
	t.Error("a panic other than the abort was stopped")
}

// A write whose answer did not come tells its caller whether the PSP may
// have carried it out: not when its body never left the gateway, and then
// how to learn the outcome.
func TestUpstreamFailureSaysWhetherSent(t *testing.T) {
	for _, tt := range []struct {
		name     string
		readBody bool
		want     string
	}{
		{"refused before the body was sent", false, "the PSP could not be reached"},
		{"lost after the body was sent", true, "the PSP's answer did not come through; the request may have been carried out: send it again with the same idempotency key to learn its outcome"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, psp.Klarna(), "enforce")
			f.next = nextFunc(func(_ http.ResponseWriter, r *http.Request) error {
				if tt.readBody {
					_, _ = io.Copy(io.Discard, r.Body)
				}
				return errors.New("connection reset by peer")
			})
			a := f.do("POST", createPath(), klarnaOrder(1000, false, "physical"), "Authorization", basic("shoeshop"))
			if code, msg := klarnaError(t, a.body); a.status != http.StatusBadGateway || code != psp.CodeTemporarilyUnavail || msg != tt.want {
				t.Errorf("%d %s %q, want 502 %s %q", a.status, code, msg, psp.CodeTemporarilyUnavail, tt.want)
			}
		})
	}
}
