package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/pspguard/pspguard/internal/psp"
	"github.com/pspguard/pspguard/rules"
)

// The dashboard and the alert rules in monitoring/ are only as good as the
// metric names and label values in their queries: a renamed family or a
// misspelt reason leaves a panel empty and an alert silent, and nothing else
// notices. These tests hold them to what the package registers.

const (
	dashboardFile    = "monitoring/grafana-dashboard.json"
	alertsFile       = "monitoring/alerts.yaml"
	readmeFile       = "monitoring/README.md"
	runbookPrefix    = "caddymodule/monitoring/README.md#"
	familyPrefix     = "caddy_psp_guard_"
	datasourceUID    = "${datasource}"
	needsMetricsNote = "needs `metrics`"
)

var promqlParser = parser.NewParser(parser.Options{})

// family is one exported metric family, as queries may select it.
type family struct {
	histogram bool
	// labels maps each label to the values the gateway writes; a nil list
	// means any value (psp, currency, digest).
	labels map[string][]string
}

// exported is what pspguard registers, by family name.
type exported map[string]family

// targetLabels are added by Prometheus at scrape time.
var targetLabels = []string{"instance", "job"}

// writtenValues lists, per family and label, every value the gateway writes.
func writtenValues() map[string]map[string][]string {
	var ops []string
	for _, op := range psp.Operations() {
		ops = append(ops, op.String())
	}
	reasons := []string{
		reasonCaptureExceeds, reasonNotCapturable, reasonAlreadyCaptured, reasonCurrencyMismatch,
		reasonNoSuchOrder, reasonBadValue, reasonRequestTooLarge, reasonUnsupportedMediaType,
		reasonIdempotencyInUse, reasonIdempotencyReused, reasonIdempotencyKeyRequired, reasonUnavailable,
	}
	for _, r := range rules.Reasons {
		if !r.Allows() {
			reasons = append(reasons, string(r))
		}
	}
	stores := []string{"memory", "redis"}
	return map[string]map[string][]string{
		"caddy_psp_guard_decisions_total":           {"operation": ops, "outcome": allOutcomes},
		"caddy_psp_guard_refusals_total":            {"reason": reasons},
		"caddy_psp_guard_idempotency_total":         {"outcome": {idemStored, idemReplayed, idemInFlight, idemMismatch, idemAbandoned, idemNoKey}},
		"caddy_psp_guard_upstream_duration_seconds": {"operation": ops},
		"caddy_psp_guard_rules_reloads_total":       {"result": {"success", "failure"}},
		"caddy_psp_guard_ledger_orders":             {"store": stores},
		"caddy_psp_guard_ledger_reservations":       {"store": stores},
		"caddy_psp_guard_idempotency_results":       {"store": stores},
	}
}

// descRE reads a descriptor's name and variable labels from its String
// form, the only place client_golang shows them.
var descRE = regexp.MustCompile(`^Desc\{fqName: "([^"]+)", .*variableLabels: \{([^}]*)\}\}$`)

// exportedFamilies registers the package's collectors on a fresh registry
// the way Provision does, and reads back every family they export.
// Gathering alone shows only families that have series (no refusals before
// the first refusal, no store gauges before a store exists), so the
// registered collectors are described too.
func exportedFamilies(t *testing.T) exported {
	t.Helper()
	reg := prometheus.NewRegistry()
	if _, err := provisionMetrics(reg, "klarna"); err != nil {
		t.Fatalf("provisionMetrics: %v", err)
	}
	values := writtenValues()
	fams := exported{}
	for _, c := range []prometheus.Collector{
		metrics.decisions, metrics.refusals, metrics.idempotency, metrics.upstream,
		metrics.captured, metrics.rulesReloads, metrics.rulesInfo, metrics.stores,
	} {
		var are prometheus.AlreadyRegisteredError
		if err := reg.Register(c); !errors.As(err, &are) {
			t.Fatalf("provisionMetrics did not register %T (registering it again: %v)", c, err)
		}
		_, isHistogram := c.(*prometheus.HistogramVec)
		ch := make(chan *prometheus.Desc, 4)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := descRE.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read descriptor %s", d)
			}
			f := family{histogram: isHistogram, labels: map[string][]string{}}
			for _, l := range strings.Split(m[2], ",") {
				if l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"); l != "" {
					f.labels[l] = values[m[1]][l]
				}
			}
			fams[m[1]] = f
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering: %v", err)
	}
	for _, mf := range mfs {
		if _, ok := fams[mf.GetName()]; !ok {
			t.Errorf("%s is registered but not described here; add its collector to exportedFamilies", mf.GetName())
		}
	}
	for name, byLabel := range values {
		for l := range byLabel {
			if _, ok := fams[name].labels[l]; !ok {
				t.Errorf("writtenValues lists %s{%s}, which is not exported", name, l)
			}
		}
	}
	return fams
}

