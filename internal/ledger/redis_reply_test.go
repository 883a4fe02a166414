package ledger

import (
	"testing"

	"github.com/pspguard/pspguard/internal/psp"
)

func TestParseDecision(t *testing.T) {
	d, err := parseDecision("4,1000,SEK,300,0,0,0,1795423737,500000000,600,2,0,3,1,1,700")
	if err != nil {
		t.Fatal(err)
	}
	want := Entry{
		Order: psp.Order{Amount: 1000, Currency: "SEK", Captured: 300,
			State: psp.OrderState(0), ExpiresAt: fromUnixNano(1795423737_500000000)},
		Reserved: 600, Pending: 2, Captures: 3, Unverified: true, Changes: 1, Limit: 700,
	}
	if d.Outcome != Exceeds || d.Entry != want {
		t.Fatalf("parseDecision = %v %+v; want exceeds %+v", d.Outcome, d.Entry, want)
	}
	if d, err := parseDecision("2"); err != nil || d.Outcome != NotFound {
		t.Fatalf("parseDecision(not found) = %v, %v", d.Outcome, err)
	}
	if d, err := parseDecision("0,1000,SEK,0,0,0,1,,0,0,0,0,0,,,"); err != nil || !d.Entry.ExpiresAt.IsZero() || !d.Entry.SingleCapture {
		t.Fatalf("parseDecision(no expiry, single capture) = %+v, %v", d.Entry, err)
	}
	for _, bad := range []string{
		"", "0", "9", "-1", "x",
		"0,1000,SEK,0,0,0,0,,0,0,0,0,0,,",   // a field short
		"0,1000,SEK,0,0,0,0,,0,0,0,0,0,,,,", // a field over
		"0,1000,SEK,zero,0,0,0,,0,0,0,0,0,,,",
		"0,1000,SEK,0,0,0,0,1795423737,x,0,0,0,0,,,",
		"0,1000,SEK,0,0,0,0,,0,0,0,0,0,,1,x",
	} {
		if _, err := parseDecision(bad); err == nil {
			t.Errorf("parseDecision(%q) succeeded; want an error", bad)
		}
	}
}
