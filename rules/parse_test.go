package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// problemsOf returns the problems err carries, failing the test when it
// carries none.
func problemsOf(t *testing.T, err error) Problems {
	t.Helper()
	var ps *Problems
	if !errors.As(err, &ps) {
		t.Fatalf("err = %v (%T), want *Problems", err, err)
	}
	return *ps
}

// mustParse parses a rules file that must be valid.
func mustParse(t testing.TB, src string) *Rules {
	t.Helper()
	r, err := Parse("rules.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return r
}

type wantProblem struct {
	line  int
	field string
	msg   string // substring of the message
}

func checkProblems(t *testing.T, got Problems, want []wantProblem) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(got), len(want), (&got).Error())
	}
	for i, w := range want {
		g := got[i]
		if g.File != "rules.yaml" || g.Line != w.line || g.Field != w.field || !strings.Contains(g.Message, w.msg) {
			t.Errorf("problem %d = %s\nwant rules.yaml:%d: %s: ...%s...", i, g, w.line, w.field, w.msg)
		}
	}
}

func TestParseProblems(t *testing.T) {
	for _, tt := range []struct {
		name string
		src  string
		want []wantProblem
	}{
		{"unknown top-level key", "version: 1\nmerchant:\n  a: {category: in_store}\n",
			[]wantProblem{{2, "merchant", "unknown key (known here: version, auto_capture, categories, merchants, default_category)"}}},
		{"unknown auto_capture key", "version: 1\nauto_capture:\n  allowed_category: [in_store]\n",
			[]wantProblem{{3, "auto_capture.allowed_category", "unknown key"}}},
		{"unknown merchant key", "version: 1\nmerchants:\n  a:\n    category: in_store\n    approval: KL-1\n",
			[]wantProblem{{5, "merchants.a.approval", "unknown key (known here: category, auto_capture_approval)"}}},
		{"unknown approval key", "version: 1\nmerchants:\n  a:\n    category: physical_goods\n    auto_capture_approval:\n      reference: KL-1\n      expires: 2027-06-30\n      granted: 2026-01-01\n",
			[]wantProblem{{8, "merchants.a.auto_capture_approval.granted", "unknown key"}}},

		{"category is a list", "version: 1\nmerchants:\n  a:\n    category: [in_store]\n",
			[]wantProblem{{4, "merchants.a.category", "must be a category name, not a list"}}},
		{"category is a number", "version: 1\nmerchants:\n  a:\n    category: 7\n",
			[]wantProblem{{4, "merchants.a.category", "must be a category name, not a number"}}},
		{"version is a string", "version: \"1\"\n",
			[]wantProblem{{1, "version", "must be the number 1, not a string"}}},
		{"version is a float", "version: 1.0\n",
			[]wantProblem{{1, "version", "must be the number 1, not a number"}}},
		{"allowed_categories not a list", "version: 1\nauto_capture:\n  allowed_categories: in_store\n",
			[]wantProblem{{3, "auto_capture.allowed_categories", "must be a list of categories"}}},
		{"allowed_categories empty value", "version: 1\nauto_capture:\n  allowed_categories:\n",
			[]wantProblem{{3, "auto_capture.allowed_categories", "not empty"}}},
		{"physical_lines_allowed not a list", "version: 1\nauto_capture:\n  physical_lines_allowed: {in_store: true}\n",
			[]wantProblem{{3, "auto_capture.physical_lines_allowed", "must be a list of categories"}}},
		{"require_emd is a list", "version: 1\nauto_capture:\n  require_emd: [voucher]\n",
			[]wantProblem{{3, "auto_capture.require_emd", "must be a mapping"}}},
		{"EMD key is a list", "version: 1\nauto_capture:\n  require_emd:\n    vouchers: [voucher]\n",
			[]wantProblem{{4, "auto_capture.require_emd.vouchers", "must be an extra merchant data key"}}},
		{"auto_capture is a boolean", "version: 1\nauto_capture: true\n",
			[]wantProblem{{2, "auto_capture", "must be a mapping (key: value lines), not true/false"}}},
		{"merchants is a list", "version: 1\nmerchants: [a, b]\n",
			[]wantProblem{{2, "merchants", "must be a mapping"}}},
		{"merchant is a string", "version: 1\nmerchants:\n  a: in_store\n",
			[]wantProblem{{3, "merchants.a", "must be a mapping"}}},
		{"categories is a string", "version: 1\ncategories: travel\n",
			[]wantProblem{{2, "categories", "must be a list of category names"}}},
		{"default_category is a list", "version: 1\ndefault_category: [unknown]\n",
			[]wantProblem{{2, "default_category", "must be a category name, not a list"}}},
		{"reference is a list", "version: 1\nmerchants:\n  a:\n    category: physical_goods\n    auto_capture_approval:\n      reference: [KL-1]\n      expires: 2027-06-30\n",
			[]wantProblem{{6, "merchants.a.auto_capture_approval.reference", "must be the approval's reference"}}},
		{"reference empty", "version: 1\nmerchants:\n  a:\n    category: physical_goods\n    auto_capture_approval:\n      reference: \"\"\n      expires: 2027-06-30\n",
			[]wantProblem{{6, "merchants.a.auto_capture_approval.reference", "not empty"}}},
		{"approval is a string", "version: 1\nmerchants:\n  a:\n    category: physical_goods\n    auto_capture_approval: KL-1\n",
			[]wantProblem{{5, "merchants.a.auto_capture_approval", "must be a mapping"}}},
		{"top level is a list", "- version: 1\n",
			[]wantProblem{{1, "", "must be a mapping"}}},

		{"unknown merchant category", "version: 1\nmerchants:\n  shoeshop:\n    category: phyiscal_goods\n",
			[]wantProblem{{4, "merchants.shoeshop.category", `unknown category "phyiscal_goods" (known: in_store, digital_products, vouchers, services_events, fulfilment_24h, physical_goods, unknown)`}}},
		{"unknown allowed category", "version: 1\nauto_capture:\n  allowed_categories: [in_store, instore]\n",
			[]wantProblem{{3, "auto_capture.allowed_categories", `unknown category "instore"`}}},
		{"unknown require_emd category", "version: 1\nauto_capture:\n  require_emd:\n    voucher: voucher\n",
			[]wantProblem{{4, "auto_capture.require_emd.voucher", `unknown category "voucher"`}}},
		{"unknown physical_lines_allowed category", "version: 1\nauto_capture:\n  physical_lines_allowed:\n    - in_store\n    - fulfillment_24h\n",
			[]wantProblem{{5, "auto_capture.physical_lines_allowed", `unknown category "fulfillment_24h"`}}},
		{"unknown default category", "version: 1\ndefault_category: nobody\n",
			[]wantProblem{{2, "default_category", `unknown category "nobody"`}}},
		{"file's own category in known list", "version: 1\ncategories: [travel]\ndefault_category: trips\n",
			[]wantProblem{{3, "default_category", "known: in_store, digital_products, vouchers, services_events, fulfilment_24h, physical_goods, unknown, travel)"}}},

		{"unknown in allowed_categories", "version: 1\nauto_capture:\n  allowed_categories: [in_store, unknown]\n",
			[]wantProblem{{3, "auto_capture.allowed_categories", `category "unknown" never auto-captures`}}},
		{"unknown in physical_lines_allowed", "version: 1\nauto_capture:\n  physical_lines_allowed: [unknown]\n",
			[]wantProblem{{3, "auto_capture.physical_lines_allowed", `category "unknown" never auto-captures`}}},
		{"unknown in require_emd", "version: 1\nauto_capture:\n  require_emd:\n    unknown: voucher\n",
			[]wantProblem{{4, "auto_capture.require_emd.unknown", `category "unknown" never auto-captures`}}},
		{"category listed twice", "version: 1\nauto_capture:\n  allowed_categories:\n    - in_store\n    - vouchers\n    - in_store\n",
			[]wantProblem{{6, "auto_capture.allowed_categories", `category "in_store" listed twice (first on line 4)`}}},
		{"unknown merchant with approval", "version: 1\nmerchants:\n  a:\n    category: unknown\n    auto_capture_approval:\n      reference: KL-1\n      expires: 2027-06-30\n",
			[]wantProblem{{5, "merchants.a.auto_capture_approval", `a merchant of category "unknown" cannot hold an approval`}}},

		{"extra category built in", "version: 1\ncategories: [travel, vouchers]\n",
			[]wantProblem{{2, "categories", `category "vouchers" is built in`}}},
		{"extra category twice", "version: 1\ncategories: [travel, travel]\n",
			[]wantProblem{{2, "categories", `category "travel" listed twice (first on line 2)`}}},
		{"extra category spelling", "version: 1\ncategories: [Travel, air-travel]\n",
			[]wantProblem{
				{2, "categories", `category "Travel" must be lower-case letters`},
				{2, "categories", `category "air-travel" must be lower-case letters`},
			}},

		{"version 2", "version: 2\nbogus: 1\nmerchants:\n  a: {category: shoes}\n",
			[]wantProblem{{1, "version", "unsupported version 2: this gateway reads version 1"}}},
		{"version missing", "merchants:\n  a:\n    category: in_store\n",
			[]wantProblem{{1, "version", "missing: a rules file starts with version: 1"}}},

		{"empty merchant name", "version: 1\nmerchants:\n  \"\":\n    category: in_store\n",
			[]wantProblem{{3, "merchants", "a merchant name must not be empty"}}},
		{"null merchant name", "version: 1\nmerchants:\n  ~:\n    category: in_store\n",
			[]wantProblem{{3, "merchants", "keys must be names, not empty"}}},
		{"merchant without entries", "version: 1\nmerchants:\n  a:\n",
			[]wantProblem{{3, "merchants.a", "needs a category"}}},
		{"merchant without category", "version: 1\nmerchants:\n  a:\n    auto_capture_approval:\n      reference: KL-1\n      expires: 2027-06-30\n",
			[]wantProblem{{3, "merchants.a.category", "missing: every merchant needs a category"}}},

		{"duplicate top-level key", "version: 1\nmerchants:\n  a: {category: in_store}\nversion: 1\n",
			[]wantProblem{{4, "version", "duplicate key (first on line 1)"}}},
		{"duplicate merchant", "version: 1\nmerchants:\n  a:\n    category: in_store\n  b:\n    category: vouchers\n  a:\n    category: physical_goods\n",
			[]wantProblem{{7, "merchants.a", "duplicate key (first on line 3)"}}},
		{"duplicate merchant key", "version: 1\nmerchants:\n  a:\n    category: in_store\n    category: vouchers\n",
			[]wantProblem{{5, "merchants.a.category", "duplicate key (first on line 4)"}}},

		{"date not on the calendar", approvalExpiring("2027-02-30"),
			[]wantProblem{{7, "merchants.a.auto_capture_approval.expires", `"2027-02-30" is not a calendar date`}}},
		{"date without leading zero", approvalExpiring("2027-6-30"),
			[]wantProblem{{7, "merchants.a.auto_capture_approval.expires", `"2027-6-30" is not a date written YYYY-MM-DD`}}},
		{"date day first", approvalExpiring("30/06/2027"),
			[]wantProblem{{7, "merchants.a.auto_capture_approval.expires", `"30/06/2027" is not a date written YYYY-MM-DD`}}},
		{"date with time", approvalExpiring("2027-06-30T00:00:00Z"),
			[]wantProblem{{7, "merchants.a.auto_capture_approval.expires", `is not a date written YYYY-MM-DD`}}},
		{"date as number", approvalExpiring("20270630"),
			[]wantProblem{{7, "merchants.a.auto_capture_approval.expires", "must be a date written YYYY-MM-DD, not a number"}}},
		{"approval without reference", "version: 1\nmerchants:\n  a:\n    category: physical_goods\n    auto_capture_approval:\n      expires: 2027-06-30\n",
			[]wantProblem{{5, "merchants.a.auto_capture_approval.reference", "missing"}}},
		{"approval without expiry", "version: 1\nmerchants:\n  a:\n    category: physical_goods\n    auto_capture_approval:\n      reference: KL-1\n",
			[]wantProblem{{5, "merchants.a.auto_capture_approval.expires", "missing"}}},
		{"empty approval", "version: 1\nmerchants:\n  a:\n    category: physical_goods\n    auto_capture_approval: {}\n",
			[]wantProblem{
				{5, "merchants.a.auto_capture_approval.reference", "missing"},
				{5, "merchants.a.auto_capture_approval.expires", "missing"},
			}},
		{"empty EMD key", "version: 1\nauto_capture:\n  require_emd:\n    vouchers: \"\"\n",
			[]wantProblem{{4, "auto_capture.require_emd.vouchers", "must be an extra merchant data key, e.g. voucher, not empty"}}},
		{"blank EMD key", "version: 1\nauto_capture:\n  require_emd:\n    vouchers: \"  \"\n",
			[]wantProblem{{4, "auto_capture.require_emd.vouchers", "not empty"}}},
		{"missing EMD key", "version: 1\nauto_capture:\n  require_emd:\n    vouchers:\n",
			[]wantProblem{{4, "auto_capture.require_emd.vouchers", "not empty"}}},

		{"two documents", "version: 1\n---\nversion: 1\n",
			[]wantProblem{{2, "", "a second YAML document"}}},
		{"empty file", "",
			[]wantProblem{{0, "", "the file is empty"}}},
		{"only comments", "# version: 1\n\n# nothing yet\n",
			[]wantProblem{{0, "", "the file is empty"}}},
		{"syntax error", "version: 1\nmerchants:\n  a:\n    category: in_store: x\n",
			[]wantProblem{{4, "", "invalid YAML: mapping values are not allowed in this context"}}},
		{"control character", "version: 1\n\x01\n",
			[]wantProblem{{0, "", "invalid YAML: control characters are not allowed"}}},
		{"tab indentation", "version: 1\nmerchants:\n\ta:\n",
			[]wantProblem{{3, "", "invalid YAML"}}},

		{"every problem, in line order", "version: 1\nauto_capture:\n  allowed_categories: [in_store, unknown]\n  require_emd:\n    vouchers: \"\"\nmerchants:\n  shoeshop:\n    category: shoes\n  approvedshop:\n    category: physical_goods\n    auto_capture_approval:\n      expires: 30/06/2027\ndefault_category: nowhere\nextra: 1\n",
			[]wantProblem{
				{3, "auto_capture.allowed_categories", "never auto-captures"},
				{5, "auto_capture.require_emd.vouchers", "not empty"},
				{8, "merchants.shoeshop.category", `unknown category "shoes"`},
				{11, "merchants.approvedshop.auto_capture_approval.reference", "missing"},
				{12, "merchants.approvedshop.auto_capture_approval.expires", "not a date written YYYY-MM-DD"},
				{13, "default_category", `unknown category "nowhere"`},
				{14, "extra", "unknown key"},
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Parse("rules.yaml", []byte(tt.src))
			if r != nil {
				t.Errorf("Parse returned rules along with problems")
			}
			checkProblems(t, problemsOf(t, err), tt.want)
		})
	}
}

