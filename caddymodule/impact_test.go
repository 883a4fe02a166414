package caddymodule

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pspguard/pspguard/rules"
)

var (
	rulesExampleDraft     = filepath.Join(rulesTestdata, "example_draft.yaml")
	rulesExampleDecisions = filepath.Join(rulesTestdata, "example_decisions.log")
)

// impact replays the decisions a gateway logged (the example log was written
// by pspguard with the example rules) against a draft, at the time each was
// made, and prints the ones that would change and a summary per merchant.
func TestRulesImpact(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := rulesImpact(&stdout, &stderr, rulesExampleDraft, []string{rulesExampleDecisions}, "")
	want := `2026-12-04T19:18:22Z digitalshop: allow (category_allowed) -> refuse (emd_missing): category "digital_products" requires extra merchant data "voucher" in attachment.body [token:d964825e168a1d4b]
2026-12-04T19:18:26Z shoeshop: refuse (category_not_allowed) -> allow (category_allowed): merchant category "fulfilment_24h" may auto-capture [token:fdeb7af4b983885a]
2026-12-04T19:18:29Z approvedshop: allow (approved) -> refuse (approval_expired): auto_capture approval KL-2026-118 expired on 2026-11-30 [token:ea1b488812555998]

merchant      replayed  allow -> refuse  refuse -> allow
approvedshop  1         1                0
digitalshop   1         1                0
eventhall     1         0                0
newshop       1         0                0
shoeshop      2         0                1
voucherstore  2         0                0
3 of 8 auto-capture decisions would change under ` + rulesExampleDraft + ` (each replayed at the time it was made: approvals count by their expiry date against the line's ts)
`
	if code != 1 || stdout.String() != want || stderr.Len() != 0 {
		t.Errorf("exit %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", code, stdout.String(), want, stderr.String())
	}

	// The rules that made the decisions change none of them; a rolled,
	// compressed log reads as the plain one.
	data, err := os.ReadFile(rulesExampleDecisions)
	if err != nil {
		t.Fatal(err)
	}
	gz := filepath.Join(t.TempDir(), "decisions-2026-12-04T19-20-00.000.log.gz")
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	_, _ = zw.Write(data)
	_ = zw.Close()
	if err := os.WriteFile(gz, zb.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if code := rulesImpact(&stdout, &stderr, rulesExample, []string{gz}, ""); code != 0 ||
		!strings.HasSuffix(stdout.String(), "0 of 8 auto-capture decisions would change under "+rulesExample+
			" (each replayed at the time it was made: approvals count by their expiry date against the line's ts)\n") {
		t.Errorf("same rules: exit %d, stdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}

	// An approval counts by the line's time, not today's: a line from the
	// day after the draft's expiry is refused, one from its last day is not.
	lines := rulesWriteFile(t, "old.log",
		`{"level":"info","ts":1796083199.5,"logger":"http.handlers.psp_guard.decision","msg":"decision","operation":"create_order","merchant":"approvedshop","decision":"allowed","reason":"approved","rule_reason":"approved","auto_capture":"true","line_types":["physical"],"emd_keys":[],"purchase_ref":"token:0000000000000001"}
{"level":"info","ts":"2026-12-01T00:00:00Z","logger":"http.handlers.psp_guard.decision","msg":"decision","operation":"create_order","merchant":"approvedshop","decision":"allowed","reason":"approved","rule_reason":"approved","auto_capture":"true","line_types":["physical"],"emd_keys":[],"purchase_ref":"token:0000000000000002"}
{"level":"info","ts":1796083199.5,"logger":"http.handlers.psp_guard.decision","msg":"decision","operation":"create_order","merchant":"shoeshop","decision":"refused","reason":"category_not_allowed"}
{"level":"info","ts":1796083199.5,"logger":"http.handlers.psp_guard.decision","msg":"decision","operation":"capture","merchant":"shoeshop","decision":"allowed","reason":""}
{"level":"info","ts":1796083199.5,"logger":"http.log.access","msg":"handled request"}
`)
	stdout.Reset()
	code = rulesImpact(&stdout, &stderr, rulesExampleDraft, []string{lines}, "")
	got := rulesLines(stdout.String())
	if code != 1 || len(got) < 2 || got[0] != `2026-12-01T00:00:00Z approvedshop: allow (approved) -> refuse (approval_expired): auto_capture approval KL-2026-118 expired on 2026-11-30 [token:0000000000000002]` ||
		got[len(got)-1] != "1 create-order lines without the rules' inputs were skipped (written by a gateway that did not record them)" ||
		!strings.Contains(stdout.String(), "1 of 2 auto-capture decisions would change") {
		t.Errorf("by the line's time: exit %d, stdout:\n%s", code, stdout.String())
	}

	// --site replays only that site's lines.
	sites := rulesWriteFile(t, "sites.log",
		`{"ts":"2026-12-01T00:00:00Z","logger":"http.handlers.psp_guard.decision","site":"eu","operation":"create_order","merchant":"approvedshop","reason":"approved","rule_reason":"approved","auto_capture":"true","line_types":["physical"],"emd_keys":[]}
{"ts":"2026-12-01T00:00:00Z","logger":"http.handlers.psp_guard.decision","site":"na","operation":"create_order","merchant":"approvedshop","reason":"approved","rule_reason":"approved","auto_capture":"true","line_types":["physical"],"emd_keys":[]}
`)
	stdout.Reset()
	if code := rulesImpact(&stdout, &stderr, rulesExampleDraft, []string{sites}, "na"); code != 1 ||
		!strings.HasPrefix(stdout.String(), "2026-12-01T00:00:00Z approvedshop site na: allow (approved) -> refuse (approval_expired)") ||
		!strings.Contains(stdout.String(), "1 of 1 auto-capture decisions would change") {
		t.Errorf("--site na: exit %d, stdout:\n%s", code, stdout.String())
	}

	// A site no line names is an error, not a replay in which nothing
	// changes: the message names the sites the lines do name.
	stdout.Reset()
	stderr.Reset()
	if code := rulesImpact(&stdout, &stderr, rulesExampleDraft, []string{sites}, "nz"); code != 2 || stdout.Len() != 0 ||
		stderr.String() != `no decision line of site "nz" in `+sites+" (the decision lines name eu, na): nothing was replayed\n" {
		t.Errorf("--site nz: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}

	// Errors exit 2: a draft with a problem, a missing log, a broken line.
	broken := rulesWriteFile(t, "broken.log", `{"ts":"yesterday","operation":"create_order","merchant":"a","reason":"approved","rule_reason":"approved","auto_capture":"true"}`+"\n")
	badDraft := rulesWriteFile(t, "draft.yaml", "version: 1\nmerchants:\n  a: {category: nope}\n")
	for _, c := range []struct {
		draft, log, msg string
	}{
		{badDraft, rulesExampleDecisions, "merchants.a.category: unknown category"},
		{rulesExampleDraft, filepath.Join(t.TempDir(), "missing.log"), "no such file"},
		{rulesExampleDraft, broken, broken + `:1: ts: "yesterday" is not a time`},
	} {
		stdout.Reset()
		stderr.Reset()
		if code := rulesImpact(&stdout, &stderr, c.draft, []string{c.log}, ""); code != 2 || !strings.Contains(stderr.String(), c.msg) {
			t.Errorf("%s %s: exit %d, stderr %q, want 2 and %q", c.draft, c.log, code, stderr.String(), c.msg)
		}
	}
}

// A replay reads the user name the rules may list and whether the request
// carried order lines, as the gateway decided with them.
func TestImpactOrderUserAndLinesUnknown(t *testing.T) {
	var l impactLine
	if err := json.Unmarshal([]byte(`{"merchant":"PK1","user":"PK1_web","auto_capture":"true","line_types":[],"lines_unknown":true}`), &l); err != nil {
		t.Fatal(err)
	}
	o, err := impactOrder(l)
	if err != nil || o.User != "PK1_web" || o.Merchant != "PK1" || !o.LinesUnknown || o.AutoCapture != rules.AutoCaptureTrue {
		t.Fatalf("order %+v, %v", o, err)
	}
}
