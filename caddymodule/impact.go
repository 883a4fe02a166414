package caddymodule

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pspguard/pspguard/internal/psp"
	"github.com/pspguard/pspguard/rules"
)

// impactLine is what `rules impact` reads from a decision line: the
// inputs the rules read when the gateway decided a create-order.
type impactLine struct {
	Logger       string          `json:"logger"`
	TS           json.RawMessage `json:"ts"`
	Site         string          `json:"site"`
	Operation    string          `json:"operation"`
	Merchant     string          `json:"merchant"`
	User         string          `json:"user"`
	Reason       string          `json:"reason"`
	RuleReason   string          `json:"rule_reason"`
	AutoCapture  string          `json:"auto_capture"`
	LineTypes    []string        `json:"line_types"`
	LinesUnknown bool            `json:"lines_unknown"`
	EMDKeys      []string        `json:"emd_keys"`
	EMDUnlisted  int             `json:"emd_unlisted_keys"`
	PurchaseRef  string          `json:"purchase_ref"`
}

// impactChange is one decision the draft rules would decide otherwise.
type impactChange struct {
	at                 time.Time
	line               impactLine
	before, after      rules.Reason
	message, emdCaveat string
}

// impactTally counts one merchant's replayed decisions.
type impactTally struct {
	replayed, toRefused, toAllowed int
}

// rulesImpact implements `rules impact [--site NAME] DRAFT LOG...` and
// returns the exit code: 0 when no decision would change, 1 when one would,
// 2 when a file cannot be read (as diff does). With a site, only that
// site's lines are replayed: the sites of one process may enforce
// different rules files. A site that no decision line names is an error
// too: a misspelt site would otherwise read as a draft that changes
// nothing.
func rulesImpact(stdout, stderr io.Writer, draftFile string, logFiles []string, site string) int {
	draft, ok := rulesLoad(stderr, draftFile)
	if !ok {
		return 2
	}
	var changes []impactChange
	tallies := map[string]*impactTally{}
	skipped := 0
	siteLines, sites := 0, map[string]bool{}
	for _, lf := range logFiles {
		err := readDecisionLines(lf, func(n int, l impactLine) error {
			if site != "" && l.Site != site {
				sites[l.Site] = true
				return nil
			}
			siteLines++
			if l.RuleReason == "" {
				// A line the rules decided, written before the gateway
				// recorded their inputs, cannot be replayed.
				if slices.Contains(rules.Reasons, rules.Reason(l.Reason)) {
					skipped++
				}
				return nil
			}
			at, err := decisionTime(l.TS)
			if err != nil {
				return fmt.Errorf("%s:%d: ts: %v", lf, n, err)
			}
			before := rules.Reason(l.RuleReason)
			if !slices.Contains(rules.Reasons, before) {
				return fmt.Errorf("%s:%d: rule_reason: unknown reason %q", lf, n, l.RuleReason)
			}
			o, err := impactOrder(l)
			if err != nil {
				return fmt.Errorf("%s:%d: %v", lf, n, err)
			}
			d := draft.Decide(o, at)
			t := tallies[l.Merchant]
			if t == nil {
				t = new(impactTally)
				tallies[l.Merchant] = t
			}
			t.replayed++
			if d.Allowed == before.Allows() {
				return nil
			}
			if d.Allowed {
				t.toAllowed++
			} else {
				t.toRefused++
			}
			c := impactChange{at: at, line: l, before: before, after: d.Reason, message: d.Message()}
			if k := d.EMDKey(); d.Reason == rules.ReasonEMDMissing && l.EMDUnlisted > 0 && !psp.KnownEMDKey(k) {
				c.emdCaveat = fmt.Sprintf(" (the order carried %d EMD keys the log does not name; %q was taken as absent)", l.EMDUnlisted, k)
			}
			changes = append(changes, c)
			return nil
		})
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
	}
	if site != "" && siteLines == 0 {
		named := slices.Sorted(maps.Keys(sites))
		if len(named) > 0 && named[0] == "" {
			named = named[1:] // lines of a gateway that did not log its site
		}
		seen := "no decision line names a site"
		if len(named) > 0 {
			seen = "the decision lines name " + strings.Join(named, ", ")
		}
		fmt.Fprintf(stderr, "no decision line of site %q in %s (%s): nothing was replayed\n", site, strings.Join(logFiles, ", "), seen)
		return 2
	}

	slices.SortStableFunc(changes, func(a, b impactChange) int { return a.at.Compare(b.at) })
	for _, c := range changes {
		site := ""
		if c.line.Site != "" {
			site = " site " + c.line.Site
		}
		fmt.Fprintf(stdout, "%s %s%s: %s (%s) -> %s (%s): %s%s [%s]\n", c.at.UTC().Format(time.RFC3339), c.line.Merchant, site,
			verdict(c.before.Allows()), c.before, verdict(!c.before.Allows()), c.after, c.message, c.emdCaveat, c.line.PurchaseRef)
	}

	merchants := make([]string, 0, len(tallies))
	total, changed := 0, 0
	for m, t := range tallies {
		merchants = append(merchants, m)
		total += t.replayed
		changed += t.toRefused + t.toAllowed
	}
	slices.Sort(merchants)
	if len(changes) > 0 {
		fmt.Fprintln(stdout)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "merchant\treplayed\tallow -> refuse\trefuse -> allow")
	for _, m := range merchants {
		t := tallies[m]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", m, t.replayed, t.toRefused, t.toAllowed)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d of %d auto-capture decisions would change under %s (each replayed at the time it was made: approvals count by their expiry date against the line's ts)\n",
		changed, total, draftFile)
	if skipped > 0 {
		fmt.Fprintf(stdout, "%d create-order lines without the rules' inputs were skipped (written by a gateway that did not record them)\n", skipped)
	}
	if changed > 0 {
		return 1
	}
	return 0
}

