package guard

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pspguard/pspguard/internal/credentials"
	"github.com/pspguard/pspguard/internal/idempotency"
	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/psp"
	"github.com/pspguard/pspguard/internal/pspsim"
	"github.com/pspguard/pspguard/rules"
)

// The pipeline's tests run a guard on httptest in front of the simulator,
// reached through httputil.ReverseProxy: no Caddy, which adds nothing to
// what they check. The hazard tables and everything Caddy takes part in
// (the Caddyfile, reloads, reverse_proxy's errors) are caddymodule's.

// fixture is one guard in front of one simulator.
type fixture struct {
	t       *testing.T
	sim     *pspsim.Server
	g       *Guard
	c       *Collectors
	dialect psp.Dialect
	logs    *observer.ObservedLogs
	next    Next
}

// nextFunc adapts a function to Next.
type nextFunc func(http.ResponseWriter, *http.Request) error

func (f nextFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) error { return f(w, r) }

func newFixture(t *testing.T, d psp.Dialect, mode string) *fixture {
	t.Helper()
	sim := pspsim.New(pspsim.Options{})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	r, err := rules.Load("../../testdata/rules/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rp := new(atomic.Pointer[rules.Rules])
	rp.Store(r)
	core, logs := observer.New(zapcore.InfoLevel)
	l := ledger.NewMemory(ledger.Options{})
	i := idempotency.NewMemory(idempotency.Options{})
	c := NewCollectors()
	g := New(Config{
		Site: "test", Dialect: d, Mode: mode, MaxBody: 1 << 20,
		LookupTimeout: 10 * time.Second, UpstreamTimeout: 10 * time.Second,
		Rules: rp, Ledger: l, Idempotency: i, Keyed: ledger.NewKeyed(l, i),
		Credentials: credentials.NewMemory(credentials.Options{}),
		Metrics:     c.For("test", d.Name()), Logger: zap.New(core),
	})
	t.Cleanup(g.Close)
	return &fixture{t: t, sim: sim, g: g, c: c, dialect: d, logs: logs,
		next: nextFunc(func(w http.ResponseWriter, r *http.Request) error {
			proxy.ServeHTTP(w, r)
			return nil
		})}
}

// answer is what the caller got.
type answer struct {
	status int
	header http.Header
	body   string
}

// do sends a request through the guard; hdr are header name/value pairs.
func (f *fixture) do(method, path, body string, hdr ...string) answer {
	f.t.Helper()
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, path, rb)
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	if err := f.g.ServeHTTP(w, r, f.next); err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	return answer{w.Code, w.Header(), w.Body.String()}
}

func basic(user string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":secret"))
}

// createOrder creates an order of amount SEK with a physical line through
// the guard, for the caller auth, and returns its id.
func (f *fixture) createOrder(auth string, amount int) string {
	f.t.Helper()
	a := f.do("POST", createPath(), klarnaOrder(amount, false, "physical"), "Authorization", auth)
	var created struct {
		OrderID string `json:"order_id"`
	}
	if err := json.Unmarshal([]byte(a.body), &created); err != nil || a.status != http.StatusOK || created.OrderID == "" {
		f.t.Fatalf("create-order: %d %s", a.status, a.body)
	}
	return created.OrderID
}

// klarnaOrder is a create-order body of amount SEK in one line of kind.
func klarnaOrder(amount int, autoCapture bool, kind string) string {
	a := strconv.Itoa(amount)
	return `{"purchase_country":"SE","purchase_currency":"SEK","locale":"sv-SE","order_amount":` + a +
		`,"order_tax_amount":0,"auto_capture":` + strconv.FormatBool(autoCapture) +
		`,"order_lines":[{"type":"` + kind + `","reference":"r","name":"n","quantity":1,"unit_price":` + a +
		`,"tax_rate":0,"total_amount":` + a + `,"total_tax_amount":0}]}`
}

var tokenSeq atomic.Int64

func createPath() string {
	return "/payments/v1/authorizations/tok-" + strconv.FormatInt(tokenSeq.Add(1), 10) + "/order"
}

// simRequests counts the requests the simulator received for op (the
// gateway's name of the operation).
func (f *fixture) simRequests(op string) int {
	n := 0
	for _, r := range f.sim.Requests() {
		if strings.HasSuffix(r.Operation, "."+op) {
			n++
		}
	}
	return n
}

