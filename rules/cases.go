package rules

import (
	"os"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// A cases file holds decision test cases a compliance team writes to pin
// down what its rules file must allow and refuse:
//
//	cases:
//	  - name: digital shop auto-captures
//	    merchant: digitalshop
//	    date: 2026-11-23          # optional: YYYY-MM-DD (00:00 UTC) or 2027-06-30T23:59:59Z; default now
//	    order:
//	      auto_capture: true      # true | false | omitted | anything else = not a boolean
//	      order_lines: [digital]  # order line types; "physical" matters
//	      emd: {voucher: [{voucher_name: "x"}]}   # EMD top-level keys; empty values do not count
//	    expect: allow             # allow | refuse
//	    reason: category_allowed  # optional: the reason code too
//
// Instead of auto_capture, an order may spell its flag as the routes
// without order lines in their body do: place_order_mode (a Hosted Payment
// Page session: CAPTURE_ORDER captures at purchase, PLACE_ORDER and NONE do
// not), capture (a network API authorization: NOW captures, LATER does
// not) or capture_method (Stripe: automatic and automatic_async capture at
// purchase, manual does not); any other value stands for one the gateway
// refuses. Such a request carries no order lines or EMD, so neither may be
// given with them, and its order lines count as possibly physical.
var (
	caseFileKeys = []string{"cases"}
	caseKeys     = []string{"name", "merchant", "date", "order", "expect", "reason"}
	orderKeys    = []string{"auto_capture", "place_order_mode", "capture", "capture_method", "order_lines", "emd"}
)

// flagSpellings are the values of the flags other than auto_capture: those
// that capture at purchase, and those that do not.
var flagSpellings = map[string]struct{ now, later []string }{
	"place_order_mode": {[]string{"CAPTURE_ORDER"}, []string{"PLACE_ORDER", "NONE"}},
	"capture":          {[]string{"NOW"}, []string{"LATER"}},
	"capture_method":   {[]string{"automatic", "automatic_async"}, []string{"manual"}},
}

// lineTypes are Klarna's order line types. Checking them catches a typo
// such as "phyiscal", which would otherwise quietly test a non-physical
// order.
var lineTypes = []string{"physical", "digital", "gift_card", "discount", "shipping_fee", "sales_tax", "store_credit", "surcharge", "return_fee"}

// Case is one decision test case.
type Case struct {
	Name   string
	File   string // where the case is written
	Line   int
	Order  Order
	Date   time.Time // the instant to decide at; zero means when the case runs
	Expect bool      // true: allow, false: refuse
	Reason Reason    // the expected reason; "" accepts any
}

// CaseResult is the outcome of running a Case.
type CaseResult struct {
	Case     Case
	Decision Decision
	Passed   bool
}

// LoadCases reads and parses a cases file. A file that cannot be read
// yields the read error; an invalid one a *Problems.
func LoadCases(path string) ([]Case, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseCases(path, data)
}

// ParseCases parses a cases file as strictly as Parse does a rules file;
// filename labels problems and cases.
func ParseCases(filename string, data []byte) ([]Case, error) {
	p := &parser{file: filename}
	root := p.document(data)
	if root == nil {
		return nil, p.err()
	}
	entries, ok := p.mapping(root, "", false, caseFileKeys...)
	if !ok {
		return nil, p.err()
	}
	if len(entries) == 0 {
		p.addAt(root, "cases", "missing: a cases file holds a list under cases:")
		return nil, p.err()
	}
	items, ok := p.list(entries[0].v, "cases", "cases")
	if !ok {
		return nil, p.err()
	}
	if len(items) == 0 {
		p.addAt(entries[0].v, "cases", "no cases")
	}
	cases := make([]Case, 0, len(items))
	names := make(map[string]int, len(items))
	for _, n := range items {
		c, ok := p.testCase(n)
		if !ok {
			continue
		}
		if line, dup := names[c.Name]; dup {
			p.addAt(n, "cases", "case %q appears twice (first on line %d)", c.Name, line)
			continue
		}
		names[c.Name] = c.Line
		cases = append(cases, c)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return cases, nil
}

func (p *parser) testCase(n *yaml.Node) (Case, bool) {
	c := Case{File: p.file, Line: n.Line}
	at := caseField(n)
	before := len(p.probs)
	entries, ok := p.mapping(n, at, false, caseKeys...)
	if !ok {
		return c, false
	}
	has := make(map[string]bool, len(entries))
	for _, e := range entries {
		has[e.key] = true
		if e.key != "name" {
			continue
		}
		if name, ok := p.str(e.v, e.field, "the case's name"); ok {
			if strings.ContainsFunc(name, unicode.IsControl) {
				p.addAt(e.v, e.field, "must be one line of text")
			}
			c.Name = name
		}
	}
	for _, key := range []string{"name", "merchant", "expect"} {
		if !has[key] {
			p.addAt(n, at+"."+key, "missing")
		}
	}
	var reason *entry
	for i, e := range entries {
		f := e.field
		switch e.key {
		case "merchant":
			c.Order.Merchant = p.merchantName(e.v, f)
		case "date":
			c.Date = p.instant(e.v, f)
		case "order":
			p.order(e.v, f, &c.Order)
		case "expect":
			switch v := e.v; {
			case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" && v.Value == "allow":
				c.Expect = true
			case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" && v.Value == "refuse":
			default:
				p.addAt(v, f, "must be allow or refuse")
			}
		case "reason":
			reason = &entries[i]
		}
	}
	if reason != nil {
		c.Reason = p.reason(reason.v, reason.field, c.Expect)
	}
	return c, len(p.probs) == before
}

// caseField names a case in field paths by its name, so that problems
// read cases[digital shop auto-captures].expect.
func caseField(n *yaml.Node) string {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
			if k.Value == "name" && v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" && v.Value != "" {
				return "cases[" + v.Value + "]"
			}
		}
	}
	return "cases"
}

