package pspsim

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestControlStats(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	id := k.createOrder(6000, false)
	k.capture(id, 2500)
	res := h.do("GET", "/_sim/stats", "")
	var got Stats
	decode(t, res.body, &got)
	if res.status != 200 || res.header.Get("Content-Type") != "application/json" {
		t.Fatalf("stats: %d %s", res.status, res.header.Get("Content-Type"))
	}
	want := Stats{
		Total:    2,
		Requests: map[string]int{"klarna.create_order": 1, "klarna.capture": 1},
		Orders: map[string]OrderStats{id: {
			PSP: pspKlarna, Merchant: "PK1_shop", Status: statusPartCaptured, Currency: "SEK",
			OrderAmount: 6000, CapturedAmount: 2500, Captures: 1,
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stats\n got %+v\nwant %+v", got, want)
	}
	if !reflect.DeepEqual(h.sim.Stats(), want) {
		t.Errorf("/_sim/ requests were counted: %+v", h.sim.Stats())
	}
}

func TestControlFaults(t *testing.T) {
	h := newHarness(t, Options{Latency: 5 * time.Millisecond})
	if res := h.do("POST", "/_sim/faults", `{"latency_ms":40,"fail_percent":25,"drop_after_capture":100}`); res.status != 204 {
		t.Fatalf("set faults: %d %s", res.status, res.body)
	}
	if got := h.sim.Faults(); got != (Faults{Latency: 40 * time.Millisecond, FailPercent: 25, DropAfterCapture: 100}) {
		t.Errorf("faults %+v", got)
	}
	var read faultsJSON
	decode(t, h.do("GET", "/_sim/faults", "").body, &read)
	if read != (faultsJSON{LatencyMS: 40, FailPercent: 25, DropAfterCapture: 100}) {
		t.Errorf("read faults %+v", read)
	}
	// Members left out are 0.
	h.do("POST", "/_sim/faults", `{"fail_percent":10}`)
	if got := h.sim.Faults(); got != (Faults{FailPercent: 10}) {
		t.Errorf("faults %+v", got)
	}
	for _, bad := range []string{`{"fail_percent":101}`, `{"drop_after_capture":-1}`, `{"latency_ms":-1}`, `{"latency_ms":60001}`, `{"fail":1}`, `{`, `[]`} {
		if res := h.do("POST", "/_sim/faults", bad); res.status != 400 {
			t.Errorf("%s: %d", bad, res.status)
		}
	}
	if got := h.sim.Faults(); got != (Faults{FailPercent: 10}) {
		t.Errorf("refused settings changed the faults: %+v", got)
	}
}

func TestControlReset(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	id := k.createOrder(6000, false)
	k.capture(id, 1000, "Klarna-Idempotency-Key", "k1")
	k.do("POST", "/payments/v1/authorizations/tok-reset/order", orderJSON(100, false))
	h.hellgate("hg").createPayment(100, "EUR")
	h.sim.SetFaults(Faults{FailPercent: 100})

	if res := h.do("POST", "/_sim/reset", ""); res.status != 204 {
		t.Fatalf("reset: %d", res.status)
	}
	st := h.sim.Stats()
	if st.Total != 0 || len(st.Requests) != 0 || len(st.Orders) != 0 || st.IdempotencyKeys != 0 || len(h.sim.Requests()) != 0 {
		t.Errorf("after reset: %+v, %d requests", st, len(h.sim.Requests()))
	}
	if f := h.sim.Faults(); f != (Faults{}) {
		t.Errorf("reset kept faults %+v", f)
	}
	if code, _ := klarnaErr(t, k.do("GET", omBase+id, ""), 404); code != "NO_SUCH_ORDER" {
		t.Errorf("order after reset: %q", code)
	}
	if res := k.do("POST", "/payments/v1/authorizations/tok-reset/order", orderJSON(100, false)); res.status != 200 {
		t.Errorf("token after reset: %d", res.status)
	}
	if r := h.sim.Requests(); len(r) != 2 || r[0].Seq != 1 {
		t.Errorf("requests after reset %+v", r)
	}
}

func TestControlRoutes(t *testing.T) {
	h := newHarness(t, Options{})
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"POST", "/_sim/stats", 405, "GET"},
		{"DELETE", "/_sim/requests", 405, "GET"},
		{"PUT", "/_sim/faults", 405, "GET, POST"},
		{"GET", "/_sim/reset", 405, "POST"},
		{"POST", "/_sim/stream", 405, "GET"},
		{"GET", "/_sim/nothing", 404, ""},
		{"GET", "/_sim/stream?chunks=-1", 400, ""},
		{"GET", "/_sim/stream?chunks=10001", 400, ""},
		{"GET", "/_sim/stream?interval_ms=x", 400, ""},
	}
	for _, tt := range tests {
		res := h.do(tt.method, tt.path, "")
		if res.status != tt.status || res.header.Get("Allow") != tt.allow {
			t.Errorf("%s %s: %d Allow %q, want %d %q", tt.method, tt.path, res.status, res.header.Get("Allow"), tt.status, tt.allow)
		}
	}
	if st := h.sim.Stats(); st.Total != 0 {
		t.Errorf("control requests counted as PSP requests: %d", st.Total)
	}
}

// The stream writes each line as it goes: the client reads a line while the
// server has not written the next.
func TestControlStreamFlushesEachLine(t *testing.T) {
	h := newHarness(t, Options{})
	ticks := make(chan time.Duration)
	h.sim.sleep = func(ctx context.Context, d time.Duration) error {
		select {
		case ticks <- d:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// The timeout only ends a test that would otherwise hang on a line that
	// was never flushed.
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(h.srv.URL + "/_sim/stream?chunks=3&interval_ms=250")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("status %d, transfer encoding %v", resp.StatusCode, resp.TransferEncoding)
	}
	lines := bufio.NewReader(resp.Body)
	for i, want := range []string{"chunk 1 of 3\n", "chunk 2 of 3\n", "chunk 3 of 3\n"} {
		if i > 0 {
			// The next line is written only once this interval passes.
			if d := <-ticks; d != 250*time.Millisecond {
				t.Errorf("interval %v", d)
			}
		}
		got, err := lines.ReadString('\n')
		if err != nil || got != want {
			t.Fatalf("line %d: %q, %v", i+1, got, err)
		}
	}
}

func TestControlRequests(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	id := k.createOrder(6000, false)
	k.capture(id, 100, "Klarna-Idempotency-Key", "key-7")
	res := h.do("GET", "/_sim/requests", "")
	var got []RecordedRequest
	decode(t, res.body, &got)
	want := h.sim.Requests()
	if len(got) != 2 || !reflect.DeepEqual(got, want) {
		t.Fatalf("requests over HTTP\n got %+v\nwant %+v", got, want)
	}
	var raw []map[string]any
	decode(t, res.body, &raw)
	if raw[1]["body"] != `{"captured_amount":100}` || raw[1]["body_base64"] != "eyJjYXB0dXJlZF9hbW91bnQiOjEwMH0=" {
		t.Errorf("body members %v / %v", raw[1]["body"], raw[1]["body_base64"])
	}
	if strings.Contains(res.body, "secret") || strings.Contains(res.body, "Authorization") {
		t.Error("credentials are exposed")
	}
	if _, err := json.Marshal(got); err != nil {
		t.Error(err)
	}
}
