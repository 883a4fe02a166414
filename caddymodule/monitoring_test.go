package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/pspguard/pspguard/internal/guard"
	"github.com/pspguard/pspguard/internal/psp"
)

// The dashboard and the alert rules in monitoring/ are only as good as the
// metric names and label values in their queries: a renamed family or a
// misspelt reason leaves a panel empty and an alert silent, and nothing else
// notices. These tests hold them to what the package registers. Whether the
// alerts fire when they should, and only then, is for promtool's rule unit
// tests (monitoring/alerts_test.yaml), run by TestMonitoringPromtool.

const (
	monitoringDir    = "../monitoring"
	dashboardFile    = monitoringDir + "/grafana-dashboard.json"
	alertsFile       = monitoringDir + "/alerts.yaml"
	alertTestsFile   = monitoringDir + "/alerts_test.yaml"
	readmeFile       = monitoringDir + "/README.md"
	runbookPrefix    = "monitoring/README.md#"
	familyPrefix     = "caddy_psp_guard_"
	datasourceUID    = "${datasource}"
	needsMetricsNote = "needs `metrics`"
)

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
	stores := []string{"memory", "redis"}
	return map[string]map[string][]string{
		"caddy_psp_guard_decisions_total":           {"operation": ops, "outcome": guard.Outcomes()},
		"caddy_psp_guard_refusals_total":            {"reason": guard.RefusalReasons()},
		"caddy_psp_guard_idempotency_total":         {"outcome": {"stored", "replayed", "in_flight", "mismatch", "abandoned", "no_key"}},
		"caddy_psp_guard_upstream_duration_seconds": {"operation": ops},
		"caddy_psp_guard_rules_reloads_total":       {"result": {"success", "failure"}},
		"caddy_psp_guard_ledger_orders":             {"store": stores},
		"caddy_psp_guard_ledger_reservations":       {"store": stores},
		"caddy_psp_guard_idempotency_results":       {"store": stores},
		"caddy_psp_guard_store_up":                  {"store": stores},
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
	if _, err := provisionMetrics(reg, "eu", "klarna"); err != nil {
		t.Fatalf("provisionMetrics: %v", err)
	}
	values := writtenValues()
	fams := exported{}
	for _, c := range metrics.collectors() {
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

// selector is one series selector of a PromQL expression: a metric name
// and its label matchers.
type selector struct {
	text     string // as written, for messages
	name     string
	matchers []matcher
}

type matcher struct {
	label, op, value string
}

// matcherRE reads one label matcher inside braces.
var matcherRE = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)`)

// selectors finds the series selectors of a PromQL expression. It is no
// PromQL parser: it skips string literals and numbers (so "5m" is no
// name), takes every other name followed by braces as a selector, and a
// bare name as one if it looks like a metric of Caddy's. That is all the
// dashboard and the alerts need; promtool parses the alerts for real.
func selectors(expr string) ([]selector, []string) {
	var out []selector
	var problems []string
	depth := map[byte]int{}
	closing := map[byte]byte{')': '(', ']': '[', '}': '{'}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			i = j + 1
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isNameByte(expr[i]) || expr[i] == '.') {
				i++
			}
		case isNameByte(c):
			j := i
			for j < len(expr) && (isNameByte(expr[j]) || expr[j] == ':') {
				j++
			}
			name := expr[i:j]
			k := j
			for k < len(expr) && expr[k] == ' ' {
				k++
			}
			if k < len(expr) && expr[k] == '{' {
				end := strings.IndexByte(expr[k:], '}')
				if end < 0 {
					return out, append(problems, fmt.Sprintf("%q does not parse: unclosed {", expr))
				}
				sel, p := parseMatchers(name, expr[i:k+end+1], expr[k+1:k+end])
				out, problems = append(out, sel), append(problems, p...)
				j = k + end + 1
			} else if strings.HasPrefix(name, "caddy_") {
				out = append(out, selector{text: name, name: name})
			}
			i = j
		case c == '{':
			return out, append(problems, fmt.Sprintf("%q: a selector without a metric name cannot be checked", expr))
		case c == '(' || c == '[':
			depth[c]++
			i++
		case closing[c] != 0:
			if depth[closing[c]]--; depth[closing[c]] < 0 {
				return out, append(problems, fmt.Sprintf("%q does not parse: unbalanced %c", expr, c))
			}
			i++
		default:
			i++
		}
	}
	for open, n := range depth {
		if n != 0 {
			problems = append(problems, fmt.Sprintf("%q does not parse: unbalanced %c", expr, open))
		}
	}
	return out, problems
}

func isNameByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func parseMatchers(name, text, inside string) (selector, []string) {
	sel := selector{text: text, name: name}
	for rest := strings.TrimSpace(inside); rest != ""; {
		m := matcherRE.FindStringSubmatch(rest)
		if m == nil {
			return sel, []string{fmt.Sprintf("%s does not parse: bad label matcher %q", text, rest)}
		}
		value := strings.NewReplacer(`\\`, `\`, `\"`, `"`).Replace(m[3])
		sel.matchers = append(sel.matchers, matcher{label: m[1], op: m[2], value: value})
		rest = strings.TrimSpace(rest[len(m[0]):])
	}
	return sel, nil
}

// check returns the metric names an expression selects and what is wrong
// with it: it selects a caddy_psp_guard_ series pspguard does not export,
// or it filters on a label the family does not have or on a value the
// gateway never writes.
func (e exported) check(expr string) (names, problems []string) {
	sels, problems := selectors(expr)
	for _, s := range sels {
		names = append(names, s.name)
		problems = append(problems, e.checkSelector(s)...)
	}
	return names, problems
}

func (e exported) checkSelector(s selector) []string {
	if !strings.HasPrefix(s.name, familyPrefix) {
		return nil
	}
	fname, f, ok := e.lookup(s.name)
	if !ok {
		return []string{fmt.Sprintf("%s: pspguard exports no metric %s", s.text, s.name)}
	}
	if f.histogram && s.name == fname {
		return []string{fmt.Sprintf("%s: histogram %s has only _bucket, _sum and _count series", s.text, fname)}
	}
	var problems []string
	for _, m := range s.matchers {
		if slices.Contains(targetLabels, m.label) || (m.label == "le" && s.name == fname+"_bucket") {
			continue
		}
		values, ok := f.labels[m.label]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: %s has no label %q", s.text, fname, m.label))
			continue
		}
		problems = append(problems, checkValue(s, m, values)...)
	}
	return problems
}

// checkValue reports a matcher that can match none of the values the
// gateway writes. Each alternative of a regular expression must match one:
// an alternative that matches nothing is a typo that silently narrows the
// query. Dashboard variables ($psp) are left to the dashboard.
func checkValue(s selector, m matcher, values []string) []string {
	if values == nil || strings.Contains(m.value, "$") {
		return nil
	}
	switch m.op {
	case "=", "!=":
		if !slices.Contains(values, m.value) {
			return []string{fmt.Sprintf("%s: the gateway never writes %s=%q", s.text, m.label, m.value)}
		}
	case "=~", "!~":
		var problems []string
		for _, alt := range strings.Split(m.value, "|") {
			re, err := regexp.Compile("^(?:" + alt + ")$")
			if err != nil || !slices.ContainsFunc(values, re.MatchString) {
				problems = append(problems, fmt.Sprintf("%s: %q matches no %s the gateway writes", s.text, alt, m.label))
			}
		}
		return problems
	}
	return nil
}

// alertFile is the part of Prometheus's rule file format the checks read;
// unknown fields are errors, as they are for Prometheus.
type alertFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// alertProblems holds each alerting rule to what pspguard exports and to
// the house rules: a `for`, a severity, a summary and a description, and a
// runbook pointing at the alert's own section of the README. `promtool
// check rules` checks the PromQL and the templates (TestMonitoringPromtool).
func alertProblems(data []byte, readme string, e exported) (alerts, problems []string) {
	var f alertFile
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, []string{err.Error()}
	}
	anchors := readmeAnchors(readme)
	for _, g := range f.Groups {
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
			if d, err := model.ParseDuration(r.For); err != nil || d <= 0 {
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
	for _, v := range []string{"psp", "site"} {
		if vars[v] != "query" {
			problems = append(problems, "no "+v+" query variable")
		}
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
				expr := grafanaIntervals.Replace(tg.Expr)
				names, ps := e.check(expr)
				for _, s := range ps {
					problems = append(problems, fmt.Sprintf("panel %q: %s", p.Title, s))
				}
				sels, _ := selectors(expr)
				for _, sel := range sels {
					if strings.HasPrefix(sel.name, familyPrefix) && !slices.Contains(sel.matchers, matcher{"site", "=~", "$site"}) {
						problems = append(problems, fmt.Sprintf("panel %q: %s is not filtered by site=~\"$site\"", p.Title, sel.text))
					}
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
		"caddy_psp_guard_store_up", "caddy_psp_guard_store_down_forwarded_total",
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
	for name, f := range e {
		if _, ok := f.labels["site"]; !ok {
			t.Errorf("%s has no site label", name)
		}
	}
	if got := e["caddy_psp_guard_ledger_reservations"].labels; len(got) != 2 || got["store"] == nil {
		t.Errorf("ledger_reservations labels = %v, want site and store", got)
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
		"PspGuardReservationsStuck", "PspGuardRulesReloadFailed", "PspGuardRulesDigestMismatch",
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
		{`{__name__=~"caddy_psp_guard_.+"}`, "without a metric name"},
		{`sum(rate(caddy_psp_guard_decisions_total[5m])`, "does not parse"},
		{`caddy_psp_guard_decisions_total{outcome="error"`, "does not parse"},
		{`caddy_psp_guard_decisions_total{outcome=error}`, "bad label matcher"},
		{`caddy_psp_guard_rules_info{sight="eu"}`, `has no label "sight"`},

		{`histogram_quantile(0.99, sum by (le) (rate(caddy_psp_guard_upstream_duration_seconds_bucket{operation="capture"}[5m])))`, ""},
		{`caddy_psp_guard_refusals_total{reason=~"capture_.*|category_not_allowed", psp=~"$psp", instance="a:2019"}`, ""},
		{`caddy_psp_guard_refusals_total{reason="lookup_refused", site="eu"} offset 5m`, ""},
		{`count by (job, site) (caddy_psp_guard_rules_info{digest="0123456789ab", site=~"$site"})`, ""},
		{`label_replace(caddy_psp_guard_ledger_orders, "x", "$1", "site", "(.*)")`, ""},
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
          runbook: monitoring/README.md#pspguardgood`
	for _, tc := range []struct {
		name  string
		rules string
		want  string // a substring of the problem; "" means no problem
	}{
		{"good", good, ""},
		{"bad expr", strings.Replace(good, "[5m])) > 0", "[5m]) > 0", 1), "does not parse"},
		{"unknown metric", strings.Replace(good, "refusals_total", "refusal_total", 1), "exports no metric caddy_psp_guard_refusal_total"},
		{"unknown field", strings.Replace(good, "for: 5m", "for: 5m\n        severity: critical", 1), "field severity not found"},
		{"no for", strings.Replace(good, "for: 5m", "", 1), "no `for`"},
		{"no severity", strings.Replace(good, "severity: critical", "team: payments", 1), `severity ""`},
		{"no description", strings.Replace(good, `description: "{{ $value | humanize }}/s"`, "", 1), "no description annotation"},
		{"runbook elsewhere", strings.Replace(good, "#pspguardgood", "#pspguardother", 1), "want \"monitoring/README.md#pspguardgood\""},
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
		"no site query variable",
		`panel "Hard-wired": caddy_psp_guard_refusals_total{reason="capture_exceeded"} is not filtered by site=~"$site"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems do not report %q; got:\n%s", want, got)
		}
	}
	if strings.Contains(got, "no panel shows caddy_psp_guard_refusals_total") {
		t.Errorf("a family shown only in a collapsed row was missed:\n%s", got)
	}
}

// TestMonitoringPromtool runs `promtool check rules` on the alerts and
// `promtool test rules` on their unit tests: every alert fires for the
// trouble it is about, and stays quiet for a client's own mistakes. CI
// (CI=true) installs promtool and fails without it; elsewhere the test
// skips when promtool is not on the PATH.
func TestMonitoringPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is not installed (.ci/run installs it from Debian's prometheus package)")
		}
		t.Skip("promtool is not installed (Debian: the prometheus package)")
	}
	dir, err := filepath.Abs(monitoringDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"check", "rules", filepath.Base(alertsFile)},
		{"test", "rules", filepath.Base(alertTestsFile)},
		// The example configuration the README walks an operator through
		// loads alerts.yaml: a renamed file would leave Prometheus without
		// pspguard's alerts.
		{"check", "config", "prometheus.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// Every alert has unit tests in which it fires and in which it does not.
func TestMonitoringEveryAlertTested(t *testing.T) {
	var tests struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			Name      string `yaml:"name"`
			AlertRule []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(readTestFile(t, alertTestsFile), &tests); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tests.RuleFiles, []string{filepath.Base(alertsFile)}) {
		t.Errorf("rule_files = %v, want [%s]", tests.RuleFiles, filepath.Base(alertsFile))
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRule {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	alerts, _ := alertProblems(readTestFile(t, alertsFile), string(readTestFile(t, readmeFile)), exportedFamilies(t))
	for _, a := range alerts {
		if !fires[a] {
			t.Errorf("no unit test in which %s fires", a)
		}
		if !quiet[a] {
			t.Errorf("no unit test in which %s stays quiet", a)
		}
	}
}