// merchantName reads a merchant identity; numbers count as their text,
// as they do for the keys under merchants in a rules file.
func (p *parser) merchantName(n *yaml.Node, at string) string {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!str" && n.ShortTag() != "!!int") || strings.TrimSpace(n.Value) == "" {
		p.addAt(n, at, "must be a merchant name, not %s", describe(n))
		return ""
	}
	return n.Value
}

// instant reads a date (00:00 UTC that day) or an RFC 3339 time.
func (p *parser) instant(n *yaml.Node, at string) time.Time {
	if n.Kind == yaml.ScalarNode && len(n.Value) > len(time.DateOnly) &&
		(n.ShortTag() == "!!timestamp" || n.ShortTag() == "!!str") {
		t, err := time.Parse(time.RFC3339, n.Value)
		if err != nil {
			p.addAt(n, at, "%q is not a date written YYYY-MM-DD or a time written 2027-06-30T23:59:59Z", n.Value)
		}
		return t
	}
	d, _ := p.date(n, at)
	return d
}

// order reads the order of a case.
func (p *parser) order(n *yaml.Node, at string, o *Order) {
	entries, _ := p.mapping(n, at, true, orderKeys...)
	flag, lines := "", ""
	for _, e := range entries {
		f := at + "." + e.key
		switch e.key {
		case "auto_capture", "place_order_mode", "capture", "capture_method":
			if flag != "" {
				p.addAt(e.v, f, "an order spells its flag once: %s and %s", flag, e.key)
			}
			flag = e.key
		case "order_lines", "emd":
			lines = e.key
		}
		switch e.key {
		case "place_order_mode", "capture", "capture_method":
			// The request carries no order lines: they may be physical.
			o.LinesUnknown = true
			// Any other value stands for one the gateway refuses, as a
			// non-boolean auto_capture does.
			o.AutoCapture = AutoCaptureInvalid
			if values := flagSpellings[e.key]; e.v.Kind == yaml.ScalarNode && e.v.ShortTag() == "!!str" {
				switch {
				case contains(values.now, e.v.Value):
					o.AutoCapture = AutoCaptureTrue
				case contains(values.later, e.v.Value):
					o.AutoCapture = AutoCaptureFalse
				}
			}
		case "auto_capture":
			// Anything but a YAML boolean stands for a request whose
			// auto_capture has the wrong JSON type.
			o.AutoCapture = AutoCaptureInvalid
			if e.v.Kind == yaml.ScalarNode && e.v.ShortTag() == "!!bool" {
				o.AutoCapture = AutoCaptureFalse
				if strings.EqualFold(e.v.Value, "true") {
					o.AutoCapture = AutoCaptureTrue
				}
			}
		case "order_lines":
			if isNull(e.v) {
				continue
			}
			items, _ := p.list(e.v, f, "order line types")
			for _, it := range items {
				t, ok := p.str(it, f, "an order line type")
				switch {
				case !ok:
				case !contains(lineTypes, t):
					p.addAt(it, f, "unknown order line type %q (known: %s)", t, strings.Join(lineTypes, ", "))
				case t == "physical":
					o.PhysicalLines = true
				}
			}
		case "emd":
			fields, _ := p.mapping(e.v, f, true)
			for _, fe := range fields {
				if !emptyValue(fe.v) {
					o.EMDKeys = append(o.EMDKeys, fe.key)
				}
			}
		}
	}
	if o.LinesUnknown && lines != "" {
		p.addAt(n, at+"."+lines, "a request with %s carries no order lines or EMD", flag)
	}
}

