package rules

import (
	"fmt"
	"strings"
	"time"
)

// AutoCapture is the auto-capture flag of a create-order request.
type AutoCapture uint8

const (
	AutoCaptureAbsent  AutoCapture = iota // not sent: Klarna's default, false
	AutoCaptureFalse                      // false
	AutoCaptureTrue                       // true
	AutoCaptureInvalid                    // sent, but not a boolean
)

// Order is what a decision needs to know about a create-order request.
type Order struct {
	User          string // the credential's user name (Klarna: PK12345_1a2b3c4d); "" for none
	Merchant      string // the merchant it belongs to (Klarna: the merchant id, PK12345)
	AutoCapture   AutoCapture
	PhysicalLines bool     // at least one order line of type "physical"
	LinesUnknown  bool     // the request carries no order lines (HPP session, network authorize): they may be physical
	EMDKeys       []string // top-level keys present and non-empty in the extra merchant data (attachment.body)
}

// Reason says why a decision came out the way it did. Its values are
// stable: dashboards, alerts and decision logs key on them.
type Reason string

// Reasons for allowing.
const (
	ReasonNoAutoCapture   Reason = "no_auto_capture"  // the order does not ask to auto-capture
	ReasonCategoryAllowed Reason = "category_allowed" // the merchant's category may auto-capture
	ReasonApproved        Reason = "approved"         // an unexpired approval lets the merchant auto-capture
)

// Reasons for refusing.
const (
	ReasonCategoryNotAllowed Reason = "category_not_allowed" // a listed merchant's category may not auto-capture and there is no approval
	ReasonMerchantUnknown    Reason = "merchant_unknown"     // the merchant is not listed and the default category may not auto-capture
	ReasonApprovalExpired    Reason = "approval_expired"     // the merchant needs its approval, and its last day has passed
	ReasonEMDMissing         Reason = "emd_missing"          // the category requires an extra merchant data key the order lacks
	ReasonAutoCaptureInvalid Reason = "auto_capture_invalid" // auto_capture is not a boolean
	ReasonPhysicalLines      Reason = "physical_lines"       // physical order lines in an auto-captured order of a category not fulfilled at once
)

// Reasons lists every reason, allowing ones first.
var Reasons = []Reason{
	ReasonNoAutoCapture, ReasonCategoryAllowed, ReasonApproved,
	ReasonCategoryNotAllowed, ReasonMerchantUnknown, ReasonApprovalExpired,
	ReasonEMDMissing, ReasonAutoCaptureInvalid, ReasonPhysicalLines,
}

// Allows reports whether r is a reason for allowing.
func (r Reason) Allows() bool {
	switch r {
	case ReasonNoAutoCapture, ReasonCategoryAllowed, ReasonApproved:
		return true
	}
	return false
}

// Decision is the outcome of Decide.
type Decision struct {
	Allowed  bool
	Reason   Reason
	Category string // the merchant's category: its own, or the default one when not listed
	Approval string // the approval reference the decision rested on: the one that allowed it, or the one that expired

	rules        *Rules
	category     *category
	merchant     *merchant // nil when the merchant is not listed
	linesUnknown bool      // the request carried no order lines (a refusal's message names what may then auto-capture)
}

// merchant finds the merchant's entry: by the user name first, so that an
// entry written for one credential of a merchant keeps applying to it, and
// then by the merchant id, which covers all its credentials.
func (r *Rules) merchant(o *Order) *merchant {
	if o.User != "" {
		if m := r.merchants[o.User]; m != nil {
			return m
		}
	}
	return r.merchants[o.Merchant]
}

