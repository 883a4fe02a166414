package rules

import (
	"strings"
	"testing"
	"time"
)

// policy has a merchant of every category, approvals valid, expired and
// misplaced, and EMD requirements on allowed and approval-only categories.
const policy = `version: 1
auto_capture:
  require_emd:
    vouchers: voucher
    services_events: event
    in_store: in_store_payment
    travel: air_reservation_details
categories: [travel]
merchants:
  store:        {category: in_store}
  digital:      {category: digital_products}
  voucher:      {category: vouchers}
  events:       {category: services_events}
  fast:         {category: fulfilment_24h}
  shoes:        {category: physical_goods}
  airline:      {category: travel}
  unclassified: {category: unknown}
  approved:
    category: physical_goods
    auto_capture_approval: {reference: KL-2026-118, expires: 2027-06-30}
  expired:
    category: physical_goods
    auto_capture_approval: {reference: KL-2020-001, expires: 2020-01-31}
  approvedair:
    category: travel
    auto_capture_approval: {reference: KL-2026-200, expires: 2027-06-30}
  approveddigital:
    category: digital_products
    auto_capture_approval: {reference: KL-2026-300, expires: 2027-06-30}
  expireddigital:
    category: digital_products
    auto_capture_approval: {reference: KL-2020-002, expires: 2020-01-31}
`

var (
	day    = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	expiry = time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC) // expires: 2027-06-30
)

