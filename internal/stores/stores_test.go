package stores

import (
	"testing"
	"time"
)

func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok := NewToken()
		if len(tok) != TokenLen {
			t.Fatalf("token %q: length %d, want %d", tok, len(tok), TokenLen)
		}
		for _, c := range tok {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				t.Fatalf("token %q is not lower-case hex", tok)
			}
		}
		if seen[tok] {
			t.Fatalf("token %q drawn twice", tok)
		}
		seen[tok] = true
	}
}

func TestPrefix(t *testing.T) {
	if got := Prefix("", "ledger"); got != "pspguard:v2:ledger:" {
		t.Errorf("default prefix: %q", got)
	}
	if got := Prefix("shop-a", "idem"); got != "shop-a:v2:idem:" {
		t.Errorf("prefix shop-a: %q", got)
	}
}

func TestClock(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if got := Clock(func() time.Time { return at })(); !got.Equal(at) {
		t.Errorf("injected clock reads %v, want %v", got, at)
	}
	if got := Clock(nil)(); time.Since(got) > time.Minute || time.Since(got) < 0 {
		t.Errorf("default clock reads %v, not now", got)
	}
}