// captured is what the simulator's books hold as captured of order id.
func (f *fixture) captured(id string) int64 {
	f.t.Helper()
	o, ok := f.sim.Books().Orders[id]
	if !ok {
		f.t.Fatalf("order %s is not in the simulator's books", id)
	}
	return o.CapturedAmount
}

// counter reads a counter series.
func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// decisions is decisions_total of op and outcome.
func (f *fixture) decisions(op psp.Operation, outcome string) float64 {
	return counter(f.c.Decisions.WithLabelValues("test", f.dialect.Name(), op.String(), outcome))
}

// allDecisions sums decisions_total over every operation and outcome.
func (f *fixture) allDecisions() float64 {
	n := 0.0
	for _, op := range psp.Operations() {
		for _, o := range allOutcomes {
			n += f.decisions(op, o)
		}
	}
	return n
}

// lines waits for n decision lines and returns them.
func (f *fixture) lines(n int) []map[string]any {
	f.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); f.logs.Len() < n && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	var out []map[string]any
	for _, e := range f.logs.FilterMessage("decision").All() {
		out = append(out, e.ContextMap())
	}
	if len(out) != n {
		f.t.Fatalf("%d decision lines, want %d", len(out), n)
	}
	return out
}

func klarnaError(t *testing.T, body string) (code, message string) {
	t.Helper()
	var e struct {
		Code     string   `json:"error_code"`
		Messages []string `json:"error_messages"`
		CorrID   string   `json:"correlation_id"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || len(e.Messages) != 1 || e.CorrID == "" {
		t.Fatalf("not Klarna's error format: %s (%v)", body, err)
	}
	return e.Code, e.Messages[0]
}

// A create-order goes through read, claim, rules, forward and learn: the
// ledger knows the order from the PSP's answer, so a capture beyond its
// amount is refused without reaching the PSP, and one within it is
// captured at the PSP.
func TestCreateLearnCapture(t *testing.T) {
	f := newFixture(t, psp.Klarna(), "enforce")
	auth := basic("shoeshop")
	id := f.createOrder(auth, 10000)
	captures := "/ordermanagement/v1/orders/" + id + "/captures"

	a := f.do("POST", captures, `{"captured_amount":10001}`, "Authorization", auth)
	if a.status != http.StatusForbidden {
		t.Fatalf("capture beyond the order: %d %s", a.status, a.body)
	}
	code, msg := klarnaError(t, a.body)
	if code != psp.CodeCaptureNotAllowed || !strings.Contains(msg, "captured_amount 10001 exceeds the remaining authorized amount 10000") {
		t.Errorf("refusal %s %q", code, msg)
	}
	if n := f.simRequests("capture"); n != 0 {
		t.Fatalf("the PSP received %d captures, want none", n)
	}
	if n := f.simRequests("get_order"); n != 0 {
		t.Errorf("the order was read from the PSP %d times: it was learned from its creation", n)
	}

	a = f.do("POST", captures, `{"captured_amount":4000}`, "Authorization", auth)
	if a.status != http.StatusCreated || a.header.Get("Capture-Id") == "" {
		t.Fatalf("capture within the order: %d %v %s", a.status, a.header, a.body)
	}
	if got := f.captured(id); got != 4000 {
		t.Errorf("the PSP captured %d, want 4000", got)
	}
	if f.decisions(psp.OpCapture, OutcomeRefused) != 1 || f.decisions(psp.OpCapture, OutcomeAllowed) != 1 ||
		f.decisions(psp.OpCreateOrder, OutcomeAllowed) != 1 {
		t.Errorf("decisions: capture refused %v allowed %v, create allowed %v", f.decisions(psp.OpCapture, OutcomeRefused),
			f.decisions(psp.OpCapture, OutcomeAllowed), f.decisions(psp.OpCreateOrder, OutcomeAllowed))
	}
	captured := counter(f.c.CapturedAmount.WithLabelValues("test", "klarna", "SEK"))
	if captured != 4000 {
		t.Errorf("captured_amount_total %v, want 4000", captured)
	}
}

// A capture of an order the gateway has not seen reads the order from the
// PSP with the caller's credentials first.
func TestCaptureLearnsUnseenOrder(t *testing.T) {
	f := newFixture(t, psp.Klarna(), "enforce")
	// Created at the PSP directly, past the gateway.
	r := httptest.NewRequest("POST", createPath(), strings.NewReader(klarnaOrder(5000, false, "physical")))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", basic("shoeshop"))
	w := httptest.NewRecorder()
	f.sim.ServeHTTP(w, r)
	var created struct {
		OrderID string `json:"order_id"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &created); err != nil || created.OrderID == "" {
		t.Fatalf("creating at the PSP: %d %s", w.Code, w.Body)
	}
	a := f.do("POST", "/ordermanagement/v1/orders/"+created.OrderID+"/captures", `{"captured_amount":5001}`,
		"Authorization", basic("shoeshop"))
	if a.status != http.StatusForbidden || f.simRequests("get_order") != 1 || f.simRequests("capture") != 0 {
		t.Fatalf("capture of an unseen order beyond it: %d %s; %d reads, %d captures at the PSP",
			a.status, a.body, f.simRequests("get_order"), f.simRequests("capture"))
	}
}