func TestDecide(t *testing.T) {
	r := mustParse(t, policy)
	yes := AutoCaptureTrue
	for _, tt := range []struct {
		name     string
		order    Order
		now      time.Time
		allowed  bool
		reason   Reason
		category string
		approval string
	}{
		// auto_capture_invalid comes first, whoever the merchant.
		{"invalid flag, allowed category", Order{Merchant: "digital", AutoCapture: AutoCaptureInvalid}, day, false, ReasonAutoCaptureInvalid, DigitalProducts, ""},
		{"invalid flag, approved merchant", Order{Merchant: "approved", AutoCapture: AutoCaptureInvalid}, day, false, ReasonAutoCaptureInvalid, PhysicalGoods, ""},
		{"invalid flag, unlisted merchant", Order{Merchant: "stranger", AutoCapture: AutoCaptureInvalid}, day, false, ReasonAutoCaptureInvalid, Unknown, ""},

		// no_auto_capture: anyone may create ordinary orders.
		{"false, physical goods", Order{Merchant: "shoes", AutoCapture: AutoCaptureFalse, PhysicalLines: true}, day, true, ReasonNoAutoCapture, PhysicalGoods, ""},
		{"absent, unlisted merchant", Order{Merchant: "stranger", PhysicalLines: true}, day, true, ReasonNoAutoCapture, Unknown, ""},
		{"false, EMD missing", Order{Merchant: "voucher", AutoCapture: AutoCaptureFalse}, day, true, ReasonNoAutoCapture, Vouchers, ""},
		{"false, expired approval", Order{Merchant: "expired", AutoCapture: AutoCaptureFalse}, day, true, ReasonNoAutoCapture, PhysicalGoods, ""},

		// Every category.
		{"in_store with EMD and physical lines", Order{Merchant: "store", AutoCapture: yes, PhysicalLines: true, EMDKeys: []string{"in_store_payment"}}, day, true, ReasonCategoryAllowed, InStore, ""},
		{"in_store without EMD", Order{Merchant: "store", AutoCapture: yes}, day, false, ReasonEMDMissing, InStore, ""},
		{"digital_products", Order{Merchant: "digital", AutoCapture: yes}, day, true, ReasonCategoryAllowed, DigitalProducts, ""},
		{"digital_products with physical lines", Order{Merchant: "digital", AutoCapture: yes, PhysicalLines: true}, day, false, ReasonPhysicalLines, DigitalProducts, ""},
		{"vouchers with EMD", Order{Merchant: "voucher", AutoCapture: yes, EMDKeys: []string{"customer_account_info", "voucher"}}, day, true, ReasonCategoryAllowed, Vouchers, ""},
		{"vouchers with other EMD only", Order{Merchant: "voucher", AutoCapture: yes, EMDKeys: []string{"event"}}, day, false, ReasonEMDMissing, Vouchers, ""},
		{"vouchers with EMD and physical lines", Order{Merchant: "voucher", AutoCapture: yes, PhysicalLines: true, EMDKeys: []string{"voucher"}}, day, false, ReasonPhysicalLines, Vouchers, ""},
		{"vouchers: EMD checked before physical lines", Order{Merchant: "voucher", AutoCapture: yes, PhysicalLines: true}, day, false, ReasonEMDMissing, Vouchers, ""},
		{"services_events with EMD", Order{Merchant: "events", AutoCapture: yes, EMDKeys: []string{"event"}}, day, true, ReasonCategoryAllowed, ServicesEvents, ""},
		{"services_events without EMD", Order{Merchant: "events", AutoCapture: yes}, day, false, ReasonEMDMissing, ServicesEvents, ""},
		{"fulfilment_24h with physical lines", Order{Merchant: "fast", AutoCapture: yes, PhysicalLines: true}, day, true, ReasonCategoryAllowed, Fulfilment24h, ""},
		{"physical_goods", Order{Merchant: "shoes", AutoCapture: yes}, day, false, ReasonCategoryNotAllowed, PhysicalGoods, ""},
		{"file's own category", Order{Merchant: "airline", AutoCapture: yes, EMDKeys: []string{"air_reservation_details"}}, day, false, ReasonCategoryNotAllowed, "travel", ""},
		{"listed as unknown", Order{Merchant: "unclassified", AutoCapture: yes}, day, false, ReasonCategoryNotAllowed, Unknown, ""},
		{"not listed", Order{Merchant: "stranger", AutoCapture: yes}, day, false, ReasonMerchantUnknown, Unknown, ""},
		{"empty merchant", Order{AutoCapture: yes}, day, false, ReasonMerchantUnknown, Unknown, ""},
		{"merchant names are exact", Order{Merchant: "Digital", AutoCapture: yes}, day, false, ReasonMerchantUnknown, Unknown, ""},

		// Requests without order lines (HPP sessions, network authorizations):
		// their lines may be physical.
		{"lines unknown, digital_products", Order{Merchant: "digital", AutoCapture: yes, LinesUnknown: true}, day, false, ReasonPhysicalLines, DigitalProducts, ""},
		{"lines unknown, in_store", Order{Merchant: "store", AutoCapture: yes, LinesUnknown: true, EMDKeys: []string{"in_store_payment"}}, day, true, ReasonCategoryAllowed, InStore, ""},
		{"lines unknown, fulfilment_24h", Order{Merchant: "fast", AutoCapture: yes, LinesUnknown: true}, day, true, ReasonCategoryAllowed, Fulfilment24h, ""},
		{"lines unknown, approved", Order{Merchant: "approved", AutoCapture: yes, LinesUnknown: true}, day, true, ReasonApproved, PhysicalGoods, "KL-2026-118"},
		{"lines unknown, physical_goods", Order{Merchant: "shoes", AutoCapture: yes, LinesUnknown: true}, day, false, ReasonCategoryNotAllowed, PhysicalGoods, ""},
		{"lines unknown, no auto-capture", Order{Merchant: "shoes", AutoCapture: AutoCaptureFalse, LinesUnknown: true}, day, true, ReasonNoAutoCapture, PhysicalGoods, ""},

		// Entries are found by the user name first, then by the merchant id.
		{"merchant id of a user name", Order{User: "digital_web", Merchant: "digital", AutoCapture: yes}, day, true, ReasonCategoryAllowed, DigitalProducts, ""},
		{"user name listed", Order{User: "shoes", Merchant: "digital", AutoCapture: yes}, day, false, ReasonCategoryNotAllowed, PhysicalGoods, ""},
		{"user name listed before its merchant id", Order{User: "approved", Merchant: "shoes", AutoCapture: yes}, day, true, ReasonApproved, PhysicalGoods, "KL-2026-118"},
		{"neither listed", Order{User: "stranger_1", Merchant: "stranger", AutoCapture: yes}, day, false, ReasonMerchantUnknown, Unknown, ""},
		{"a user name is not a merchant id", Order{User: "digital", Merchant: "", AutoCapture: yes}, day, true, ReasonCategoryAllowed, DigitalProducts, ""},

		// Approvals.
		{"approved", Order{Merchant: "approved", AutoCapture: yes}, day, true, ReasonApproved, PhysicalGoods, "KL-2026-118"},
		{"approved is exempt from physical lines", Order{Merchant: "approved", AutoCapture: yes, PhysicalLines: true}, day, true, ReasonApproved, PhysicalGoods, "KL-2026-118"},
		{"expired", Order{Merchant: "expired", AutoCapture: yes}, day, false, ReasonApprovalExpired, PhysicalGoods, "KL-2020-001"},
		{"approved but not exempt from EMD", Order{Merchant: "approvedair", AutoCapture: yes}, day, false, ReasonEMDMissing, "travel", ""},
		{"approved with EMD", Order{Merchant: "approvedair", AutoCapture: yes, PhysicalLines: true, EMDKeys: []string{"air_reservation_details"}}, day, true, ReasonApproved, "travel", "KL-2026-200"},
		{"approval in an allowed category is not needed", Order{Merchant: "approveddigital", AutoCapture: yes}, day, true, ReasonCategoryAllowed, DigitalProducts, ""},
		{"approval in an allowed category lifts physical lines", Order{Merchant: "approveddigital", AutoCapture: yes, PhysicalLines: true}, day, true, ReasonApproved, DigitalProducts, "KL-2026-300"},
		{"expired approval in an allowed category", Order{Merchant: "expireddigital", AutoCapture: yes}, day, true, ReasonCategoryAllowed, DigitalProducts, ""},
		{"expired approval does not lift physical lines", Order{Merchant: "expireddigital", AutoCapture: yes, PhysicalLines: true}, day, false, ReasonPhysicalLines, DigitalProducts, ""},

		// The approval counts through its whole expiry day, in UTC.
		{"expiry day, first instant", Order{Merchant: "approved", AutoCapture: yes}, expiry, true, ReasonApproved, PhysicalGoods, "KL-2026-118"},
		{"expiry day, last second", Order{Merchant: "approved", AutoCapture: yes}, expiry.Add(24*time.Hour - time.Second), true, ReasonApproved, PhysicalGoods, "KL-2026-118"},
		{"expiry day, last nanosecond", Order{Merchant: "approved", AutoCapture: yes}, expiry.Add(24*time.Hour - 1), true, ReasonApproved, PhysicalGoods, "KL-2026-118"},
		{"the day after, first instant", Order{Merchant: "approved", AutoCapture: yes}, expiry.Add(24 * time.Hour), false, ReasonApprovalExpired, PhysicalGoods, "KL-2026-118"},
		{"expiry day in UTC, next day in Stockholm", Order{Merchant: "approved", AutoCapture: yes}, time.Date(2027, 7, 1, 1, 30, 0, 0, time.FixedZone("CEST", 2*3600)), true, ReasonApproved, PhysicalGoods, "KL-2026-118"},
		{"next day in UTC, expiry day in New York", Order{Merchant: "approved", AutoCapture: yes}, time.Date(2027, 6, 30, 20, 0, 0, 0, time.FixedZone("EDT", -4*3600)), false, ReasonApprovalExpired, PhysicalGoods, "KL-2026-118"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := r.Decide(tt.order, tt.now)
			if d.Allowed != tt.allowed || d.Reason != tt.reason || d.Category != tt.category || d.Approval != tt.approval {
				t.Errorf("Decide = {Allowed:%v Reason:%s Category:%s Approval:%s}, want {%v %s %s %s}",
					d.Allowed, d.Reason, d.Category, d.Approval, tt.allowed, tt.reason, tt.category, tt.approval)
			}
			if d.Allowed != d.Reason.Allows() {
				t.Errorf("Allowed = %v with reason %s", d.Allowed, d.Reason)
			}
		})
	}
}

