package rules

import (
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustParseCases(t *testing.T, src string) []Case {
	t.Helper()
	cs, err := ParseCases("cases.yaml", []byte(src))
	if err != nil {
		t.Fatalf("ParseCases: %v", err)
	}
	return cs
}

func TestParseCases(t *testing.T) {
	cs := mustParseCases(t, `cases:
  - name: digital shop auto-captures
    merchant: digitalshop
    date: 2026-11-23
    order:
      auto_capture: true
      order_lines: [digital, physical]
      emd: {voucher: [{voucher_name: "x"}], event: [], other: null}
    expect: allow
    reason: category_allowed
  - name: shoe shop
    merchant: 12345
    date: 2027-06-30T23:59:59+02:00
    expect: refuse
`)
	want := []Case{
		{
			Name: "digital shop auto-captures", File: "cases.yaml", Line: 2,
			Order: Order{Merchant: "digitalshop", AutoCapture: AutoCaptureTrue, PhysicalLines: true, EMDKeys: []string{"voucher"}},
			Date:  time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), Expect: true, Reason: ReasonCategoryAllowed,
		},
		{
			Name: "shoe shop", File: "cases.yaml", Line: 11,
			Order: Order{Merchant: "12345"},
			Date:  time.Date(2027, 6, 30, 21, 59, 59, 0, time.UTC),
		},
	}
	if len(cs) != len(want) {
		t.Fatalf("%d cases, want %d", len(cs), len(want))
	}
	for i := range want {
		if !cs[i].Date.Equal(want[i].Date) {
			t.Errorf("case %d: Date = %v, want %v", i, cs[i].Date, want[i].Date)
		}
		cs[i].Date, want[i].Date = time.Time{}, time.Time{}
		if !reflect.DeepEqual(cs[i], want[i]) {
			t.Errorf("case %d =\n%+v\nwant\n%+v", i, cs[i], want[i])
		}
	}
}

func TestParseCasesAutoCapture(t *testing.T) {
	for _, tt := range []struct {
		yaml string // the auto_capture line, "" for none
		want AutoCapture
	}{
		{"", AutoCaptureAbsent},
		{"auto_capture: true", AutoCaptureTrue},
		{"auto_capture: True", AutoCaptureTrue},
		{"auto_capture: false", AutoCaptureFalse},
		{`auto_capture: "true"`, AutoCaptureInvalid},
		{"auto_capture: 1", AutoCaptureInvalid},
		{"auto_capture: yes", AutoCaptureInvalid}, // a string in YAML 1.2, as in JSON
		{"auto_capture: null", AutoCaptureInvalid},
		{"auto_capture: [true]", AutoCaptureInvalid},
		{"auto_capture: {}", AutoCaptureInvalid},
	} {
		cs := mustParseCases(t, "cases:\n  - name: n\n    merchant: m\n    order:\n      "+tt.yaml+"\n      order_lines: []\n    expect: allow\n")
		if got := cs[0].Order.AutoCapture; got != tt.want {
			t.Errorf("%q: AutoCapture = %d, want %d", tt.yaml, got, tt.want)
		}
	}
}

// The flags of the routes without order lines: a Hosted Payment Page
// session's place_order_mode, a network authorization's capture and
// Stripe's capture_method.
func TestParseCasesFlagSpellings(t *testing.T) {
	for _, tt := range []struct {
		yaml string
		want AutoCapture
	}{
		{"place_order_mode: CAPTURE_ORDER", AutoCaptureTrue},
		{"place_order_mode: PLACE_ORDER", AutoCaptureFalse},
		{"place_order_mode: NONE", AutoCaptureFalse},
		{"place_order_mode: capture_order", AutoCaptureInvalid},
		{"place_order_mode: true", AutoCaptureInvalid},
		{"place_order_mode: null", AutoCaptureInvalid},
		{"capture: NOW", AutoCaptureTrue},
		{"capture: LATER", AutoCaptureFalse},
		{"capture: now", AutoCaptureInvalid},
		{"capture: [NOW]", AutoCaptureInvalid},
		{"capture_method: automatic", AutoCaptureTrue},
		{"capture_method: automatic_async", AutoCaptureTrue},
		{"capture_method: manual", AutoCaptureFalse},
		{"capture_method: Automatic", AutoCaptureInvalid},
		{"capture_method: true", AutoCaptureInvalid},
	} {
		cs := mustParseCases(t, "cases:\n  - name: n\n    merchant: m\n    order:\n      "+tt.yaml+"\n    expect: allow\n")
		if o := cs[0].Order; o.AutoCapture != tt.want || !o.LinesUnknown {
			t.Errorf("%q: AutoCapture = %d, LinesUnknown = %v; want %d, true", tt.yaml, o.AutoCapture, o.LinesUnknown, tt.want)
		}
	}
}