// A refused request is answered in the PSP's own error format and never
// reaches the PSP; each is counted and logged once.
func TestRefusalsNeverReachPSP(t *testing.T) {
	for _, tt := range []struct {
		name    string
		dialect psp.Dialect
		method  string
		path    string
		body    string
		hdr     []string
		status  int
		code    string
		reason  string
		format  func(t *testing.T, body string) (code, message string)
	}{
		{"auto-capture of goods that ship later", psp.Klarna(), "POST", createPath(), klarnaOrder(1000, true, "physical"),
			[]string{"Authorization", basic("shoeshop")}, 403, psp.CodeAutoCaptureNotAllowed, string(rules.ReasonCategoryNotAllowed), klarnaError},
		{"a body that is not JSON", psp.Klarna(), "POST", createPath(), klarnaOrder(1000, false, "physical"),
			[]string{"Authorization", basic("shoeshop"), "Content-Type", "text/plain"}, 415, psp.CodeUnsupportedMediaType, ReasonUnsupportedMediaType, klarnaError},
		{"a duplicate member", psp.Klarna(), "POST", "/ordermanagement/v1/orders/9f1c7c52-5a4b-4b53-9b67-5fd5a1e3f7c1/captures",
			`{"captured_amount":1,"captured_amount":100000}`, []string{"Authorization", basic("shoeshop")}, 400, psp.CodeBadValue, ReasonBadValue, klarnaError},
		{"a method override", psp.Klarna(), "GET", "/settlements/v1/payouts", "",
			[]string{"X-HTTP-Method-Override", "POST"}, 400, psp.CodeBadValue, ReasonBadValue, klarnaError},
		{"Hellgate: a capture of a repeated amount", psp.Hellgate(), "POST", "/payments/9f1c7c52-5a4b-4b53-9b67-5fd5a1e3f7c1/capture",
			`{"amount":1,"amount":2}`, []string{"X-API-Key", "hg_key"}, 400, psp.CodeBadValue, ReasonBadValue, hellgateError},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.dialect, "enforce")
			a := f.do(tt.method, tt.path, tt.body, tt.hdr...)
			if a.status != tt.status {
				t.Fatalf("status %d %s, want %d", a.status, a.body, tt.status)
			}
			if code, _ := tt.format(t, a.body); code != tt.code {
				t.Errorf("code %s, want %s", code, tt.code)
			}
			if n := len(f.sim.Requests()); n != 0 {
				t.Errorf("the PSP received %d requests", n)
			}
			if got := counter(f.c.Refusals.WithLabelValues("test", tt.dialect.Name(), tt.reason)); got != 1 {
				t.Errorf("refusals_total{reason=%q} = %v, want 1", tt.reason, got)
			}
			if f.allDecisions() != 1 {
				t.Errorf("decisions_total moved by %v, want 1", f.allDecisions())
			}
			line := f.lines(1)[0]
			if line["reason"] != tt.reason || fmt.Sprint(line["status"]) != strconv.Itoa(tt.status) || line["psp"] != tt.dialect.Name() {
				t.Errorf("decision line %v", line)
			}
		})
	}
}

