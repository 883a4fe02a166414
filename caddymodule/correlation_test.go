package caddymodule

import (
	"testing"

	"github.com/google/uuid"
)

func TestCorrelationIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newCorrelationID()
		if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
			t.Fatalf("%q is not in the textual form of a UUID: %v", id, err)
		}
		if seen[id] {
			t.Fatalf("%q made twice", id)
		}
		seen[id] = true
	}
	a, b := newCorrelationID(), newCorrelationID()
	if a[:18] != b[:18] {
		t.Errorf("ids of one process should share the random half: %q, %q", a, b)
	}
}