func TestParseCasesEMD(t *testing.T) {
	cs := mustParseCases(t, `cases:
  - name: n
    merchant: m
    order:
      emd:
        a: null
        b: ""
        c: []
        d: {}
        e: 0
        f: false
        g: " "
        h: [{}]
        i: {x: null}
    expect: allow
`)
	if got, want := cs[0].Order.EMDKeys, []string{"e", "f", "g", "h", "i"}; !reflect.DeepEqual(got, want) {
		t.Errorf("EMDKeys = %q, want %q (null, \"\", [] and {} are empty)", got, want)
	}
}

func TestParseCasesProblems(t *testing.T) {
	const head = "cases:\n  - name: n\n    merchant: m\n"
	for _, tt := range []struct {
		name string
		src  string
		want []wantProblem
	}{
		{"unknown case key", head + "    expect: allow\n    expected: allow\n",
			[]wantProblem{{5, "cases[n].expected", "unknown key (known here: name, merchant, date, order, expect, reason)"}}},
		{"unknown order key", head + "    order:\n      autocapture: true\n    expect: allow\n",
			[]wantProblem{{5, "cases[n].order.autocapture", "unknown key (known here: auto_capture, place_order_mode, capture, capture_method, order_lines, emd)"}}},
		{"unknown top-level key", "case:\n  - name: n\n",
			[]wantProblem{{1, "case", "unknown key (known here: cases)"}, {1, "cases", "missing"}}},
		{"missing fields", "cases:\n  - order: {auto_capture: true}\n",
			[]wantProblem{{2, "cases.name", "missing"}, {2, "cases.merchant", "missing"}, {2, "cases.expect", "missing"}}},
		{"empty name", "cases:\n  - name: \"\"\n    merchant: m\n    expect: allow\n",
			[]wantProblem{{2, "cases.name", "must be the case's name, not empty"}}},
		{"name on two lines", "cases:\n  - name: \"a\\nb\"\n    merchant: m\n    expect: allow\n",
			[]wantProblem{{2, "cases[a\nb].name", "must be one line of text"}}},
		{"merchant is a list", "cases:\n  - name: n\n    merchant: [m]\n    expect: allow\n",
			[]wantProblem{{3, "cases[n].merchant", "must be a merchant name, not a list"}}},
		{"expect misspelt", head + "    expect: allowed\n",
			[]wantProblem{{4, "cases[n].expect", "must be allow or refuse"}}},
		{"expect a boolean", head + "    expect: true\n",
			[]wantProblem{{4, "cases[n].expect", "must be allow or refuse"}}},
		{"unknown reason", head + "    expect: refuse\n    reason: refused\n",
			[]wantProblem{{5, "cases[n].reason", `unknown reason "refused" (known: no_auto_capture, category_allowed, approved, category_not_allowed, merchant_unknown, approval_expired, emd_missing, auto_capture_invalid, physical_lines)`}}},
		{"reason contradicts expect", head + "    expect: allow\n    reason: emd_missing\n",
			[]wantProblem{{5, "cases[n].reason", "emd_missing is a reason to refuse, but the case expects allow"}}},
		{"bad date", head + "    date: 2027-02-30\n    expect: allow\n",
			[]wantProblem{{4, "cases[n].date", `"2027-02-30" is not a calendar date`}}},
		{"bad time", head + "    date: 2027-06-30 23:59\n    expect: allow\n",
			[]wantProblem{{4, "cases[n].date", `"2027-06-30 23:59" is not a date written YYYY-MM-DD or a time`}}},
		{"unknown line type", head + "    order:\n      order_lines: [digital, phyiscal]\n    expect: allow\n",
			[]wantProblem{{5, "cases[n].order.order_lines", `unknown order line type "phyiscal"`}}},
		{"order_lines not a list", head + "    order:\n      order_lines: physical\n    expect: allow\n",
			[]wantProblem{{5, "cases[n].order.order_lines", "must be a list of order line types"}}},
		{"two flags", head + "    order:\n      auto_capture: true\n      capture: NOW\n    expect: allow\n",
			[]wantProblem{{6, "cases[n].order.capture", "an order spells its flag once: auto_capture and capture"}}},
		{"order lines with place_order_mode", head + "    order:\n      place_order_mode: CAPTURE_ORDER\n      order_lines: [digital]\n    expect: allow\n",
			[]wantProblem{{5, "cases[n].order.order_lines", "a request with place_order_mode carries no order lines or EMD"}}},
		{"EMD with capture", head + "    order:\n      capture: NOW\n      emd: {voucher: [1]}\n    expect: allow\n",
			[]wantProblem{{5, "cases[n].order.emd", "a request with capture carries no order lines or EMD"}}},
		{"emd not a mapping", head + "    order:\n      emd: [voucher]\n    expect: allow\n",
			[]wantProblem{{5, "cases[n].order.emd", "must be a mapping"}}},
		{"duplicate case name", head + "    expect: allow\n  - name: n\n    merchant: m2\n    expect: refuse\n",
			[]wantProblem{{5, "cases", `case "n" appears twice (first on line 2)`}}},
		{"duplicate key in a case", head + "    expect: allow\n    expect: refuse\n",
			[]wantProblem{{5, "cases[n].expect", "duplicate key (first on line 4)"}}},
		{"no cases", "cases: []\n", []wantProblem{{1, "cases", "no cases"}}},
		{"cases not a list", "cases: {name: n}\n", []wantProblem{{1, "cases", "must be a list of cases"}}},
		{"no cases key", "{}\n", []wantProblem{{1, "cases", "missing"}}},
		{"empty file", "", []wantProblem{{0, "", "the file is empty"}}},
		{"two documents", "cases: []\n---\ncases: []\n", []wantProblem{{2, "", "a second YAML document"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := ParseCases("rules.yaml", []byte(tt.src))
			if cs != nil {
				t.Errorf("ParseCases returned cases along with problems")
			}
			checkProblems(t, problemsOf(t, err), tt.want)
		})
	}
}

func TestLoadCases(t *testing.T) {
	cs, err := LoadCases(filepath.Join("..", "testdata", "rules", "example_cases.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) == 0 || !strings.HasSuffix(cs[0].File, "example_cases.yaml") || cs[0].Line == 0 {
		t.Errorf("cases not located in their file: %+v", cs)
	}
	if _, err := LoadCases(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
}

func TestRun(t *testing.T) {
	r := mustParse(t, policy)
	now := expiry.Add(48 * time.Hour) // after the approval's last day
	for _, tt := range []struct {
		name string
		c    Case
		want string
	}{
		{"pass with reason", Case{Name: "digital", Order: Order{Merchant: "digital", AutoCapture: AutoCaptureTrue}, Expect: true, Reason: ReasonCategoryAllowed},
			"ok   digital"},
		{"pass without reason", Case{Name: "shoes", Order: Order{Merchant: "shoes", AutoCapture: AutoCaptureTrue}},
			"ok   shoes"},
		{"wrong outcome", Case{Name: "shoes allowed", Order: Order{Merchant: "shoes", AutoCapture: AutoCaptureTrue}, Expect: true},
			"FAIL shoes allowed: expected allow, got refuse (category_not_allowed)"},
		{"wrong outcome and reason", Case{Name: "digital refused", Order: Order{Merchant: "digital", AutoCapture: AutoCaptureTrue}, Reason: ReasonCategoryNotAllowed},
			"FAIL digital refused: expected refuse (category_not_allowed), got allow (category_allowed)"},
		{"right outcome, wrong reason", Case{Name: "voucher", Order: Order{Merchant: "voucher", AutoCapture: AutoCaptureTrue, PhysicalLines: true}, Reason: ReasonPhysicalLines},
			"FAIL voucher: expected refuse (physical_lines), got refuse (emd_missing)"},
		{"no date: decided now", Case{Name: "approved", Order: Order{Merchant: "approved", AutoCapture: AutoCaptureTrue}, Reason: ReasonApprovalExpired},
			"ok   approved"},
		{"date: decided then", Case{Name: "approved then", Order: Order{Merchant: "approved", AutoCapture: AutoCaptureTrue}, Date: expiry, Expect: true, Reason: ReasonApproved},
			"ok   approved then"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := r.Run(tt.c, now)
			if got := res.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if res.Passed != strings.HasPrefix(tt.want, "ok") {
				t.Errorf("Passed = %v", res.Passed)
			}
		})
	}
}