// Decide applies the rules to an order at the instant now. The checks run
// in this order: a malformed flag; no auto-capture (allowed); the
// merchant's category or approval; the category's extra merchant data;
// physical order lines. Decide does not allocate.
func (r *Rules) Decide(o Order, now time.Time) Decision {
	m := r.merchant(&o)
	ci := r.defaultCategory
	if m != nil {
		ci = m.category
	}
	c := &r.categories[ci]
	d := Decision{Category: c.name, rules: r, category: c, merchant: m}

	switch o.AutoCapture {
	case AutoCaptureTrue:
	case AutoCaptureAbsent, AutoCaptureFalse:
		d.Allowed, d.Reason = true, ReasonNoAutoCapture
		return d
	default:
		d.Reason = ReasonAutoCaptureInvalid
		return d
	}

	// The approval counts until the first instant after its expiry day.
	approved := m != nil && m.approval != "" && now.Before(m.until)
	switch {
	case c.allowed:
		d.Reason = ReasonCategoryAllowed
	case approved:
		d.Reason, d.Approval = ReasonApproved, m.approval
	case m != nil && m.approval != "":
		d.Reason, d.Approval = ReasonApprovalExpired, m.approval
		return d
	case m == nil:
		d.Reason, d.linesUnknown = ReasonMerchantUnknown, o.LinesUnknown
		return d
	default:
		d.Reason, d.linesUnknown = ReasonCategoryNotAllowed, o.LinesUnknown
		return d
	}

	// An approval lifts the category restriction, not the data Klarna
	// needs about the purchase.
	if c.emdKey != "" && !contains(o.EMDKeys, c.emdKey) {
		d.Reason, d.Approval = ReasonEMDMissing, ""
		return d
	}
	// Order lines the request does not carry may be physical: the rule
	// that needs them cannot be shown to hold.
	if (o.PhysicalLines || o.LinesUnknown) && !c.physicalOK {
		if !approved {
			d.Reason, d.Approval = ReasonPhysicalLines, ""
			d.linesUnknown = !o.PhysicalLines
			return d
		}
		d.Reason, d.Approval = ReasonApproved, m.approval
	}
	d.Allowed = true
	return d
}

// EMDKey is the extra merchant data key the merchant's category requires
// to auto-capture, "" for none.
func (d Decision) EMDKey() string { return d.category.emdKey }

// Message explains the decision in plain language, naming the merchant's
// category and the rule that applied. It is built on demand; deciding
// alone never formats text.
func (d Decision) Message() string { return d.MessageFor("auto_capture") }

// MessageFor is Message with what is refused named by subject, where
// Message says auto_capture: the gateway names the request field that
// asked to capture at purchase, in the PSP's own terms (Stripe's
// capture_method, a Klarna session's options.place_order_mode).
func (d Decision) MessageFor(subject string) string {
	switch d.Reason {
	case ReasonNoAutoCapture:
		return "the order does not auto-capture"
	case ReasonCategoryAllowed:
		return fmt.Sprintf("merchant category %q may auto-capture", d.Category)
	case ReasonApproved:
		return fmt.Sprintf("merchant category %q may auto-capture under approval %s, valid through %s",
			d.Category, d.Approval, d.merchant.expires)
	case ReasonCategoryNotAllowed:
		return fmt.Sprintf("%s is not allowed for merchant category %q: %s", subject, d.Category, d.allowedClause())
	case ReasonMerchantUnknown:
		return fmt.Sprintf("%s is not allowed for merchants not listed in the compliance rules (default category %q): %s",
			subject, d.Category, d.allowedClause())
	case ReasonApprovalExpired:
		return fmt.Sprintf("auto_capture approval %s expired on %s", d.Approval, d.merchant.expires)
	case ReasonEMDMissing:
		return fmt.Sprintf("category %q requires extra merchant data %q in attachment.body", d.Category, d.category.emdKey)
	case ReasonAutoCaptureInvalid:
		return "auto_capture must be true or false"
	case ReasonPhysicalLines:
		if d.linesUnknown {
			return fmt.Sprintf("%s is not allowed for merchant category %q when the request carries no order lines to check (they may be physical): %s",
				subject, d.Category, listClause(d.rules.physicalAllowed, "may auto-capture physical goods without an approval"))
		}
		return fmt.Sprintf("%s is not allowed for orders with physical order lines in merchant category %q: %s",
			subject, d.Category, listClause(d.rules.physicalAllowed, "may auto-capture physical goods without an approval"))
	}
	return string(d.Reason)
}

// allowedClause says which categories may auto-capture without an
// approval. Of a request that carries no order lines, only the categories that may
// also auto-capture physical goods may: naming the others would send a
// merchant to a category that is refused too.
func (d Decision) allowedClause() string {
	if !d.linesUnknown {
		return listClause(d.rules.allowed, "may auto-capture without an approval")
	}
	var names []string
	for _, c := range d.rules.allowed {
		if contains(d.rules.physicalAllowed, c) {
			names = append(names, c)
		}
	}
	return listClause(names, "may auto-capture without an approval when the request carries no order lines to check")
}

// listClause says which categories may do what.
func listClause(names []string, what string) string {
	if len(names) == 0 {
		return "no category " + what
	}
	return "only " + strings.Join(names, ", ") + " " + what
}
