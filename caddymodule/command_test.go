package caddymodule

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

var (
	rulesTestdata     = filepath.Join("..", "testdata", "rules")
	rulesExample      = filepath.Join(rulesTestdata, "example.yaml")
	rulesExampleCases = filepath.Join(rulesTestdata, "example_cases.yaml")
	rulesTestNow      = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
)

// rulesLines splits output into lines, without the final newline.
func rulesLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func rulesWriteFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRulesCommandValidate(t *testing.T) {
	data, err := os.ReadFile(rulesExample)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	var stdout, stderr bytes.Buffer
	if code := rulesValidate(&stdout, &stderr, rulesExample, rulesTestNow); code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	want := rulesExample + ": ok (version 1, 5 merchants, digest " + hex.EncodeToString(sum[:])[:12] + ")\n"
	if stdout.String() != want || stderr.Len() != 0 {
		t.Errorf("stdout %q, stderr %q; want stdout %q", stdout.String(), stderr.String(), want)
	}

	one := rulesWriteFile(t, "one.yaml", "version: 1\nmerchants:\n  a: {category: in_store}\n")
	stdout.Reset()
	if code := rulesValidate(&stdout, &stderr, one, rulesTestNow); code != 0 || !strings.Contains(stdout.String(), "(version 1, 1 merchant, digest ") {
		t.Errorf("exit %d, stdout %q", code, stdout.String())
	}
}

func TestRulesCommandValidateBroken(t *testing.T) {
	broken := filepath.Join(rulesTestdata, "broken")
	for _, tt := range []struct {
		file  string
		lines []string // each a prefix of one stderr line, after the file name
	}{
		{"unknown_key.yaml", []string{":4: auto_capture.allowed_category: unknown key"}},
		{"unknown_category.yaml", []string{`:7: merchants.shoeshop.category: unknown category "phyiscal_goods" (known: `}},
		{"bad_date.yaml", []string{`:8: merchants.approvedshop.auto_capture_approval.expires: "2027-02-30" is not a calendar date`}},
		{"wrong_type.yaml", []string{":5: merchants.digitalshop.category: must be a category name, not a list"}},
		{"many_problems.yaml", []string{
			":4: auto_capture.allowed_categories: ",
			":6: auto_capture.require_emd.vouchers: ",
			":9: merchants.shoeshop.category: ",
			":12: merchants.approvedshop.auto_capture_approval.reference: ",
			":13: merchants.approvedshop.auto_capture_approval.expires: ",
			":14: merchants.shoeshop: duplicate key",
			":16: default_category: ",
		}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join(broken, tt.file)
			var stdout, stderr bytes.Buffer
			if code := rulesValidate(&stdout, &stderr, path, rulesTestNow); code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
			got := rulesLines(stderr.String())
			if len(got) != len(tt.lines) {
				t.Fatalf("stderr:\n%s\nwant %d lines", stderr.String(), len(tt.lines))
			}
			for i, want := range tt.lines {
				if !strings.HasPrefix(got[i], path+want) {
					t.Errorf("line %d = %q, want prefix %q", i, got[i], path+want)
				}
			}
		})
	}

	var stdout, stderr bytes.Buffer
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	if code := rulesValidate(&stdout, &stderr, missing, rulesTestNow); code != 1 || !strings.Contains(stderr.String(), missing) ||
		!strings.Contains(stderr.String(), "no such file") {
		t.Errorf("missing file: exit %d, stderr %q", code, stderr.String())
	}
}

func TestRulesCommandTest(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := rulesTest(&stdout, &stderr, rulesExample, []string{rulesExampleCases}, rulesTestNow); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	lines := rulesLines(stdout.String())
	if len(lines) < 2 {
		t.Fatalf("stdout:\n%s", stdout.String())
	}
	for _, l := range lines[:len(lines)-1] {
		if !strings.HasPrefix(l, "ok   ") {
			t.Errorf("case line %q, want ok", l)
		}
	}
	if want := "18 passed, 0 failed"; lines[len(lines)-1] != want {
		t.Errorf("summary %q, want %q", lines[len(lines)-1], want)
	}
	if lines[2] != "ok   digital shop auto-captures" {
		t.Errorf("third case line %q", lines[2])
	}
}