// lookup finds the family a series name belongs to: the family itself, or
// a histogram's _bucket, _sum or _count series.
func (e exported) lookup(name string) (string, family, bool) {
	if f, ok := e[name]; ok {
		return name, f, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if f, ok := e[base]; ok && f.histogram {
				return base, f, true
			}
		}
	}
	return "", family{}, false
}

// check parses a PromQL expression and returns the metric names it selects
// and what is wrong with it: it does not parse, it selects a
// caddy_psp_guard_ series pspguard does not export, or it filters on a label
// the family does not have or on a value the gateway never writes.
func (e exported) check(expr string) (names, problems []string) {
	node, err := promqlParser.ParseExpr(expr)
	if err != nil {
		return nil, []string{fmt.Sprintf("%q does not parse: %v", expr, err)}
	}
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name, p := e.checkSelector(vs)
		if name != "" {
			names = append(names, name)
		}
		problems = append(problems, p...)
		return nil
	})
	return names, problems
}

func (e exported) checkSelector(vs *parser.VectorSelector) (string, []string) {
	name := vs.Name
	if name == "" {
		for _, m := range vs.LabelMatchers {
			if m.Name != model.MetricNameLabel {
				continue
			}
			if m.Type != labels.MatchEqual {
				return "", []string{fmt.Sprintf("%s: a metric name chosen by pattern cannot be checked", vs)}
			}
			name = m.Value
		}
	}
	if !strings.HasPrefix(name, familyPrefix) {
		return name, nil
	}
	fname, f, ok := e.lookup(name)
	if !ok {
		return name, []string{fmt.Sprintf("%s: pspguard exports no metric %s", vs, name)}
	}
	if f.histogram && name == fname {
		return name, []string{fmt.Sprintf("%s: histogram %s has only _bucket, _sum and _count series", vs, fname)}
	}
	var problems []string
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel || slices.Contains(targetLabels, m.Name) ||
			(m.Name == "le" && name == fname+"_bucket") {
			continue
		}
		values, ok := f.labels[m.Name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: %s has no label %q", vs, fname, m.Name))
			continue
		}
		problems = append(problems, checkValue(vs, m, values)...)
	}
	return name, problems
}

// checkValue reports a matcher that can match none of the values the
// gateway writes. Each alternative of a regular expression must match one:
// an alternative that matches nothing is a typo that silently narrows the
// query. Dashboard variables ($psp) are left to the dashboard.
func checkValue(vs *parser.VectorSelector, m *labels.Matcher, values []string) []string {
	if values == nil || strings.Contains(m.Value, "$") {
		return nil
	}
	switch m.Type {
	case labels.MatchEqual, labels.MatchNotEqual:
		if !slices.Contains(values, m.Value) {
			return []string{fmt.Sprintf("%s: the gateway never writes %s=%q", vs, m.Name, m.Value)}
		}
	case labels.MatchRegexp, labels.MatchNotRegexp:
		var problems []string
		for _, alt := range strings.Split(m.Value, "|") {
			re, err := regexp.Compile("^(?:" + alt + ")$")
			if err != nil || !slices.ContainsFunc(values, re.MatchString) {
				problems = append(problems, fmt.Sprintf("%s: %q matches no %s the gateway writes", vs, alt, m.Name))
			}
		}
		return problems
	}
	return nil
}

// alertProblems validates alerting rules the way `promtool check rules`
// does (structure, PromQL, annotation templates) and holds each alert to
// the house rules: a `for`, a severity, a summary and a description, and a
// runbook pointing at the alert's own section of the README.
func alertProblems(data []byte, readme string, e exported) (alerts, problems []string) {
	groups, errs := rulefmt.Parse(data, false, model.LegacyValidation, promqlParser, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		problems = append(problems, err.Error())
	}
	if groups == nil {
		return nil, problems
	}
	anchors := readmeAnchors(readme)
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			name := r.Alert
			if name == "" {
				name = r.Record
			}
			_, p := e.check(r.Expr)
			for _, s := range p {
				problems = append(problems, name+": "+s)
			}
			if r.Alert == "" {
				continue
			}
			if slices.Contains(alerts, name) {
				problems = append(problems, name+": defined twice")
			}
			alerts = append(alerts, name)
			if r.For <= 0 {
				problems = append(problems, name+": no `for`: one bad scrape would page")
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				problems = append(problems, fmt.Sprintf("%s: severity %q, want warning or critical", name, s))
			}
			for _, a := range []string{"summary", "description"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					problems = append(problems, fmt.Sprintf("%s: no %s annotation", name, a))
				}
			}
			anchor := strings.ToLower(name)
			if got := r.Annotations["runbook"]; got != runbookPrefix+anchor {
				problems = append(problems, fmt.Sprintf("%s: runbook %q, want %q", name, got, runbookPrefix+anchor))
			} else if !anchors[anchor] {
				problems = append(problems, fmt.Sprintf("%s: README.md has no section #%s", name, anchor))
			}
		}
	}
	return alerts, problems
}