func approvalExpiring(date string) string {
	return "version: 1\nmerchants:\n  a:\n    category: physical_goods\n    auto_capture_approval:\n      reference: KL-1\n      expires: " + date + "\n"
}

func TestParseValid(t *testing.T) {
	for _, tt := range []struct {
		name, src string
		merchants int
	}{
		{"minimal", "version: 1\n", 0},
		{"empty sections", "version: 1\nauto_capture:\nmerchants:\ncategories:\n", 0},
		{"empty lists and maps", "version: 1\nauto_capture:\n  allowed_categories: []\n  physical_lines_allowed: []\n  require_emd: {}\nmerchants: {}\ncategories: []\n", 0},
		{"quoted date and numeric reference", "version: 1\nmerchants:\n  a:\n    category: physical_goods\n    auto_capture_approval:\n      reference: 118\n      expires: \"2027-06-30\"\n", 1},
		{"numeric merchant name", "version: 1\nmerchants:\n  12345:\n    category: in_store\n", 1},
		{"merchant keyed by API key digest", "version: 1\nmerchants:\n  \"key:0123456789abcdef\":\n    category: in_store\n", 1},
		{"flow style", "{version: 1, merchants: {a: {category: in_store}, b: {category: vouchers}}}", 2},
		{"aliases", "version: 1\nmerchants:\n  a: &shop\n    category: in_store\n  b: *shop\n", 2},
		{"leap day", approvalExpiring("2028-02-29"), 1},
		{"document marker", "---\nversion: 1\n...\n", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := mustParse(t, tt.src)
			if r.Merchants() != tt.merchants || r.Version() != 1 {
				t.Errorf("Merchants() = %d, Version() = %d; want %d, 1", r.Merchants(), r.Version(), tt.merchants)
			}
		})
	}
}