func TestRulesCommandTestFailures(t *testing.T) {
	failing := rulesWriteFile(t, "failing.yaml", `cases:
  - name: digital shop auto-captures
    merchant: digitalshop
    order: {auto_capture: true}
    expect: allow
  - name: shoe shop auto-captures
    merchant: shoeshop
    order: {auto_capture: true, order_lines: [physical]}
    expect: allow
    reason: category_allowed
  - name: digital shop refused
    merchant: digitalshop
    order: {auto_capture: true}
    expect: refuse
`)
	more := rulesWriteFile(t, "more.yaml", "cases:\n  - name: unlisted\n    merchant: x\n    order: {auto_capture: true}\n    expect: refuse\n    reason: merchant_unknown\n")
	var stdout, stderr bytes.Buffer
	code := rulesTest(&stdout, &stderr, rulesExample, []string{failing, more}, rulesTestNow)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	want := []string{
		"ok   digital shop auto-captures",
		"FAIL shoe shop auto-captures: expected allow (category_allowed), got refuse (category_not_allowed)",
		"FAIL digital shop refused: expected refuse, got allow (category_allowed)",
		"ok   unlisted",
		"2 passed, 2 failed",
	}
	if got := rulesLines(stdout.String()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), strings.Join(want, "\n"))
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr %q", stderr.String())
	}
}

// Cases without a date are decided at the time the command runs.
func TestRulesCommandTestNow(t *testing.T) {
	cases := rulesWriteFile(t, "cases.yaml", "cases:\n  - name: approved shop\n    merchant: approvedshop\n    order: {auto_capture: true}\n    expect: allow\n")
	for _, tt := range []struct {
		now  time.Time
		code int
		line string
	}{
		{time.Date(2027, 6, 30, 23, 59, 59, 0, time.UTC), 0, "ok   approved shop"},
		{time.Date(2027, 7, 1, 0, 0, 0, 0, time.UTC), 1, "FAIL approved shop: expected allow, got refuse (approval_expired)"},
	} {
		var stdout, stderr bytes.Buffer
		code := rulesTest(&stdout, &stderr, rulesExample, []string{cases}, tt.now)
		if lines := rulesLines(stdout.String()); code != tt.code || len(lines) != 2 || lines[0] != tt.line {
			t.Errorf("at %v: exit %d, stdout:\n%s\nwant exit %d, %q", tt.now, code, stdout.String(), tt.code, tt.line)
		}
	}
}

// A case's merchant is looked up as the gateway looks up a Klarna caller:
// by the user name (PK1_pos), then by the merchant id before its first '_'
// (digitalshop for digitalshop_web).
func TestRulesCommandTestUserNames(t *testing.T) {
	rulesFile := rulesWriteFile(t, "rules.yaml", `version: 1
merchants:
  digitalshop: {category: digital_products}
  PK1: {category: physical_goods}
  PK1_pos: {category: in_store}
`)
	cases := rulesWriteFile(t, "cases.yaml", `cases:
  - name: a credential of a listed merchant
    merchant: digitalshop_web
    order: {auto_capture: true}
    expect: allow
    reason: category_allowed
  - name: a credential listed by its user name
    merchant: PK1_pos
    order: {auto_capture: true, order_lines: [physical]}
    expect: allow
    reason: category_allowed
  - name: another credential of that merchant
    merchant: PK1_erp
    order: {auto_capture: true}
    expect: refuse
    reason: category_not_allowed
  - name: a credential of an unlisted merchant
    merchant: othershop_web
    order: {auto_capture: true}
    expect: refuse
    reason: merchant_unknown
`)
	var stdout, stderr bytes.Buffer
	if code := rulesTest(&stdout, &stderr, rulesFile, []string{cases}, rulesTestNow); code != 0 || !strings.HasSuffix(stdout.String(), "4 passed, 0 failed\n") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	for name, want := range map[string][2]string{
		"digitalshop_web":      {"digitalshop_web", "digitalshop"},
		"digitalshop":          {"digitalshop", "digitalshop"},
		"key:0123456789abcdef": {"", "key:0123456789abcdef"},
	} {
		if user, merchant := caseIdentity(name); user != want[0] || merchant != want[1] {
			t.Errorf("caseIdentity(%q) = %q, %q; want %q, %q", name, user, merchant, want[0], want[1])
		}
	}
}

