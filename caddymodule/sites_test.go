package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
	"gopkg.in/yaml.v3"

	"github.com/pspguard/pspguard/internal/pspsim"
)

// The two sites listen on ports of their own, so that their counters are
// theirs alone in this test process.
const (
	siteAPort = 9082
	siteBPort = 9081
)

// twoSites is one Caddy serving two sites, each with its own psp_guard and
// rules file: the first named by its address, the second `name na`.
type twoSites struct {
	t            *testing.T
	tester       *caddytest.Tester
	psp          string // the simulator's host:port
	rulesA       string
	rulesB       string
	siteA, siteB string
}

func newTwoSites(t *testing.T) *twoSites {
	t.Helper()
	srv := httptest.NewServer(pspsim.New(pspsim.Options{Seed: 1, Passwords: map[string]string{"shoeshop": "secret"}}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	s := &twoSites{t: t, psp: strings.TrimPrefix(srv.URL, "http://"),
		rulesA: filepath.Join(dir, "eu.yaml"), rulesB: filepath.Join(dir, "na.yaml"),
		siteA: fmt.Sprintf(":%d", siteAPort), siteB: "na"}
	writeFile(t, s.rulesA, exampleRules)
	// na lets shoeshop auto-capture: another file, another digest.
	writeFile(t, s.rulesB, strings.Replace(exampleRules, "shoeshop:\n    category: physical_goods", "shoeshop:\n    category: fulfilment_24h", 1))
	s.tester = caddytest.NewTester(t)
	s.load(true)
	return s
}

// load loads both sites, or only the first.
func (s *twoSites) load(both bool) {
	s.t.Helper()
	second := ""
	if both {
		second = fmt.Sprintf(`:%d {
		psp_guard {
			rules %s
			name %s
		}
		reverse_proxy %s
	}`, siteBPort, s.rulesB, s.siteB, s.psp)
	}
	s.tester.InitServer(fmt.Sprintf(`{
		admin localhost:2999
		http_port %d
		skip_install_trust
	}
	:%d {
		psp_guard {
			rules %s
		}
		reverse_proxy %s
	}
	%s`, testHTTPPort, siteAPort, s.rulesA, s.psp, second), "caddyfile")
}

func (s *twoSites) do(port int, method, path, merchant, body string) int {
	s.t.Helper()
	req, err := http.NewRequest(method, fmt.Sprintf("http://localhost:%d%s", port, path), strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	user, password, ok := strings.Cut(merchant, ":")
	if !ok {
		password = "secret"
	}
	req.SetBasicAuth(user, password)
	resp, err := s.tester.Client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (s *twoSites) scrape() string {
	s.t.Helper()
	return (&gateway{t: s.t}).scrape()
}

// rulesDigests lists the rules_info series of a site as version/digest.
func rulesDigests(text, site string) []string {
	re := regexp.MustCompile(`(?m)^caddy_psp_guard_rules_info\{digest="([0-9a-f]+)",site="` + regexp.QuoteMeta(site) + `",version="(\d+)"\} 1$`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		out = append(out, m[2]+"/"+m[1])
	}
	return out
}

// Two sites in one process, each with its own rules: each shows its own
// rules, stores and counters under its own site label, every counter is
// there at zero before the first request, and a site a reload removes takes
// its state gauges with it.
func TestTwoSitesInOneProcess(t *testing.T) {
	old := rulesPollInterval
	rulesPollInterval = 50 * time.Millisecond
	t.Cleanup(func() { rulesPollInterval = old })
	s := newTwoSites(t)
	text := s.scrape()
	digestA, digestB := rulesDigests(text, s.siteA), rulesDigests(text, s.siteB)
	if len(digestA) != 1 || len(digestB) != 1 || digestA[0] == digestB[0] {
		t.Fatalf("rules_info: site %s %v, site %s %v; want one series each, with different digests\n%s",
			s.siteA, digestA, s.siteB, digestB, grepLines(text, "rules_info"))
	}
	for _, site := range []string{s.siteA, s.siteB} {
		for _, series := range []string{
			`caddy_psp_guard_rules_reloads_total{result="success",site="` + site + `"} 1`,
			`caddy_psp_guard_rules_reloads_total{result="failure",site="` + site + `"} 0`,
			`caddy_psp_guard_ledger_reservations{site="` + site + `",store="memory"} 0`,
			// Counters at zero before the first request, so rate() sees the first one.
			`caddy_psp_guard_refusals_total{psp="klarna",reason="lookup_refused",site="` + site + `"} 0`,
			`caddy_psp_guard_refusals_total{psp="klarna",reason="category_not_allowed",site="` + site + `"} 0`,
			`caddy_psp_guard_refusals_total{psp="klarna",reason="unavailable",site="` + site + `"} 0`,
			`caddy_psp_guard_decisions_total{operation="capture",outcome="error",psp="klarna",site="` + site + `"} 0`,
			`caddy_psp_guard_idempotency_total{outcome="mismatch",psp="klarna",site="` + site + `"} 0`,
		} {
			if !strings.Contains(text, "\n"+series+"\n") {
				t.Errorf("no %s", series)
			}
		}
		for _, family := range []string{"ledger_orders", "idempotency_results"} {
			if !strings.Contains(text, "\ncaddy_psp_guard_"+family+`{site="`+site+`",store="memory"} `) {
				t.Errorf("no caddy_psp_guard_%s for site %s", family, site)
			}
		}
	}
	ordersBefore := text

	// The same auto-capturing order: the first site's rules refuse it, the
	// second's allow it, and each site counts its own.
	order := func(port int) int {
		return s.do(port, "POST", "/payments/v1/authorizations/"+randToken()+"/order", "shoeshop", orderBody(1000, true, ""))
	}
	if a, b := order(siteAPort), order(siteBPort); a != 403 || b != 200 {
		t.Fatalf("auto-capture: %d on %s, %d on %s; want 403 and 200", a, s.siteA, b, s.siteB)
	}
	text = s.scrape()
	for series, want := range map[string]float64{
		`caddy_psp_guard_refusals_total{reason="category_not_allowed",site="` + s.siteA + `"}`:               1,
		`caddy_psp_guard_refusals_total{reason="category_not_allowed",site="` + s.siteB + `"}`:               0,
		`caddy_psp_guard_decisions_total{operation="create_order",outcome="allowed",site="` + s.siteB + `"}`: 1,
		`caddy_psp_guard_decisions_total{operation="create_order",outcome="allowed",site="` + s.siteA + `"}`: 0,
		`caddy_psp_guard_captured_amount_total{currency="SEK",site="` + s.siteB + `"}`:                       1000,
		`caddy_psp_guard_upstream_duration_seconds_count{operation="create_order",site="` + s.siteB + `"}`:   1,
	} {
		if got := scrapeValue(text, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	// The two guards have the same store configuration, so they share one
	// memory ledger, and each site reports it: one order learned there.
	for _, site := range []string{s.siteA, s.siteB} {
		series := `caddy_psp_guard_ledger_orders{site="` + site + `",store="memory"}`
		if d := scrapeValue(text, series) - scrapeValue(ordersBefore, series); d != 1 {
			t.Errorf("%s moved by %v, want 1", series, d)
		}
	}

	// A change to one site's rules file changes that site's series only.
	writeFile(t, s.rulesB, exampleRules+"# reviewed\n")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		text = s.scrape()
		got := rulesDigests(text, s.siteB)
		if len(got) == 1 && got[0] != digestB[0] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("site %s after its rules changed: %v, want one new digest (was %v)", s.siteB, got, digestB)
		}
	}
	if got := rulesDigests(text, s.siteA); len(got) != 1 || got[0] != digestA[0] {
		t.Errorf("site %s after the other site's rules changed: %v, want %v", s.siteA, got, digestA)
	}

	// Unloading the second site drops its state; its counters keep their values.
	s.load(false)
	text = s.scrape()
	if got := rulesDigests(text, s.siteB); len(got) != 0 {
		t.Errorf("site %s unloaded, rules_info still %v", s.siteB, got)
	}
	for _, family := range []string{"ledger_orders", "ledger_reservations", "idempotency_results"} {
		if strings.Contains(text, "caddy_psp_guard_"+family+`{site="`+s.siteB+`"`) {
			t.Errorf("site %s unloaded, %s still reported", s.siteB, family)
		}
	}
	if len(rulesDigests(text, s.siteA)) != 1 {
		t.Errorf("site %s lost its rules_info when the other site was unloaded", s.siteA)
	}
	if got := scrapeValue(text, `caddy_psp_guard_decisions_total{operation="create_order",outcome="allowed",site="`+s.siteB+`"}`); got != 1 {
		t.Errorf("the unloaded site's decisions counter = %v, want it kept at 1", got)
	}
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A client with a wrong password, or one sending malformed bodies, moves
// none of what PspGuardUpstreamErrors counts as trouble: every error the
// gateway answers for them is counted under a reason the alert takes out.
func TestClientMistakesAreNotUpstreamErrors(t *testing.T) {
	g := newGatewaySim(t, pspsim.Options{Seed: 1, Passwords: map[string]string{"shoeshop": "secret"}}, exampleRules, "", "")
	excluded := upstreamAlertExclusions(t)
	trouble := func(text string) float64 {
		v := scrapeValue(text, `caddy_psp_guard_decisions_total{outcome="error"}`)
		for _, r := range excluded {
			v -= scrapeValue(text, `caddy_psp_guard_refusals_total{reason="`+r+`"}`)
		}
		return v
	}
	before := g.scrape()
	id := g.createOrderDirect("shoeshop", 5000)
	for i := 0; i < 3; i++ {
		if resp, body := g.capture("shoeshop:guess", id, 100); resp.StatusCode != 401 {
			t.Fatalf("wrong password: %d %s", resp.StatusCode, body)
		}
	}
	for _, body := range []string{`{"captured_amount": 1.5}`, `{"captured_amount": 100, "captured_amount": 200}`, `not json`} {
		if resp, out := g.do("POST", "/ordermanagement/v1/orders/"+id+"/captures", "shoeshop", body); resp.StatusCode != 400 {
			t.Fatalf("malformed body %s: %d %s", body, resp.StatusCode, out)
		}
	}
	if resp, out := g.do("POST", "/payments/v1/authorizations/"+randToken()+"/order", "shoeshop", `{"order_amount": "many"}`); resp.StatusCode != 400 {
		t.Fatalf("malformed create-order: %d %s", resp.StatusCode, out)
	}
	after := g.scrape()
	if d := scrapeValue(after, `caddy_psp_guard_refusals_total{reason="lookup_refused"}`) -
		scrapeValue(before, `caddy_psp_guard_refusals_total{reason="lookup_refused"}`); d != 3 {
		t.Errorf("refusals_total{reason=\"lookup_refused\"} moved by %v, want 3", d)
	}
	if d := scrapeValue(after, `caddy_psp_guard_decisions_total{outcome="error"}`) -
		scrapeValue(before, `caddy_psp_guard_decisions_total{outcome="error"}`); d != 7 {
		t.Errorf("decisions_total{outcome=\"error\"} moved by %v, want 7", d)
	}
	if d := trouble(after) - trouble(before); d != 0 {
		t.Errorf("PspGuardUpstreamErrors would count %v upstream failures for a client's own mistakes", d)
	}
	if n := g.pspRequests("klarna.capture"); n != 0 {
		t.Errorf("the PSP received %d captures", n)
	}
}

// upstreamAlertExclusions reads the reasons PspGuardUpstreamErrors takes
// out of outcome="error" from alerts.yaml.
func upstreamAlertExclusions(t *testing.T) []string {
	t.Helper()
	var f alertFile
	if err := yaml.Unmarshal(readTestFile(t, alertsFile), &f); err != nil {
		t.Fatal(err)
	}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "PspGuardUpstreamErrors" {
				return refusalExclusions(t, "PspGuardUpstreamErrors", r.Expr)
			}
		}
	}
	t.Fatal("alerts.yaml has no PspGuardUpstreamErrors")
	return nil
}

// refusalExclusions reads the reasons an error ratio takes out of
// outcome="error": those of its refusals_total{reason=~...} selectors,
// which must all name the same ones.
func refusalExclusions(t *testing.T, what, expr string) []string {
	t.Helper()
	sels, _ := selectors(grafanaIntervals.Replace(expr))
	var out []string
	for _, s := range sels {
		for _, m := range s.matchers {
			if s.name != "caddy_psp_guard_refusals_total" || m.label != "reason" || m.op != "=~" {
				continue
			}
			reasons := strings.Split(m.value, "|")
			slices.Sort(reasons)
			if out != nil && !slices.Equal(out, reasons) {
				t.Fatalf("%s takes out %v in one place and %v in another", what, out, reasons)
			}
			out = reasons
		}
	}
	if out == nil {
		t.Fatalf("%s takes no reasons out", what)
	}
	return out
}

// The dashboard's upstream error panel counts what the alert counts: a
// Redis failover's 503 or a release's 409 beside a capture in flight shows
// there no more than it pages.
func TestDashboardUpstreamErrorsMatchAlert(t *testing.T) {
	var d grafanaDashboard
	if err := json.Unmarshal(readTestFile(t, dashboardFile), &d); err != nil {
		t.Fatal(err)
	}
	var expr string
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Title == "Upstream error rate" && len(p.Targets) == 1 {
				expr = p.Targets[0].Expr
			}
		}
	}
	walk(d.Panels)
	if expr == "" {
		t.Fatal("the dashboard has no \"Upstream error rate\" panel with one query")
	}
	panel := refusalExclusions(t, "the Upstream error rate panel", expr)
	alert := upstreamAlertExclusions(t)
	slices.Sort(alert)
	if !slices.Equal(panel, alert) {
		t.Errorf("the Upstream error rate panel takes out %v; PspGuardUpstreamErrors takes out %v", panel, alert)
	}
}

// The Caddyfile names a guard after its site's first address unless `name`
// says otherwise.
func TestSiteNameDefaults(t *testing.T) {
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(`
shop.example.com, www.shop.example.com {
	psp_guard {
		rules eu.yaml
	}
	reverse_proxy 127.0.0.1:9001
}
:8081 {
	psp_guard {
		rules na.yaml
		name na
	}
	reverse_proxy 127.0.0.1:9001
}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"name":"shop.example.com"`, `"name":"na"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("adapted config lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), `"name":":8081"`) {
		t.Errorf("name na was overridden by the address:\n%s", out)
	}
}
