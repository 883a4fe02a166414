package guard

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pspguard/pspguard/internal/psp"
)

// A PSP's "retry later" (429, 408, 425, and 409 while the same key is
// still being executed) says nothing of what the PSP did with the key: it
// is not kept for replay, so a retry reaches the PSP, and it does not
// release a capture's reservation, which may be the one a retry of a
// capture with a lost answer took over while the PSP still executes it.
func TestRetryLaterAnswers(t *testing.T) {
	f := newFixture(t, psp.Klarna(), "enforce")
	auth := basic("shoeshop")
	id := f.createOrder(auth, 10000)
	captures := "/ordermanagement/v1/orders/" + id + "/captures"
	sim := f.next
	later := func(status int) Next {
		return nextFunc(func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"error_code":"TOO_MANY_REQUESTS","error_messages":["retry later"]}`))
			return nil
		})
	}

	// Rate limited, then retried: the retry is the PSP's to answer.
	for _, status := range []int{http.StatusTooManyRequests, http.StatusRequestTimeout, http.StatusTooEarly} {
		f.next = later(status)
		if got := f.do("POST", captures, `{"captured_amount":100}`, "Authorization", auth, "Klarna-Idempotency-Key", "k-"+http.StatusText(status)); got.status != status {
			t.Fatalf("%d: the caller got %d", status, got.status)
		}
		f.next = sim
		before := f.simRequests("capture")
		got := f.do("POST", captures, `{"captured_amount":100}`, "Authorization", auth, "Klarna-Idempotency-Key", "k-"+http.StatusText(status))
		if got.status != http.StatusCreated || got.header.Get("Idempotent-Replayed") != "" || f.simRequests("capture") != before+1 {
			t.Errorf("retry after %d: %d %v, PSP captures %d -> %d; want it forwarded and captured", status, got.status, got.header, before, f.simRequests("capture"))
		}
	}

	// The PSP captures, the answer is lost: the reservation is uncertain.
	f.next = nextFunc(func(w http.ResponseWriter, r *http.Request) error {
		sim.ServeHTTP(httptest.NewRecorder(), r)
		return errors.New("connection reset by peer")
	})
	if got := f.do("POST", captures, `{"captured_amount":4000}`, "Authorization", auth, "Klarna-Idempotency-Key", "k-lost"); got.status != http.StatusBadGateway {
		t.Fatalf("lost answer: %d %s", got.status, got.body)
	}
	// The retry takes the reservation over; the PSP answers that the key
	// is still being executed.
	f.next = later(http.StatusConflict)
	if got := f.do("POST", captures, `{"captured_amount":4000}`, "Authorization", auth, "Klarna-Idempotency-Key", "k-lost"); got.status != http.StatusConflict {
		t.Fatalf("in progress: %d %s", got.status, got.body)
	}
	f.next = sim
	// 300 captured, and 4000 whose answer was lost: 5700 remain.
	before := f.simRequests("capture")
	got := f.do("POST", captures, `{"captured_amount":9000}`, "Authorization", auth)
	if got.status != http.StatusForbidden || f.simRequests("capture") != before {
		t.Errorf("a capture of more than remains: %d %s, and it reached the PSP %d times", got.status, got.body, f.simRequests("capture")-before)
	}
	if got := f.captured(id); got != 4300 {
		t.Errorf("the PSP captured %d, want 4300", got)
	}
	// The key's retry now reaches the PSP, which replays its capture.
	got = f.do("POST", captures, `{"captured_amount":4000}`, "Authorization", auth, "Klarna-Idempotency-Key", "k-lost")
	if got.status != http.StatusCreated || got.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("retry after 409: %d %v %s", got.status, got.header, got.body)
	}
	if got := f.captured(id); got != 4300 {
		t.Errorf("the PSP captured %d, want 4300", got)
	}
}