// readmeAnchors returns the anchors GitHub gives the README's headings.
func readmeAnchors(md string) map[string]bool {
	anchors := map[string]bool{}
	fenced := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
		}
		title, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " ")
		if fenced || !ok || !strings.HasPrefix(line, "#") {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(title)) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-':
				b.WriteRune(r)
			case r == ' ':
				b.WriteByte('-')
			}
		}
		anchors[b.String()] = true
	}
	return anchors
}

type grafanaDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaPanel struct {
	ID         int                `json:"id"`
	Type       string             `json:"type"`
	Title      string             `json:"title"`
	Datasource *grafanaDatasource `json:"datasource"`
	GridPos    struct{ X, Y, W, H int }
	Targets    []struct {
		Expr       string             `json:"expr"`
		Datasource *grafanaDatasource `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's panels
}

type grafanaDashboard struct {
	SchemaVersion int `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []grafanaPanel `json:"panels"`
}

// grafanaIntervals stands in for the interval variables Grafana fills in,
// so the expressions parse as PromQL.
var grafanaIntervals = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

var labelValuesRE = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// dashboardProblems checks an importable dashboard: the datasource and psp
// variables, that every panel queries through the datasource variable, every
// query against what pspguard exports, that panels needing Caddy's own
// metrics say so, and that every exported family is shown somewhere.
func dashboardProblems(data []byte, e exported) []string {
	var d grafanaDashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return []string{"dashboard is not JSON: " + err.Error()}
	}
	var problems []string
	if d.SchemaVersion < 36 {
		problems = append(problems, fmt.Sprintf("schemaVersion %d predates datasource references by uid (36)", d.SchemaVersion))
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		var q string
		if json.Unmarshal(v.Query, &q) != nil {
			var obj struct{ Query string }
			_ = json.Unmarshal(v.Query, &obj)
			q = obj.Query
		}
		switch v.Type {
		case "datasource":
			if q != "prometheus" {
				problems = append(problems, fmt.Sprintf("variable %s selects %q data sources, want prometheus", v.Name, q))
			}
		case "query":
			m := labelValuesRE.FindStringSubmatch(q)
			if m == nil {
				problems = append(problems, fmt.Sprintf("variable %s: want label_values(selector, label), got %q", v.Name, q))
				continue
			}
			names, p := e.check(m[1])
			problems = append(problems, p...)
			for _, n := range names {
				if _, f, ok := e.lookup(n); ok && !slices.Contains(targetLabels, m[2]) {
					if _, ok := f.labels[m[2]]; !ok {
						problems = append(problems, fmt.Sprintf("variable %s: %s has no label %q", v.Name, n, m[2]))
					}
				}
			}
		}
	}
	if vars["datasource"] != "datasource" {
		problems = append(problems, "no datasource variable of type datasource")
	}
	if vars["psp"] != "query" {
		problems = append(problems, "no psp query variable")
	}

	used := map[string]bool{}
	ids := map[int]bool{}
	var walk func(ps []grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			if ids[p.ID] {
				problems = append(problems, fmt.Sprintf("panel id %d used twice", p.ID))
			}
			ids[p.ID] = true
			if g := p.GridPos; g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
				problems = append(problems, fmt.Sprintf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g))
			}
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != datasourceUID {
				problems = append(problems, fmt.Sprintf("panel %q does not query through %s", p.Title, datasourceUID))
			}
			if len(p.Targets) == 0 {
				problems = append(problems, fmt.Sprintf("panel %q has no query", p.Title))
			}
			for _, tg := range p.Targets {
				if tg.Datasource != nil && tg.Datasource.UID != datasourceUID {
					problems = append(problems, fmt.Sprintf("panel %q: a query does not go through %s", p.Title, datasourceUID))
				}
				names, ps := e.check(grafanaIntervals.Replace(tg.Expr))
				for _, s := range ps {
					problems = append(problems, fmt.Sprintf("panel %q: %s", p.Title, s))
				}
				for _, n := range names {
					if base, _, ok := e.lookup(n); ok {
						used[base] = true
					}
					if strings.HasPrefix(n, "caddy_http_") && !strings.Contains(p.Title, needsMetricsNote) {
						problems = append(problems, fmt.Sprintf("panel %q uses %s but its title does not say it %s", p.Title, n, needsMetricsNote))
					}
				}
			}
		}
	}
	walk(d.Panels)
	for name := range e {
		if !used[name] {
			problems = append(problems, "no panel shows "+name)
		}
	}
	slices.Sort(problems)
	return problems
}

func readTestFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestMonitoringExportedFamilies(t *testing.T) {
	e := exportedFamilies(t)
	want := []string{
		"caddy_psp_guard_decisions_total", "caddy_psp_guard_refusals_total",
		"caddy_psp_guard_idempotency_total", "caddy_psp_guard_upstream_duration_seconds",
		"caddy_psp_guard_captured_amount_total", "caddy_psp_guard_rules_reloads_total",
		"caddy_psp_guard_rules_info", "caddy_psp_guard_ledger_orders",
		"caddy_psp_guard_ledger_reservations", "caddy_psp_guard_idempotency_results",
	}
	for _, name := range want {
		if _, ok := e[name]; !ok {
			t.Errorf("%s is not exported", name)
		}
	}
	if len(e) != len(want) {
		t.Errorf("exported %d families, want %d: update this list, the dashboard and README.md", len(e), len(want))
	}
	if !e["caddy_psp_guard_upstream_duration_seconds"].histogram || e["caddy_psp_guard_decisions_total"].histogram {
		t.Error("histogram families are not told apart from counters")
	}
	if got := e["caddy_psp_guard_ledger_reservations"].labels; len(got) != 1 || got["store"] == nil {
		t.Errorf("ledger_reservations labels = %v, want store", got)
	}
}

func TestMonitoringDashboard(t *testing.T) {
	for _, p := range dashboardProblems(readTestFile(t, dashboardFile), exportedFamilies(t)) {
		t.Error(p)
	}
}

func TestMonitoringAlerts(t *testing.T) {
	alerts, problems := alertProblems(readTestFile(t, alertsFile), string(readTestFile(t, readmeFile)), exportedFamilies(t))
	for _, p := range problems {
		t.Error(p)
	}
	for _, name := range []string{
		"PspGuardRefusalSpike", "PspGuardUpstreamErrors", "PspGuardUpstreamLatencyHigh",
		"PspGuardReservationsStuck", "PspGuardRulesReloadFailed", "PspGuardIdempotencyConflicts",
		"PspGuardStoreUnavailable",
	} {
		if !slices.Contains(alerts, name) {
			t.Errorf("alert %s is missing", name)
		}
	}
}

func TestMonitoringReadmeNamesEveryFamily(t *testing.T) {
	readme := string(readTestFile(t, readmeFile))
	for name := range exportedFamilies(t) {
		if !strings.Contains(readme, "`"+name+"`") {
			t.Errorf("README.md does not document %s", name)
		}
	}
}

// The checks above pass only if they can fail: each mistake here must be
// reported, and each correct query must not be.
func TestMonitoringCheckCatchesMistakes(t *testing.T) {
	e := exportedFamilies(t)
	for _, tc := range []struct {
		expr string
		want string // a substring of the problem; "" means no problem
	}{
		{`rate(caddy_psp_guard_refusal_total[5m])`, "exports no metric caddy_psp_guard_refusal_total"},
		{`caddy_psp_guard_decisions_total_bucket`, "exports no metric caddy_psp_guard_decisions_total_bucket"},
		{`rate(caddy_psp_guard_upstream_duration_seconds[5m])`, "has only _bucket, _sum and _count series"},
		{`caddy_psp_guard_ledger_orders{psp="klarna"}`, `has no label "psp"`},
		{`caddy_psp_guard_decisions_total{outcome="refusd"}`, `never writes outcome="refusd"`},
		{`caddy_psp_guard_idempotency_total{outcome="allowed"}`, `never writes outcome="allowed"`},
		{`caddy_psp_guard_refusals_total{reason=~"capture_exceeds|capture_exceeded"}`, `"capture_exceeded" matches no reason`},
		{`caddy_psp_guard_refusals_total{reason!~"emd_mising"}`, `"emd_mising" matches no reason`},
		{`{__name__=~"caddy_psp_guard_.+"}`, "chosen by pattern"},
		{`sum(rate(caddy_psp_guard_decisions_total[5m])`, "does not parse"},

		{`histogram_quantile(0.99, sum by (le) (rate(caddy_psp_guard_upstream_duration_seconds_bucket{operation="capture"}[5m])))`, ""},
		{`caddy_psp_guard_refusals_total{reason=~"capture_.*|category_not_allowed", psp=~"$psp", instance="a:2019"}`, ""},
		{`{__name__="caddy_psp_guard_rules_info", digest="0123456789ab"}`, ""},
		{`rate(caddy_http_requests_total[5m])`, ""},
	} {
		_, problems := e.check(tc.expr)
		got := strings.Join(problems, "\n")
		switch {
		case tc.want == "" && got != "":
			t.Errorf("%s: unexpected problems:\n%s", tc.expr, got)
		case tc.want != "" && !strings.Contains(got, tc.want):
			t.Errorf("%s: problems %q, want one containing %q", tc.expr, got, tc.want)
		}
	}
}