func TestDecideDefaultCategory(t *testing.T) {
	for _, tt := range []struct {
		defaultCategory string
		physical        bool
		allowed         bool
		reason          Reason
	}{
		{DigitalProducts, false, true, ReasonCategoryAllowed},
		{DigitalProducts, true, false, ReasonPhysicalLines},
		{InStore, true, true, ReasonCategoryAllowed},
		{Vouchers, false, false, ReasonEMDMissing},
		{PhysicalGoods, false, false, ReasonMerchantUnknown},
		{Unknown, false, false, ReasonMerchantUnknown},
	} {
		r := mustParse(t, "version: 1\nauto_capture:\n  require_emd: {vouchers: voucher}\ndefault_category: "+tt.defaultCategory+"\n")
		d := r.Decide(Order{Merchant: "stranger", AutoCapture: AutoCaptureTrue, PhysicalLines: tt.physical}, day)
		if d.Allowed != tt.allowed || d.Reason != tt.reason || d.Category != tt.defaultCategory {
			t.Errorf("default %s, physical %v: %v %s %s; want %v %s %s", tt.defaultCategory, tt.physical,
				d.Allowed, d.Reason, d.Category, tt.allowed, tt.reason, tt.defaultCategory)
		}
	}
}

// A file may allow more or fewer categories than Klarna's default list.
func TestDecideAllowedCategories(t *testing.T) {
	r := mustParse(t, `version: 1
auto_capture:
  allowed_categories: [in_store, travel]
  physical_lines_allowed: []
categories: [travel]
merchants:
  digital: {category: digital_products}
  airline: {category: travel}
  store:   {category: in_store}
`)
	for _, tt := range []struct {
		merchant string
		physical bool
		reason   Reason
	}{
		{"digital", false, ReasonCategoryNotAllowed},
		{"airline", false, ReasonCategoryAllowed},
		{"store", false, ReasonCategoryAllowed},
		{"store", true, ReasonPhysicalLines},
	} {
		if d := r.Decide(Order{Merchant: tt.merchant, AutoCapture: AutoCaptureTrue, PhysicalLines: tt.physical}, day); d.Reason != tt.reason {
			t.Errorf("%s (physical %v): %s, want %s", tt.merchant, tt.physical, d.Reason, tt.reason)
		}
	}
}