// emptyValue mirrors what the gateway treats as an empty EMD value: null,
// "", [] or {}.
func emptyValue(n *yaml.Node) bool {
	switch n.Kind {
	case yaml.ScalarNode:
		return isNull(n) || (n.ShortTag() == "!!str" && n.Value == "")
	case yaml.SequenceNode, yaml.MappingNode:
		return len(n.Content) == 0
	}
	return false
}

// reason reads an expected reason and checks it agrees with expect.
func (p *parser) reason(n *yaml.Node, at string, allow bool) Reason {
	s, ok := p.str(n, at, "a reason code")
	if !ok {
		return ""
	}
	for _, r := range Reasons {
		if string(r) != s {
			continue
		}
		if r.Allows() != allow {
			p.addAt(n, at, "%s is a reason to %s, but the case expects %s", s, verdict(r.Allows()), verdict(allow))
		}
		return r
	}
	names := make([]string, len(Reasons))
	for i, r := range Reasons {
		names[i] = string(r)
	}
	p.addAt(n, at, "unknown reason %q (known: %s)", s, strings.Join(names, ", "))
	return ""
}

func verdict(allow bool) string {
	if allow {
		return "allow"
	}
	return "refuse"
}

// Run decides the case's order and compares the decision with what the
// case expects. A case without a date is decided at now.
func (r *Rules) Run(c Case, now time.Time) CaseResult {
	at := c.Date
	if at.IsZero() {
		at = now
	}
	d := r.Decide(c.Order, at)
	return CaseResult{
		Case:     c,
		Decision: d,
		Passed:   d.Allowed == c.Expect && (c.Reason == "" || d.Reason == c.Reason),
	}
}

// String is the result as a test runner line:
//
//	ok   digital shop auto-captures
//	FAIL shoe shop refused: expected refuse (category_not_allowed), got allow (category_allowed)
func (cr CaseResult) String() string {
	if cr.Passed {
		return "ok   " + cr.Case.Name
	}
	want := verdict(cr.Case.Expect)
	if cr.Case.Reason != "" {
		want += " (" + string(cr.Case.Reason) + ")"
	}
	return "FAIL " + cr.Case.Name + ": expected " + want + ", got " +
		verdict(cr.Decision.Allowed) + " (" + string(cr.Decision.Reason) + ")"
}
