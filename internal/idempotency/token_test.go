package idempotency

import (
	"encoding/hex"
	"testing"
)

func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		tok := newToken()
		if b, err := hex.DecodeString(tok); err != nil || len(b) != 16 {
			t.Fatalf("token %q is not 128 bits in hex", tok)
		}
		if seen[tok] {
			t.Fatalf("token %q repeated", tok)
		}
		seen[tok] = true
	}
}
