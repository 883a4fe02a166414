package idempotency

import (
	"net/http"
	"testing"
)

// TestMemoryIndexCollision stores, under the LRU index of a key, the result
// of another key that shares the index but not the rest of the digest. The
// key must not be answered with that result, even with the same
// fingerprint; its own result then takes the place.
func TestMemoryIndexCollision(t *testing.T) {
	ctx := t.Context()
	m := NewMemory(Config{})
	defer m.Close()
	k := Key{ID: "capture-1"}
	var fp [32]byte
	fp[0] = 1
	other := Result{Status: http.StatusForbidden, Body: []byte(`{"error_code":"CAPTURE_NOT_ALLOWED"}`)}
	mine := Result{Status: http.StatusCreated, Header: http.Header{"Capture-Id": {"c-1"}}}

	d := digest(k)
	v, err := appendCompact(make([]byte, fingerprintEnd), other)
	if err != nil {
		t.Fatal(err)
	}
	for i := range checkEnd {
		v[i] = ^d[checkEnd+i] // the other key's half of its digest
	}
	for i := checkEnd; i < expiresEnd; i++ {
		v[i] = 0x7f // expires long after now
	}
	copy(v[expiresEnd:], fp[:fingerprintLen])
	m.results.Add(d.index(), string(v))

	c, err := m.Begin(ctx, k, fp)
	if err != nil || c.Outcome != Started {
		t.Fatalf("Begin = %v, %v; want started, not the other key's result", c.Outcome, err)
	}
	if err := m.Complete(ctx, k, c.Token, mine); err != nil {
		t.Fatal(err)
	}
	c, err = m.Begin(ctx, k, fp)
	if err != nil || c.Outcome != Replay || !sameResult(*c.Result, mine) {
		t.Fatalf("Begin = %v %+v, %v; want a replay of the key's own result", c.Outcome, c.Result, err)
	}
	if n, _ := m.Len(ctx); n != 1 {
		t.Errorf("Len = %d, want 1: the key's result replaced the other", n)
	}
}
