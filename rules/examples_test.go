package rules

import (
	"path/filepath"
	"testing"
	"time"
)

var testdata = filepath.Join("..", "testdata", "rules")

// The shipped example rules pass the shipped cases, which cover every
// reason.
func TestExampleCases(t *testing.T) {
	r, err := Load(filepath.Join(testdata, "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := LoadCases(filepath.Join(testdata, "example_cases.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Cases without a date run as of today; pin today before the
	// example approval expires so the test does not change with time.
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	covered := make(map[Reason]bool)
	for _, c := range cs {
		res := r.Run(c, now)
		if !res.Passed {
			t.Errorf("%s (line %d)", res, c.Line)
		}
		covered[c.Reason] = true
	}
	for _, reason := range Reasons {
		if !covered[reason] {
			t.Errorf("no example case for reason %s", reason)
		}
	}
}

func TestExampleRules(t *testing.T) {
	r, err := Load(filepath.Join(testdata, "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		merchant, category string
	}{
		{"digitalshop", DigitalProducts},
		{"voucherstore", Vouchers},
		{"shoeshop", PhysicalGoods},
		{"approvedshop", PhysicalGoods},
		{"eventhall", ServicesEvents},
		{"anyone else", Unknown},
	} {
		if d := r.Decide(Order{Merchant: tt.merchant}, day); d.Category != tt.category {
			t.Errorf("%s: category %q, want %q", tt.merchant, d.Category, tt.category)
		}
	}
}

// The broken examples fail for the reason their comment gives, on the
// line it is on.
func TestBrokenExamples(t *testing.T) {
	for _, tt := range []struct {
		file  string
		load  func(string) error
		want  []wantProblem
		count int
	}{
		{"unknown_key.yaml", loadRules, []wantProblem{{4, "auto_capture.allowed_category", "unknown key"}}, 1},
		{"unknown_category.yaml", loadRules, []wantProblem{{7, "merchants.shoeshop.category", `unknown category "phyiscal_goods"`}}, 1},
		{"bad_date.yaml", loadRules, []wantProblem{{8, "merchants.approvedshop.auto_capture_approval.expires", `"2027-02-30" is not a calendar date`}}, 1},
		{"wrong_type.yaml", loadRules, []wantProblem{{5, "merchants.digitalshop.category", "must be a category name, not a list"}}, 1},
		{"many_problems.yaml", loadRules, []wantProblem{
			{4, "auto_capture.allowed_categories", `category "unknown" never auto-captures`},
			{6, "auto_capture.require_emd.vouchers", "not empty"},
			{9, "merchants.shoeshop.category", `unknown category "shoes"`},
			{12, "merchants.approvedshop.auto_capture_approval.reference", "missing"},
			{13, "merchants.approvedshop.auto_capture_approval.expires", `"30/06/2027" is not a date written YYYY-MM-DD`},
			{14, "merchants.shoeshop", "duplicate key (first on line 8)"},
			{16, "default_category", `unknown category "nowhere"`},
		}, 7},
		{"cases/unknown_key.yaml", loadCases, []wantProblem{
			{3, "cases[digital shop auto-captures].expect", "missing"},
			{7, "cases[digital shop auto-captures].expected", "unknown key"},
		}, 2},
		{"cases/unknown_reason.yaml", loadCases, []wantProblem{
			{7, "cases[digital shop auto-captures].order.order_lines", `unknown order line type "phyiscal"`},
			{9, "cases[digital shop auto-captures].reason", `unknown reason "allowed"`},
		}, 2},
	} {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join(testdata, "broken", tt.file)
			ps := problemsOf(t, tt.load(path))
			for i := range ps {
				if ps[i].File != path {
					t.Errorf("problem names file %q, want %q", ps[i].File, path)
				}
				ps[i].File = "rules.yaml"
			}
			checkProblems(t, ps, tt.want)
		})
	}
}

func loadRules(path string) error {
	_, err := Load(path)
	return err
}

func loadCases(path string) error {
	_, err := LoadCases(path)
	return err
}