func hellgateError(t *testing.T, body string) (code, message string) {
	t.Helper()
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		CorrID  string `json:"correlation_id"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Message == "" || e.CorrID == "" {
		t.Fatalf("not Hellgate's error format: %s (%v)", body, err)
	}
	return e.Code, e.Message
}

// A keyed capture sent again is replayed from the cache with the headers
// the dialect names, and captures once at the PSP.
func TestKeyedCaptureReplayed(t *testing.T) {
	f := newFixture(t, psp.Klarna(), "enforce")
	auth := basic("shoeshop")
	id := f.createOrder(auth, 10000)
	captures := "/ordermanagement/v1/orders/" + id + "/captures"
	first := f.do("POST", captures, `{"captured_amount":3000}`, "Authorization", auth, "Klarna-Idempotency-Key", "k-1")
	again := f.do("POST", captures, `{"captured_amount":3000}`, "Authorization", auth, "Klarna-Idempotency-Key", "k-1")
	if first.status != http.StatusCreated || again.status != http.StatusCreated {
		t.Fatalf("capture %d, again %d", first.status, again.status)
	}
	if again.header.Get("Idempotent-Replayed") != "true" || again.header.Get("Capture-Id") != first.header.Get("Capture-Id") ||
		again.header.Get("Location") != first.header.Get("Location") {
		t.Errorf("replay headers %v, first %v", again.header, first.header)
	}
	if n, got := f.simRequests("capture"), f.captured(id); n != 1 || got != 3000 {
		t.Errorf("the PSP received %d captures and captured %d, want one of 3000", n, got)
	}
	if f.decisions(psp.OpCapture, OutcomeReplayed) != 1 || f.decisions(psp.OpCapture, OutcomeAllowed) != 1 {
		t.Errorf("capture decisions: replayed %v allowed %v", f.decisions(psp.OpCapture, OutcomeReplayed), f.decisions(psp.OpCapture, OutcomeAllowed))
	}
	if got := counter(f.c.Idempotency.WithLabelValues("test", "klarna", IdemReplayed)); got != 1 {
		t.Errorf("idempotency_total{outcome=replayed} = %v", got)
	}
}

// When the way to the PSP fails, the caller gets the PSP's error format:
// 504 when Config.UpstreamStatus says the PSP did not answer in time, 502
// otherwise; a passed-through request's other errors go back to the
// server as they are.
func TestUpstreamFailures(t *testing.T) {
	timeout := errors.New("upstream timed out")
	refused := errors.New("connection refused")
	other := errors.New("something else")
	for _, tt := range []struct {
		name   string
		path   string
		body   string
		err    error
		status int // 0: ServeHTTP returns err
	}{
		{"guarded, timed out", createPath(), klarnaOrder(1000, false, "physical"), timeout, 504},
		{"guarded, refused", createPath(), klarnaOrder(1000, false, "physical"), refused, 502},
		{"guarded, any error", createPath(), klarnaOrder(1000, false, "physical"), other, 502},
		{"passed through, timed out", "/settlements/v1/payouts", "", timeout, 504},
		{"passed through, refused", "/settlements/v1/payouts", "", refused, 502},
		{"passed through, other", "/settlements/v1/payouts", "", other, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, psp.Klarna(), "enforce")
			f.g.upStatus = func(err error) int {
				switch err {
				case timeout:
					return http.StatusGatewayTimeout
				case refused:
					return http.StatusBadGateway
				}
				return 0
			}
			f.next = nextFunc(func(http.ResponseWriter, *http.Request) error { return tt.err })
			r := httptest.NewRequest("POST", tt.path, strings.NewReader(tt.body))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", basic("shoeshop"))
			w := httptest.NewRecorder()
			err := f.g.ServeHTTP(w, r, f.next)
			if tt.status == 0 {
				if err != tt.err {
					t.Fatalf("ServeHTTP returned %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || w.Code != tt.status {
				t.Fatalf("%d, %v; want %d", w.Code, err, tt.status)
			}
			if code, _ := klarnaError(t, w.Body.String()); code != psp.CodeTemporarilyUnavail {
				t.Errorf("code %s", code)
			}
		})
	}
}

// Shadow mode forwards what enforce would refuse, and counts it as
// shadow_refused once.
func TestShadowForwards(t *testing.T) {
	f := newFixture(t, psp.Klarna(), "shadow")
	a := f.do("POST", createPath(), klarnaOrder(1000, true, "physical"), "Authorization", basic("shoeshop"))
	if a.status != http.StatusOK || f.simRequests("create_order") != 1 {
		t.Fatalf("shadow: %d %s; the PSP received %d create-orders", a.status, a.body, f.simRequests("create_order"))
	}
	if f.decisions(psp.OpCreateOrder, OutcomeShadowRefused) != 1 || f.allDecisions() != 1 {
		t.Errorf("decisions: shadow_refused %v of %v", f.decisions(psp.OpCreateOrder, OutcomeShadowRefused), f.allDecisions())
	}
	if line := f.lines(1)[0]; line["decision"] != OutcomeShadowRefused || line["mode"] != "shadow" {
		t.Errorf("decision line %v", line)
	}
}