func TestMonitoringAlertChecksCatchMistakes(t *testing.T) {
	e := exportedFamilies(t)
	// The fenced comment must not count as a section.
	readme := "# Alerts\n```yaml\n# PspGuardOther\n```\n### PspGuardGood\n"
	const good = `
      - alert: PspGuardGood
        expr: sum by (psp) (rate(caddy_psp_guard_refusals_total{reason="unavailable"}[5m])) > 0
        for: 5m
        labels: {severity: critical}
        annotations:
          summary: "{{ $labels.psp }} unavailable"
          description: "{{ $value | humanize }}/s"
          runbook: caddymodule/monitoring/README.md#pspguardgood`
	for _, tc := range []struct {
		name  string
		rules string
		want  string // a substring of the problem; "" means no problem
	}{
		{"good", good, ""},
		{"bad expr", strings.Replace(good, "[5m])) > 0", "[5m]) > 0", 1), "could not parse expression"},
		{"unknown metric", strings.Replace(good, "refusals_total", "refusal_total", 1), "exports no metric caddy_psp_guard_refusal_total"},
		{"unknown field", strings.Replace(good, "for: 5m", "for: 5m\n        severity: critical", 1), "field severity not found"},
		{"bad template", strings.Replace(good, "{{ $labels.psp }}", "{{ $labels.psp ", 1), "annotation \"summary\""},
		{"no for", strings.Replace(good, "for: 5m", "", 1), "no `for`"},
		{"no severity", strings.Replace(good, "severity: critical", "team: payments", 1), `severity ""`},
		{"no description", strings.Replace(good, `description: "{{ $value | humanize }}/s"`, "", 1), "no description annotation"},
		{"runbook elsewhere", strings.Replace(good, "#pspguardgood", "#pspguardother", 1), "want \"caddymodule/monitoring/README.md#pspguardgood\""},
		{"no section", strings.NewReplacer("PspGuardGood", "PspGuardOther", "pspguardgood", "pspguardother").Replace(good),
			"README.md has no section #pspguardother"},
		{"twice", good + good, "PspGuardGood: defined twice"},
	} {
		_, problems := alertProblems([]byte("groups:\n  - name: test\n    rules:"+tc.rules+"\n"), readme, e)
		got := strings.Join(problems, "\n")
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: problems %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestMonitoringDashboardChecksCatchMistakes(t *testing.T) {
	e := exportedFamilies(t)
	const dashboard = `{
  "schemaVersion": 39,
  "templating": {"list": [
    {"name": "datasource", "type": "datasource", "query": "mysql"},
    {"name": "psp", "type": "query", "query": {"query": "label_values(caddy_psp_guard_ledger_orders, psp)"}}
  ]},
  "panels": [
    {"id": 1, "type": "row", "title": "Row", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1}, "panels": [
      {"id": 2, "type": "timeseries", "title": "Hard-wired", "datasource": {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"},
       "gridPos": {"x": 0, "y": 1, "w": 12, "h": 8},
       "targets": [{"expr": "sum(rate(caddy_psp_guard_refusals_total{reason=\"capture_exceeded\"}[$__rate_interval]))"}]}
    ]},
    {"id": 2, "type": "timeseries", "title": "HTTP", "datasource": {"type": "prometheus", "uid": "${datasource}"},
     "gridPos": {"x": 18, "y": 9, "w": 12, "h": 8},
     "targets": [{"expr": "sum(rate(caddy_http_requests_total[$__range]))"}]}
  ]
}`
	got := strings.Join(dashboardProblems([]byte(dashboard), e), "\n")
	for _, want := range []string{
		`variable datasource selects "mysql" data sources`,
		`variable psp: caddy_psp_guard_ledger_orders has no label "psp"`,
		`panel "Hard-wired" does not query through ${datasource}`,
		`panel "Hard-wired": caddy_psp_guard_refusals_total{reason="capture_exceeded"}: the gateway never writes reason="capture_exceeded"`,
		"panel id 2 used twice",
		`panel "HTTP": gridPos`,
		`panel "HTTP" uses caddy_http_requests_total but its title does not say it needs ` + "`metrics`",
		"no panel shows caddy_psp_guard_captured_amount_total",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems do not report %q; got:\n%s", want, got)
		}
	}
	if strings.Contains(got, "no panel shows caddy_psp_guard_refusals_total") {
		t.Errorf("a family shown only in a collapsed row was missed:\n%s", got)
	}
}

// The alerts must also fire when they should, and only then. Each case
// below is a small history of series, in the spirit of `promtool test
// rules`: the alert's expression is evaluated by the PromQL engine once a
// minute over its `for` window, and it fires for the label sets present at
// every evaluation.

const (
	alertHistory = 49 * time.Hour // the refusal spike compares with the day before the last hour
	alertStep    = 30 * time.Second
)

var alertEnd = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

// testSeries is one series of a case: its value at each age (time before
// the end), from `since` before the end on (the whole history if 0).
type testSeries struct {
	metric string
	value  func(age time.Duration) float64
	since  time.Duration
}

// grows is a counter that grows by perSecond during the last `during`.
func grows(perSecond float64, during time.Duration) func(time.Duration) float64 {
	return func(age time.Duration) float64 { return perSecond * max(0, (during-age).Seconds()) }
}

func level(v float64) func(time.Duration) float64 {
	return func(time.Duration) float64 { return v }
}

// stepUp is 0 until `ago` before the end and n from then on.
func stepUp(n float64, ago time.Duration) func(time.Duration) float64 {
	return func(age time.Duration) float64 {
		if age <= ago {
			return n
		}
		return 0
	}
}

func plus(fs ...func(time.Duration) float64) func(time.Duration) float64 {
	return func(age time.Duration) float64 {
		var v float64
		for _, f := range fs {
			v += f(age)
		}
		return v
	}
}

// upstreamHistogram is caddy_psp_guard_upstream_duration_seconds for one
// operation with perSecond requests that each took `took` seconds.
func upstreamHistogram(operation string, perSecond, took float64) []testSeries {
	sel := `{job="pspguard", psp="klarna", operation="` + operation + `"`
	var out []testSeries
	for _, le := range []float64{0.1, 0.25, 1, 2.5, 5, 10, math.Inf(1)} {
		rate := 0.0
		if took <= le {
			rate = perSecond
		}
		out = append(out, testSeries{
			metric: "caddy_psp_guard_upstream_duration_seconds_bucket" + sel + `, le="` + strconv.FormatFloat(le, 'g', -1, 64) + `"}`,
			value:  grows(rate, alertHistory),
		})
	}
	return append(out, testSeries{
		metric: "caddy_psp_guard_upstream_duration_seconds_count" + sel + "}",
		value:  grows(perSecond, alertHistory),
	})
}

// floatSample, sampleList and seriesList are the least the PromQL engine
// needs to read series from memory.
type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                    { return s.t }
func (floatSample) ST() int64                     { return 0 }
func (s floatSample) F() float64                  { return s.f }
func (floatSample) H() *histogram.Histogram       { return nil }
func (floatSample) FH() *histogram.FloatHistogram { return nil }
func (floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample         { return s }

type sampleList []floatSample

func (s sampleList) Get(i int) chunks.Sample { return s[i] }
func (s sampleList) Len() int                { return len(s) }

type seriesList struct {
	series []storage.Series
	i      int
}

func (s *seriesList) Next() bool                      { s.i++; return s.i <= len(s.series) }
func (s *seriesList) At() storage.Series              { return s.series[s.i-1] }
func (*seriesList) Err() error                        { return nil }
func (*seriesList) Warnings() annotations.Annotations { return nil }

// queryable holds the case's series in memory for the PromQL engine.
func queryable(t *testing.T, series []testSeries) storage.Queryable {
	t.Helper()
	var all []storage.Series
	for _, s := range series {
		lset, err := promqlParser.ParseMetric(s.metric)
		if err != nil {
			t.Fatalf("%s: %v", s.metric, err)
		}
		since := s.since
		if since == 0 {
			since = alertHistory
		}
		var samples sampleList
		for age := since; age >= 0; age -= alertStep {
			samples = append(samples, floatSample{t: alertEnd.Add(-age).UnixMilli(), f: s.value(age)})
		}
		all = append(all, &storage.SeriesEntry{Lset: lset, SampleIteratorFn: func(chunkenc.Iterator) chunkenc.Iterator {
			return storage.NewListSeriesIterator(samples)
		}})
	}
	slices.SortFunc(all, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return &storage.MockQueryable{MockQuerier: &storage.MockQuerier{
		SelectMockFunction: func(_ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
			var out []storage.Series
			for _, s := range all {
				if slices.IndexFunc(ms, func(m *labels.Matcher) bool { return !m.Matches(s.Labels().Get(m.Name)) }) < 0 {
					out = append(out, s)
				}
			}
			return &seriesList{series: out}
		},
	}}
}

// firing evaluates an alert's expression once a minute over its `for`
// window and returns the label sets that were active at every evaluation.
func firing(t *testing.T, engine *promql.Engine, r rulefmt.Rule, series []testSeries) []string {
	t.Helper()
	q := queryable(t, series)
	var active map[string]bool
	for back := time.Duration(r.For); back >= 0; back -= time.Minute {
		qry, err := engine.NewInstantQuery(context.Background(), q, nil, r.Expr, alertEnd.Add(-back))
		if err != nil {
			t.Fatalf("%s: %v", r.Alert, err)
		}
		res := qry.Exec(context.Background())
		vec, err := res.Vector()
		if err != nil {
			t.Fatalf("%s: %v", r.Alert, err)
		}
		now := map[string]bool{}
		for _, s := range vec {
			if k := s.Metric.String(); active == nil || active[k] {
				now[k] = true
			}
		}
		qry.Close()
		active = now
	}
	return slices.Sorted(maps.Keys(active))
}

func TestMonitoringAlertsFire(t *testing.T) {
	groups, errs := rulefmt.Parse(readTestFile(t, alertsFile), false, model.LegacyValidation, promqlParser, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	alerts := map[string]rulefmt.Rule{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = r
		}
	}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 10_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})

	const (
		day  = 24 * time.Hour
		all  = alertHistory
		kl   = `job="pspguard", psp="klarna"`
		dec  = "caddy_psp_guard_decisions_total{" + kl
		ref  = "caddy_psp_guard_refusals_total{" + kl
		idem = "caddy_psp_guard_idempotency_total{" + kl
	)
	for _, tc := range []struct {
		alert  string
		name   string
		series []testSeries
		want   []string // the firing label sets; none if empty
	}{
		{"PspGuardRefusalSpike", "a reason at 100 times its usual rate", []testSeries{
			{metric: ref + `, reason="emd_missing"}`, value: plus(grows(0.01, all), grows(1, 30*time.Minute))},
			{metric: ref + `, reason="capture_exceeds"}`, value: grows(0.5, all)},
		}, []string{`{job="pspguard", psp="klarna", reason="emd_missing"}`}},
		{"PspGuardRefusalSpike", "a reason never seen before", []testSeries{
			{metric: ref + `, reason="approval_expired"}`, value: grows(0.2, 30*time.Minute), since: 30 * time.Minute},
		}, []string{`{job="pspguard", psp="klarna", reason="approval_expired"}`}},
		{"PspGuardRefusalSpike", "a steady rate", []testSeries{
			{metric: ref + `, reason="capture_exceeds"}`, value: grows(0.5, all)},
		}, nil},
		{"PspGuardRefusalSpike", "a spike below 3 a minute", []testSeries{
			{metric: ref + `, reason="emd_missing"}`, value: grows(0.02, 30*time.Minute)},
		}, nil},
		{"PspGuardRefusalSpike", "a spike that ended an hour ago", []testSeries{
			// 1/s from two hours to one hour before the end.
			{metric: ref + `, reason="emd_missing"}`, value: plus(grows(0.01, all), grows(1, 2*time.Hour), grows(-1, time.Hour))},
		}, nil},

		{"PspGuardUpstreamErrors", "10% of guarded requests fail upstream", []testSeries{
			{metric: dec + `, operation="capture", outcome="allowed"}`, value: grows(9, all)},
			{metric: dec + `, operation="capture", outcome="error"}`, value: grows(1, all)},
			{metric: ref + `, reason="capture_exceeds"}`, value: grows(1, all)},
		}, []string{`{job="pspguard", psp="klarna"}`}},
		{"PspGuardUpstreamErrors", "the errors are the gateway's own answers", []testSeries{
			{metric: dec + `, operation="capture", outcome="allowed"}`, value: grows(9, all)},
			{metric: dec + `, operation="capture", outcome="error"}`, value: grows(1, all)},
			{metric: ref + `, reason="bad_value"}`, value: grows(0.6, all)},
			{metric: ref + `, reason="unavailable"}`, value: grows(0.4, all)},
		}, nil},
		{"PspGuardUpstreamErrors", "passthrough traffic does not dilute", []testSeries{
			{metric: dec + `, operation="other", outcome="passthrough"}`, value: grows(100, all)},
			{metric: dec + `, operation="capture", outcome="allowed"}`, value: grows(1, all)},
			{metric: dec + `, operation="capture", outcome="error"}`, value: grows(0.1, all)},
		}, []string{`{job="pspguard", psp="klarna"}`}},
		{"PspGuardUpstreamErrors", "1% of guarded requests fail", []testSeries{
			{metric: dec + `, operation="capture", outcome="allowed"}`, value: grows(99, all)},
			{metric: dec + `, operation="capture", outcome="error"}`, value: grows(1, all)},
		}, nil},

		{"PspGuardUpstreamLatencyHigh", "captures take 4 s", upstreamHistogram("capture", 1, 4),
			[]string{`{job="pspguard", operation="capture", psp="klarna"}`}},
		{"PspGuardUpstreamLatencyHigh", "captures take 200 ms", upstreamHistogram("capture", 1, 0.2), nil},
		{"PspGuardUpstreamLatencyHigh", "slow but too few to judge", upstreamHistogram("capture", 0.01, 4), nil},

		{"PspGuardReservationsStuck", "a reservation held for hours, no captures", []testSeries{
			{metric: `caddy_psp_guard_ledger_reservations{job="pspguard", instance="a:2019", store="memory"}`, value: level(1)},
			{metric: `caddy_psp_guard_captured_amount_total{` + kl + `, currency="EUR"}`, value: stepUp(6000, 3*time.Hour)},
		}, []string{`{instance="a:2019", job="pspguard", store="memory"}`}},
		{"PspGuardReservationsStuck", "nothing was ever captured", []testSeries{
			{metric: `caddy_psp_guard_ledger_reservations{job="pspguard", instance="a:2019", store="redis"}`, value: level(2)},
		}, []string{`{instance="a:2019", job="pspguard", store="redis"}`}},
		{"PspGuardReservationsStuck", "reservations held while captures move", []testSeries{
			{metric: `caddy_psp_guard_ledger_reservations{job="pspguard", instance="a:2019", store="memory"}`, value: level(3)},
			{metric: `caddy_psp_guard_captured_amount_total{` + kl + `, currency="EUR"}`, value: grows(100, all)},
		}, nil},
		{"PspGuardReservationsStuck", "reservations come and go", []testSeries{
			{metric: `caddy_psp_guard_ledger_reservations{job="pspguard", instance="a:2019", store="memory"}`,
				value: func(age time.Duration) float64 { return min(1, float64(int(age.Minutes())%10)) }},
		}, nil},

		{"PspGuardRulesReloadFailed", "a change refused 20 minutes ago", []testSeries{
			{metric: `caddy_psp_guard_rules_reloads_total{job="pspguard", instance="a:2019", result="failure"}`, value: stepUp(1, 20*time.Minute)},
		}, []string{`{instance="a:2019", job="pspguard", result="failure"}`}},
		{"PspGuardRulesReloadFailed", "a change refused 2 hours ago", []testSeries{
			{metric: `caddy_psp_guard_rules_reloads_total{job="pspguard", instance="a:2019", result="failure"}`, value: stepUp(1, 2*time.Hour)},
		}, nil},

		{"PspGuardRulesDigestMismatch", "two instances, two digests", []testSeries{
			{metric: `caddy_psp_guard_rules_info{job="pspguard", instance="a:2019", version="1", digest="0123456789ab"}`, value: level(1)},
			{metric: `caddy_psp_guard_rules_info{job="pspguard", instance="b:2019", version="1", digest="ba9876543210"}`, value: level(1)},
		}, []string{`{job="pspguard"}`}},
		{"PspGuardRulesDigestMismatch", "two instances, one digest", []testSeries{
			{metric: `caddy_psp_guard_rules_info{job="pspguard", instance="a:2019", version="1", digest="0123456789ab"}`, value: level(1)},
			{metric: `caddy_psp_guard_rules_info{job="pspguard", instance="b:2019", version="1", digest="0123456789ab"}`, value: level(1)},
		}, nil},

		{"PspGuardIdempotencyConflicts", "one keyed request in six is a 409", []testSeries{
			{metric: idem + `, outcome="stored"}`, value: grows(1, all)},
			{metric: idem + `, outcome="in_flight"}`, value: grows(0.2, all)},
			{metric: idem + `, outcome="mismatch"}`, value: level(0)},
			{metric: idem + `, outcome="no_key"}`, value: grows(50, all)},
		}, []string{`{job="pspguard", outcome="in_flight", psp="klarna"}`}},
		{"PspGuardIdempotencyConflicts", "rare conflicts in heavy traffic", []testSeries{
			{metric: idem + `, outcome="stored"}`, value: grows(10, all)},
			{metric: idem + `, outcome="mismatch"}`, value: grows(0.05, all)},
		}, nil},

		{"PspGuardStoreUnavailable", "503s for half an hour", []testSeries{
			{metric: ref + `, reason="unavailable"}`, value: grows(0.1, 30*time.Minute)},
		}, []string{`{job="pspguard", psp="klarna"}`}},
		{"PspGuardStoreUnavailable", "one 503 a day ago", []testSeries{
			{metric: ref + `, reason="unavailable"}`, value: stepUp(1, day)},
		}, nil},
	} {
		r, ok := alerts[tc.alert]
		if !ok {
			t.Errorf("%s: no such alert", tc.alert)
			continue
		}
		if got := firing(t, engine, r, tc.series); !slices.Equal(got, tc.want) {
			t.Errorf("%s, %s: fires for %q, want %q", tc.alert, tc.name, got, tc.want)
		}
	}
}