func TestDigest(t *testing.T) {
	src := "version: 1\n"
	sum := sha256.Sum256([]byte(src))
	if got, want := mustParse(t, src).Digest(), hex.EncodeToString(sum[:]); got != want {
		t.Errorf("Digest() = %s, want %s", got, want)
	}
	if mustParse(t, src).Digest() == mustParse(t, src+"# changed\n").Digest() {
		t.Error("a changed file has the same digest")
	}
}

// Keys a file leaves out take the documented defaults.
func TestDefaults(t *testing.T) {
	r := mustParse(t, "version: 1\nmerchants:\n  store: {category: in_store}\n  digital: {category: digital_products}\n  voucher: {category: vouchers}\n  events: {category: services_events}\n  fast: {category: fulfilment_24h}\n  shoes: {category: physical_goods}\n")
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		merchant string
		physical bool
		want     Reason
	}{
		// allowed_categories: the five Klarna categories.
		{"store", false, ReasonCategoryAllowed},
		{"digital", false, ReasonCategoryAllowed},
		{"voucher", false, ReasonCategoryAllowed}, // require_emd: nothing required
		{"events", false, ReasonCategoryAllowed},
		{"fast", false, ReasonCategoryAllowed},
		{"shoes", false, ReasonCategoryNotAllowed},
		// default_category: unknown.
		{"stranger", false, ReasonMerchantUnknown},
		// physical_lines_allowed: in_store and fulfilment_24h.
		{"store", true, ReasonCategoryAllowed},
		{"fast", true, ReasonCategoryAllowed},
		{"digital", true, ReasonPhysicalLines},
		{"voucher", true, ReasonPhysicalLines},
		{"events", true, ReasonPhysicalLines},
	} {
		d := r.Decide(Order{Merchant: tt.merchant, AutoCapture: AutoCaptureTrue, PhysicalLines: tt.physical}, now)
		if d.Reason != tt.want {
			t.Errorf("%s (physical lines %v): %s, want %s", tt.merchant, tt.physical, d.Reason, tt.want)
		}
	}
	if d := r.Decide(Order{Merchant: "stranger", AutoCapture: AutoCaptureTrue}, now); d.Category != Unknown {
		t.Errorf("unlisted merchant's category = %q, want %q", d.Category, Unknown)
	}
}

func TestLoad(t *testing.T) {
	r, err := Load(filepath.Join("..", "testdata", "rules", "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Merchants() != 5 {
		t.Errorf("example.yaml: %d merchants, want 5", r.Merchants())
	}

	_, err = Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
}