func TestDecisionMessage(t *testing.T) {
	r := mustParse(t, policy)
	none := mustParse(t, "version: 1\nauto_capture:\n  allowed_categories: []\n  physical_lines_allowed: []\ndefault_category: physical_goods\nmerchants:\n  digital: {category: digital_products}\n")
	yes := AutoCaptureTrue
	for _, tt := range []struct {
		rules *Rules
		order Order
		now   time.Time
		want  string
	}{
		{r, Order{Merchant: "shoes"}, day,
			`the order does not auto-capture`},
		{r, Order{Merchant: "digital", AutoCapture: yes}, day,
			`merchant category "digital_products" may auto-capture`},
		{r, Order{Merchant: "approved", AutoCapture: yes}, day,
			`merchant category "physical_goods" may auto-capture under approval KL-2026-118, valid through 2027-06-30`},
		{r, Order{Merchant: "shoes", AutoCapture: yes}, day,
			`auto_capture is not allowed for merchant category "physical_goods": only in_store, digital_products, vouchers, services_events, fulfilment_24h may auto-capture without an approval`},
		{r, Order{Merchant: "stranger", AutoCapture: yes}, day,
			`auto_capture is not allowed for merchants not listed in the compliance rules (default category "unknown"): only in_store, digital_products, vouchers, services_events, fulfilment_24h may auto-capture without an approval`},
		{r, Order{Merchant: "approved", AutoCapture: yes}, expiry.AddDate(0, 0, 1),
			`auto_capture approval KL-2026-118 expired on 2027-06-30`},
		{r, Order{Merchant: "voucher", AutoCapture: yes}, day,
			`category "vouchers" requires extra merchant data "voucher" in attachment.body`},
		{r, Order{Merchant: "digital", AutoCapture: AutoCaptureInvalid}, day,
			`auto_capture must be true or false`},
		{r, Order{Merchant: "digital", AutoCapture: yes, PhysicalLines: true}, day,
			`auto_capture is not allowed for orders with physical order lines in merchant category "digital_products": only in_store, fulfilment_24h may auto-capture physical goods without an approval`},
		// A request without order lines (Stripe's, a Klarna HPP session's)
		// may auto-capture only in a category that may also with physical
		// goods: the others would be refused too.
		{r, Order{Merchant: "shoes", AutoCapture: yes, LinesUnknown: true}, day,
			`auto_capture is not allowed for merchant category "physical_goods": only in_store, fulfilment_24h may auto-capture without an approval when the request carries no order lines to check`},
		{r, Order{Merchant: "stranger", AutoCapture: yes, LinesUnknown: true}, day,
			`auto_capture is not allowed for merchants not listed in the compliance rules (default category "unknown"): only in_store, fulfilment_24h may auto-capture without an approval when the request carries no order lines to check`},
		{r, Order{Merchant: "digital", AutoCapture: yes, LinesUnknown: true}, day,
			`auto_capture is not allowed for merchant category "digital_products" when the request carries no order lines to check (they may be physical): only in_store, fulfilment_24h may auto-capture physical goods without an approval`},
		{none, Order{Merchant: "digital", AutoCapture: yes}, day,
			`auto_capture is not allowed for merchant category "digital_products": no category may auto-capture without an approval`},
		{none, Order{Merchant: "digital", AutoCapture: yes, LinesUnknown: true}, day,
			`auto_capture is not allowed for merchant category "digital_products": no category may auto-capture without an approval when the request carries no order lines to check`},
		{none, Order{Merchant: "stranger", AutoCapture: yes}, day,
			`auto_capture is not allowed for merchants not listed in the compliance rules (default category "physical_goods"): no category may auto-capture without an approval`},
	} {
		d := tt.rules.Decide(tt.order, tt.now)
		if got := d.Message(); got != tt.want {
			t.Errorf("%s: Message() =\n%s\nwant\n%s", d.Reason, got, tt.want)
		}
		// What is refused can be named in the PSP's own terms; the rest of
		// the message stays.
		want := strings.Replace(tt.want, "auto_capture is not allowed", "capture_method is not allowed", 1)
		if got := d.MessageFor("capture_method"); got != want {
			t.Errorf("%s: MessageFor(capture_method) =\n%s\nwant\n%s", d.Reason, got, want)
		}
	}
}

func TestReasons(t *testing.T) {
	seen := make(map[Reason]bool)
	allows := 0
	for _, r := range Reasons {
		if seen[r] {
			t.Errorf("%s listed twice", r)
		}
		seen[r] = true
		if r.Allows() {
			allows++
		}
	}
	if len(Reasons) != 9 || allows != 3 {
		t.Errorf("%d reasons, %d allowing; want 9, 3", len(Reasons), allows)
	}
}

func TestDecideDoesNotAllocate(t *testing.T) {
	r := mustParse(t, policy)
	orders := []Order{
		{Merchant: "digital", AutoCapture: AutoCaptureTrue},
		{Merchant: "voucher", AutoCapture: AutoCaptureTrue, EMDKeys: []string{"voucher"}},
		{Merchant: "approved", AutoCapture: AutoCaptureTrue, PhysicalLines: true},
		{Merchant: "stranger", AutoCapture: AutoCaptureTrue},
	}
	for _, o := range orders {
		if n := testing.AllocsPerRun(100, func() { _ = r.Decide(o, day) }); n != 0 {
			t.Errorf("Decide(%s) allocates %v times", o.Merchant, n)
		}
	}
}
