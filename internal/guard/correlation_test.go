package guard

import (
	"testing"

	"github.com/google/uuid"
)

// Correlation ids are random version 4 UUIDs: they tell a caller nothing
// about how many requests the gateway has seen.
func TestCorrelationIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newCorrelationID()
		u, err := uuid.Parse(id)
		if err != nil || len(id) != 36 || u.Version() != 4 || u.Variant() != uuid.RFC4122 {
			t.Fatalf("%q is not a version 4 UUID: %v", id, err)
		}
		if seen[id] {
			t.Fatalf("%q made twice", id)
		}
		seen[id] = true
	}
}

func BenchmarkCorrelationID(b *testing.B) {
	for b.Loop() {
		_ = newCorrelationID()
	}
}