func TestRulesCommandTestBrokenFiles(t *testing.T) {
	brokenRules := filepath.Join(rulesTestdata, "broken", "unknown_category.yaml")
	brokenCases := filepath.Join(rulesTestdata, "broken", "cases", "unknown_key.yaml")
	for _, tt := range []struct {
		name   string
		rules  string
		cases  []string
		stderr []string // prefixes of the stderr lines
	}{
		{"broken rules", brokenRules, []string{rulesExampleCases},
			[]string{brokenRules + ":7: merchants.shoeshop.category: unknown category"}},
		{"broken cases", rulesExample, []string{rulesExampleCases, brokenCases},
			[]string{brokenCases + ":3: cases[digital shop auto-captures].expect: missing", brokenCases + ":7: cases[digital shop auto-captures].expected: unknown key"}},
		{"both broken", brokenRules, []string{brokenCases},
			[]string{brokenRules + ":7: ", brokenCases + ":3: ", brokenCases + ":7: "}},
		{"missing cases file", rulesExample, []string{"no-such-cases.yaml"},
			[]string{"open no-such-cases.yaml: no such file"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := rulesTest(&stdout, &stderr, tt.rules, tt.cases, rulesTestNow); code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if stdout.Len() != 0 {
				t.Errorf("cases ran despite a broken file:\n%s", stdout.String())
			}
			got := rulesLines(stderr.String())
			if len(got) != len(tt.stderr) {
				t.Fatalf("stderr:\n%s\nwant %d lines", stderr.String(), len(tt.stderr))
			}
			for i, want := range tt.stderr {
				if !strings.HasPrefix(got[i], want) {
					t.Errorf("line %d = %q, want prefix %q", i, got[i], want)
				}
			}
		})
	}
}

// The command is registered with Caddy's CLI and its subcommands, argument
// checks and exit status work through cobra: 0 for a pass, 1 for a finding
// (a problem in the rules, a failed case, a decision that would change), 2
// for an error, a usage error included, so that a script does not take a
// mistyped command for a finding or a pass.
func TestRulesCommandCobra(t *testing.T) {
	failing := rulesWriteFile(t, "failing.yaml", "cases:\n  - name: shoes\n    merchant: shoeshop\n    order: {auto_capture: true}\n    expect: allow\n")
	for _, tt := range []struct {
		name   string
		args   []string
		status int
		stdout string // substring
		stderr string // substring
	}{
		{"validate", []string{"rules", "validate", rulesExample}, 0, ": ok (version 1, 5 merchants, digest ", ""},
		{"validate broken", []string{"rules", "validate", filepath.Join(rulesTestdata, "broken", "wrong_type.yaml")}, 1, "", ":5: merchants.digitalshop.category: "},
		{"validate without file", []string{"rules", "validate"}, 2, "", "Error: accepts 1 arg(s), received 0\n"},
		{"validate two files", []string{"rules", "validate", rulesExample, rulesExample}, 2, "", "accepts 1 arg(s), received 2"},
		{"validate unknown flag", []string{"rules", "validate", "--strict", rulesExample}, 2, "", "unknown flag: --strict"},
		{"test", []string{"rules", "test", rulesExample, rulesExampleCases}, 0, "18 passed, 0 failed", ""},
		{"test failing", []string{"rules", "test", rulesExample, failing}, 1, "0 passed, 1 failed", ""},
		{"test without cases", []string{"rules", "test", rulesExample}, 2, "", "requires at least 2 arg(s)"},
		{"unknown subcommand", []string{"rules", "vaildate", rulesExample}, 2, "", `unknown subcommand "vaildate": use validate, test or impact (did you mean validate?)`},
		{"impact", []string{"rules", "impact", rulesExample, rulesExampleDecisions}, 0, "0 of 8 auto-capture decisions would change", ""},
		{"impact changes", []string{"rules", "impact", rulesExampleDraft, rulesExampleDecisions}, 1, "3 of 8 auto-capture decisions would change", ""},
		{"impact error", []string{"rules", "impact", rulesExampleDraft, filepath.Join(t.TempDir(), "missing.log")}, 2, "", "no such file"},
		{"impact without log", []string{"rules", "impact", rulesExampleDraft}, 2, "", "requires at least 2 arg(s)"},
		{"impact other site", []string{"rules", "impact", "--site", "na", rulesExampleDraft, rulesExampleDecisions}, 2, "",
			`no decision line of site "na" in ` + rulesExampleDecisions + " (no decision line names a site): nothing was replayed"},
		{"impact two sites", []string{"rules", "impact", "--site", "eu", "--site", "na", rulesExampleDraft, rulesExampleDecisions}, 2, "", "--site is given once"},
		{"impact empty site", []string{"rules", "impact", "--site=", rulesExampleDraft, rulesExampleDecisions}, 2, "", "--site needs a site name"},
		{"impact site without name", []string{"rules", "impact", rulesExampleDraft, rulesExampleDecisions, "--site"}, 2, "", "flag needs an argument: --site"},
		{"help", []string{"rules"}, 0, "validate <file>", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, status := runRulesCommand(t, tt.args...)
			if status != tt.status {
				t.Errorf("exit status %d, want %d", status, tt.status)
			}
			if !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stdout:\n%s\nstderr:\n%s\nwant stdout containing %q, stderr containing %q", stdout, stderr, tt.stdout, tt.stderr)
			}
			if strings.Contains(stderr, "exiting with status") || strings.Count(stderr, "Error:") > 1 {
				t.Errorf("the error is printed twice: %s", stderr)
			}
		})
	}
}

