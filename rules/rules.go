package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"time"
)

// Built-in merchant categories. The first five are the ones Klarna lets
// auto-capture without an approval.
const (
	InStore         = "in_store"
	DigitalProducts = "digital_products"
	Vouchers        = "vouchers"
	ServicesEvents  = "services_events"
	Fulfilment24h   = "fulfilment_24h"
	PhysicalGoods   = "physical_goods"
	Unknown         = "unknown"
)

// builtinCategories in the order messages list them.
var builtinCategories = []string{InStore, DigitalProducts, Vouchers, ServicesEvents, Fulfilment24h, PhysicalGoods, Unknown}

// Defaults for keys a rules file leaves out.
var (
	// defaultAllowed is Klarna's list of categories that may auto-capture
	// without an approval.
	defaultAllowed = []string{InStore, DigitalProducts, Vouchers, ServicesEvents, Fulfilment24h}
	// defaultPhysicalLinesAllowed are the categories whose auto-captured
	// orders may carry physical order lines: goods handed over in the
	// store or shipped within 24 hours.
	defaultPhysicalLinesAllowed = []string{InStore, Fulfilment24h}
)

// Rules is a loaded, valid rules file. It is immutable and safe for
// concurrent use; a reload builds a new one.
type Rules struct {
	version         int
	digest          string
	categories      []category // built-ins first, then the file's own
	merchants       map[string]*merchant
	defaultCategory int      // index into categories
	allowed         []string // auto_capture.allowed_categories, as written
	physicalAllowed []string // auto_capture.physical_lines_allowed, as written
	emdKeys         []string // the keys of require_emd, sorted and unique
}

// category is what the rules say about one merchant category.
type category struct {
	name       string
	allowed    bool   // may auto-capture without an approval
	emdKey     string // EMD key an auto-captured order must carry; "" for none
	physicalOK bool   // auto-captured orders may carry physical order lines
}

// merchant is one entry under merchants.
type merchant struct {
	category int
	approval string    // approval reference; "" for none
	expires  string    // the approval's last day, YYYY-MM-DD
	until    time.Time // the instant the approval stops counting: the day after expires, 00:00 UTC
	line     int       // the line of the approval's expiry date
}

// Load reads and parses the rules file at path. A file that cannot be
// read yields the read error; an invalid one a *Problems listing
// everything wrong with it.
func Load(path string) (*Rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Digest is the hex SHA-256 of the file's bytes: it tells which rules were
// in force for a decision.
func (r *Rules) Digest() string { return r.digest }

// Version is the schema version of the file (1).
func (r *Rules) Version() int { return r.version }

// Merchants is the number of merchants the file lists.
func (r *Rules) Merchants() int { return len(r.merchants) }

func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// RequiredEMDKeys lists the extra merchant data keys some category must
// carry to auto-capture (require_emd), sorted. The caller must not change
// the slice.
func (r *Rules) RequiredEMDKeys() []string { return r.emdKeys }

// Approval is an auto-capture approval a merchant holds.
type Approval struct {
	Merchant  string
	Reference string
	Expires   string    // the last day it counts, YYYY-MM-DD (UTC)
	Until     time.Time // the first instant it no longer counts
	Line      int       // the line of its expiry date in the file
}

// Approvals lists the approvals in the file, in line order.
func (r *Rules) Approvals() []Approval {
	var as []Approval
	for name, m := range r.merchants {
		if m.approval != "" {
			as = append(as, Approval{Merchant: name, Reference: m.approval, Expires: m.expires, Until: m.until, Line: m.line})
		}
	}
	slices.SortFunc(as, func(a, b Approval) int { return a.Line - b.Line })
	return as
}

// approvalWarningWindow is how long before its expiry an approval is
// warned about.
const approvalWarningWindow = 30 * 24 * time.Hour

// ApprovalWarnings lists, as problems located in the file, every approval
// that has expired at now or expires within 30 days of it. They are not
// errors: the rules stay valid, and an expired approval simply no longer
// counts.
func (r *Rules) ApprovalWarnings(file string, now time.Time) []Problem {
	var ps []Problem
	for _, a := range r.Approvals() {
		field := "merchants." + a.Merchant + ".auto_capture_approval.expires"
		switch left := a.Until.Sub(now); {
		case left <= 0:
			ps = append(ps, Problem{File: file, Line: a.Line, Field: field,
				Message: fmt.Sprintf("approval %s expired on %s: %s's auto-capture orders are refused", a.Reference, a.Expires, a.Merchant)})
		case left <= approvalWarningWindow:
			days := int((left + 24*time.Hour - 1) / (24 * time.Hour))
			unit := "days"
			if days == 1 {
				unit = "day"
			}
			ps = append(ps, Problem{File: file, Line: a.Line, Field: field,
				Message: fmt.Sprintf("approval %s expires after %s, in %d %s: renew it with Klarna or plan for %s's auto-capture orders to be refused", a.Reference, a.Expires, days, unit, a.Merchant)})
		}
	}
	return ps
}
