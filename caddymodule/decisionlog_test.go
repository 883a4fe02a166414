package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The decision log is an audit trail: written by a real Caddy to a file of
// its own through a global log with include, rotated by size, with RFC 3339
// times; every create-order line carries what the rules read and a
// reference to the purchase, allowed-by-approval lines name the approval,
// and nothing the caller wrote reaches the file unless it is a known token.
func TestDecisionLogAuditTrail(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "decisions.log")
	// A file already at the roll size: the first line rolls it.
	filler := strings.Repeat("filler line of an older decision log\n", (1<<20)/37+1)
	if err := os.WriteFile(logFile, []byte(filler), 0o600); err != nil {
		t.Fatal(err)
	}
	g := newGatewayGlobal(t, exampleRules, "", `log decisions {
		include http.handlers.psp_guard.decision
		output file `+logFile+` {
			roll_size 1MiB
			roll_keep 5
		}
		format json {
			time_format rfc3339
		}
	}`)

	const email, card = "jane.doe@example.com", "4111111111111111"
	approvedToken, voucherToken := randToken(), randToken()
	emd := `, "attachment": {"content_type": "application/vnd.klarna.internal.emd-v2+json",
	  "body": "{\"voucher\":[{\"voucher_name\":\"Gift card\"}],\"` + email + `\":[{\"x\":1}]}"}`
	checkout := `{"purchase_country":"SE","purchase_currency":"SEK","locale":"sv-SE","order_amount":500,"order_tax_amount":0,
	  "order_lines":[{"type":"PHYSICAL","name":"Shoe","quantity":1,"unit_price":500,"tax_rate":0,"total_amount":500,"total_tax_amount":0}],
	  "options":{"auto_capture":true}}`
	steps := []struct {
		method, path, merchant, body string
		status                       int
	}{
		{"POST", "/payments/v1/authorizations/" + approvedToken + "/order", "approvedshop", orderBody(700, true, ""), 200},
		{"POST", "/payments/v1/authorizations/" + voucherToken + "/order", "voucherstore", orderBody(800, true, emd), 200},
		{"POST", "/checkout/v3/orders", "shoeshop", checkout, 403},
		{"POST", "/payments/v1/authorizations/" + randToken() + "/order", "shoeshop", `{"order_amount": 1, "` + email + `": tru}`, 400},
		{"POST", "/ordermanagement/v1/orders/" + card + "/captures", "shoeshop", `{"captured_amount": 100}`, 0},
		{"POST", "/hpp/v1/sessions", "PK1_web", hppBody("CAPTURE_ORDER"), 403},
	}
	for _, s := range steps {
		resp, body := g.do(s.method, s.path, s.merchant, s.body)
		if s.status != 0 && resp.StatusCode != s.status {
			t.Fatalf("%s %s: %d %s", s.method, s.path, resp.StatusCode, body)
		}
	}

	var lines []map[string]any
	for deadline := time.Now().Add(5 * time.Second); len(lines) < len(steps) && time.Now().Before(deadline); {
		lines = decisionLines(t, logFile)
		time.Sleep(20 * time.Millisecond)
	}
	if len(lines) != len(steps) {
		t.Fatalf("%d decision lines in the new file, want %d", len(lines), len(steps))
	}
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "filler") || strings.Count(string(data), "\n") != len(steps) {
		t.Errorf("the log file was not rolled, or holds lines other than decisions:\n%s", data)
	}
	// The rolled file may still be being compressed.
	if rolled, _ := filepath.Glob(filepath.Join(dir, "decisions-*.log*")); len(rolled) == 0 {
		t.Error("no rolled file beside the log")
	}
	for _, secret := range []string{email, card, "Jane", approvedToken, voucherToken} {
		if strings.Contains(string(data), secret) {
			t.Errorf("the decision log contains %q", secret)
		}
	}

	digest := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return hex.EncodeToString(sum[:8])
	}
	want := []map[string]any{
		{"site": ":9080", "merchant": "approvedshop", "decision": "allowed", "reason": "approved", "rule_reason": "approved", "approval": "KL-2026-118",
			"auto_capture": "true", "auto_capture_field": "auto_capture", "line_types": []any{"digital"},
			"emd_keys": []any{}, "purchase_ref": "token:" + digest(approvedToken)},
		{"merchant": "voucherstore", "decision": "allowed", "reason": "category_allowed",
			"emd_keys": []any{"voucher"}, "emd_unlisted_keys": float64(1), "purchase_ref": "token:" + digest(voucherToken)},
		{"operation": "create_checkout_order", "decision": "refused", "reason": "category_not_allowed",
			"auto_capture": "true", "auto_capture_field": "options.auto_capture", "line_types": []any{"physical"},
			"purchase_ref": "body:" + digest(checkout)},
		{"decision": "error", "reason": "bad_value", "message": "invalid value in $[*]: unexpected 't' (at byte offset 44)"},
		// An order id that is not a UUID is refused with the path.
		{"operation": "other", "decision": "error", "reason": "bad_value", "order_id": ""},
		{"operation": "create_hpp_session", "merchant": "PK1", "user": "PK1_web", "decision": "refused", "reason": "merchant_unknown",
			"auto_capture": "true", "auto_capture_field": "options.place_order_mode", "line_types": []any{}, "lines_unknown": true},
	}
	for i, w := range want {
		for k, v := range w {
			if got, _ := json.Marshal(lines[i][k]); string(got) != mustJSON(t, v) {
				t.Errorf("line %d (%v): %s = %s, want %s", i, lines[i]["operation"], k, got, mustJSON(t, v))
			}
		}
		ts, _ := lines[i]["ts"].(string)
		if _, err := time.Parse(time.RFC3339, ts); err != nil {
			t.Errorf("line %d: ts %v is not RFC 3339", i, lines[i]["ts"])
		}
	}
	if _, ok := lines[3]["purchase_ref"]; ok {
		t.Error("a create-order refused before the rules ran has no rule inputs")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