func verdict(allowed bool) string {
	if allowed {
		return "allow"
	}
	return "refuse"
}

// impactOrder rebuilds the order the rules saw from a decision line.
func impactOrder(l impactLine) (rules.Order, error) {
	o := rules.Order{User: l.User, Merchant: l.Merchant, EMDKeys: l.EMDKeys, LinesUnknown: l.LinesUnknown}
	switch l.AutoCapture {
	case "true":
		o.AutoCapture = rules.AutoCaptureTrue
	case "false":
		o.AutoCapture = rules.AutoCaptureFalse
	case "absent":
		o.AutoCapture = rules.AutoCaptureAbsent
	default:
		return o, fmt.Errorf("auto_capture: want true, false or absent, not %q", l.AutoCapture)
	}
	for _, t := range l.LineTypes {
		lt, ok := psp.ParseLineType(t)
		if !ok {
			return o, fmt.Errorf("line_types: unknown order line type %q", t)
		}
		if lt == psp.LinePhysical {
			o.PhysicalLines = true
		}
	}
	return o, nil
}

// decisionTime reads a line's ts as Caddy writes it: seconds since the
// epoch (the default) or a time string (time_format rfc3339 and the like).
func decisionTime(raw json.RawMessage) (time.Time, error) {
	var secs float64
	if err := json.Unmarshal(raw, &secs); err == nil {
		whole, frac := math.Modf(secs)
		return time.Unix(int64(whole), int64(frac*1e9)).UTC(), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return time.Time{}, fmt.Errorf("missing or not a time")
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.000Z0700", "2006/01/02 15:04:05.000"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time pspguard can read (use time_format rfc3339 or the default)", s)
}

// readDecisionLines calls fn for every decision line of a log file (plain,
// or gzip as Caddy rolls it), with its line number. Lines of other loggers
// are skipped, so a log that mixes them can be given as it is.
func readDecisionLines(path string, fn func(n int, l impactLine) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var r io.Reader = br
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		defer zr.Close()
		r = zr
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 || text[0] != '{' {
			continue
		}
		var l impactLine
		if err := json.Unmarshal(text, &l); err != nil {
			return fmt.Errorf("%s:%d: not a JSON log line: %v", path, n, err)
		}
		if l.Logger != "" && !strings.HasSuffix(l.Logger, "psp_guard.decision") {
			continue
		}
		if err := fn(n, l); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	return nil
}