// exitStatus is the status Caddy's main exits with for what a command
// returned: the status an exit error carries, else 1 for any error.
func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	var n int
	if _, scanErr := fmt.Sscanf(err.Error(), "exiting with status %d", &n); scanErr == nil {
		return n
	}
	return 1
}

// validate warns about approvals that have expired or expire within 30
// days, on their line, and still exits 0.
func TestRulesCommandValidateWarnsAboutApprovals(t *testing.T) {
	rulesFile := rulesWriteFile(t, "rules.yaml", `version: 1
merchants:
  approvedshop:
    category: physical_goods
    auto_capture_approval:
      reference: KL-2026-118
      expires: 2027-06-30
  oldshop:
    category: physical_goods
    auto_capture_approval:
      reference: KL-2025-007
      expires: 2025-12-31
`)
	expired := "warning: " + rulesFile + ":12: merchants.oldshop.auto_capture_approval.expires: approval KL-2025-007 expired on 2025-12-31: oldshop's auto-capture orders are refused"
	for _, c := range []struct {
		now  time.Time
		want []string
	}{
		{time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), []string{expired}},
		{time.Date(2027, 5, 31, 0, 0, 0, 0, time.UTC), []string{expired}}, // 31 days left
		{time.Date(2027, 6, 10, 9, 0, 0, 0, time.UTC), []string{
			"warning: " + rulesFile + ":7: merchants.approvedshop.auto_capture_approval.expires: approval KL-2026-118 expires after 2027-06-30, in 21 days: renew it with Klarna or plan for approvedshop's auto-capture orders to be refused",
			expired}},
		{time.Date(2027, 6, 30, 23, 59, 0, 0, time.UTC), []string{
			"warning: " + rulesFile + ":7: merchants.approvedshop.auto_capture_approval.expires: approval KL-2026-118 expires after 2027-06-30, in 1 day: renew it with Klarna or plan for approvedshop's auto-capture orders to be refused",
			expired}},
		{time.Date(2027, 7, 1, 0, 0, 0, 0, time.UTC), []string{
			"warning: " + rulesFile + ":7: merchants.approvedshop.auto_capture_approval.expires: approval KL-2026-118 expired on 2027-06-30: approvedshop's auto-capture orders are refused",
			expired}},
	} {
		var stdout, stderr bytes.Buffer
		if code := rulesValidate(&stdout, &stderr, rulesFile, c.now); code != 0 {
			t.Errorf("%s: exit %d, want 0", c.now, code)
		}
		if !strings.HasSuffix(stdout.String(), ": ok (version 1, 2 merchants, digest "+rulesDigest(t, rulesFile)+")\n") {
			t.Errorf("%s: stdout %q", c.now, stdout.String())
		}
		if got := rulesLines(stderr.String()); strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("%s: stderr\n%s\nwant\n%s", c.now, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
		}
	}
}

func rulesDigest(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:12]
}

// The README's rules commands run as written from the repository root,
// and each prints the first line the README shows under it.
func TestRulesCommandReadmeExamples(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir("..")
	lines := strings.Split(string(readme), "\n")
	ran := 0
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "bin/pspguard rules ") || i+1 == len(lines) {
			continue
		}
		want, ok := strings.CutPrefix(strings.TrimSpace(lines[i+1]), "# ")
		if !ok {
			t.Errorf("README.md:%d: %s: no output shown under it", i+1, l)
			continue
		}
		ran++
		stdout, stderr, status := runRulesCommand(t, strings.Fields(l)[1:]...)
		if first, _, _ := strings.Cut(stdout, "\n"); status == 2 || first != want {
			t.Errorf("README.md:%d: %s: exit %d, first line %q, want %q\nstderr:\n%s", i+1, l, status, first, want, stderr)
		}
	}
	if ran < 3 {
		t.Errorf("ran %d commands of the README, want validate, test and impact", ran)
	}
}

// runRulesCommand runs the registered rules command as Caddy's CLI does,
// and returns what it printed and the status the process would exit with.
func runRulesCommand(t *testing.T, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	registered, ok := caddycmd.Commands()["rules"]
	if !ok || registered.CobraFunc == nil {
		t.Fatal("rules command not registered")
	}
	root := &cobra.Command{Use: "pspguard", SilenceUsage: true}
	cmd := &cobra.Command{Use: registered.Name + " " + registered.Usage, Short: registered.Short, Long: registered.Long}
	registered.CobraFunc(cmd)
	root.AddCommand(cmd)
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.Execute()
	if strings.Contains(errOut.String(), errRulesFailed.Error()) {
		t.Errorf("cobra printed the exit marker: %s", errOut.String())
	}
	return out.String(), errOut.String(), exitStatus(err)
}
