package idempotency

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"testing"
	"unsafe"

	"github.com/pspguard/pspguard/internal/noscan"
)

// TestMemoryIndexCollision stores, under the LRU index of a key, the result
// of another key that shares the index but not the rest of the digest. The
// key must not be answered with that result, even with the same
// fingerprint; its own result then takes the place.
func TestMemoryIndexCollision(t *testing.T) {
	ctx := t.Context()
	m := NewMemory(Options{})
	defer m.Close()
	k := Key{ID: "capture-1"}
	var fp [32]byte
	fp[0] = 1
	other := Result{Status: http.StatusForbidden, Body: []byte(`{"error_code":"CAPTURE_NOT_ALLOWED"}`)}
	mine := Result{Status: http.StatusCreated, Header: http.Header{"Capture-Id": {"c-1"}}}

	d := digest(k)
	v, err := memoryLayout.append(append([]byte(nil), fp[:fingerprintLen]...), other)
	if err != nil {
		t.Fatal(err)
	}
	var o memoryKey
	copy(o[:8], d[:8])            // the same index
	for i := 8; i < len(o); i++ { // another check
		o[i] = ^d[i]
	}
	sh := m.shard(d)
	sh.store(o, 1<<62, v)
	sh.mu.Unlock()

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

// The bulk of a memory store is its slots, its index and its pages. None
// may hold a pointer per result: the garbage collector then never scans
// them, however many results the store holds.
func TestMemoryStorageHoldsNoPointers(t *testing.T) {
	var sh memShard
	for _, typ := range []reflect.Type{
		reflect.TypeOf(sh.slots).Elem(),
		reflect.TypeOf(sh.index).Key(),
		reflect.TypeOf(sh.index).Elem(),
		reflect.TypeOf(sh.classes[0].pages).Elem().Elem(),
		reflect.TypeOf(sh.classes[0].free).Elem(),
	} {
		if path, found := noscan.Pointer(typ); found {
			t.Errorf("%s holds a pointer at %s", typ, path)
		}
	}
}

// Results of every size are stored and replayed exactly, in blocks of
// every class and beyond the largest, and a replaced or evicted result's
// block is reused.
func TestMemoryResultSizes(t *testing.T) {
	ctx := t.Context()
	m := NewMemory(Options{Capacity: 8})
	defer m.Close()
	var fp [32]byte
	for round := range 3 {
		for _, n := range []int{0, 1, 40, 63, 64, 65, 200, 511, 4000, 4096, 5000, 70000} {
			k := Key{ID: fmt.Sprintf("size-%d", n)}
			fp[0] = byte(round)
			c, err := m.Begin(ctx, k, fp)
			if err != nil {
				t.Fatal(err)
			}
			if c.Outcome == Replay || c.Outcome == Mismatch {
				continue // still cached from an earlier round
			}
			body := bytes.Repeat([]byte{byte('a' + n%26)}, n)
			if err := m.Complete(ctx, k, c.Token, Result{Status: http.StatusCreated, Body: body}); err != nil {
				t.Fatal(err)
			}
			c, err = m.Begin(ctx, k, fp)
			if err != nil || c.Outcome != Replay || !bytes.Equal(c.Result.Body, body) {
				t.Fatalf("round %d, %d bytes: %v %v, body equal %v", round, n, c.Outcome, err,
					c.Result != nil && bytes.Equal(c.Result.Body, body))
			}
		}
	}
	if n, _ := m.Len(ctx); n != 8 {
		t.Errorf("Len = %d, want the capacity 8", n)
	}
}

// Every result the store holds pays for a slot, so a slot stays within 32
// bytes; every block size must fit the slot's uint16 size field and a page.
func TestMemorySlotLayout(t *testing.T) {
	if n := unsafe.Sizeof(resultSlot{}); n > 32 {
		t.Errorf("a result slot takes %d bytes, want at most 32", n)
	}
	prev := uint32(0)
	for _, size := range blockSizes {
		if size <= prev || size > math.MaxUint16 || size > pageSize {
			t.Errorf("block size %d after %d: sizes must ascend and fit the slot's size field and a page", size, prev)
		}
		prev = size
	}
}

// TestMemoryPagesFollowResults fills a store with results spread over many
// pages of one block size, replays them all exactly, then evicts them with
// smaller results: the pages of the larger size go back to the heap, and
// that size is cut anew when it is used again.
func TestMemoryPagesFollowResults(t *testing.T) {
	ctx := t.Context()
	const n = 1000 // one shard
	m := NewMemory(Options{Capacity: n})
	defer m.Close()
	var fp [32]byte
	body := func(i int) []byte { return fmt.Appendf(bytes.Repeat([]byte{'x'}, 900), "%d", i) }
	fill := func(prefix string, res func(i int) Result) {
		t.Helper()
		for i := range n {
			k := Key{ID: fmt.Sprintf("%s-%d", prefix, i)}
			c, err := m.Begin(ctx, k, fp)
			if err != nil || c.Outcome != Started {
				t.Fatalf("Begin %v = %v, %v", k.ID, c.Outcome, err)
			}
			if err := m.Complete(ctx, k, c.Token, res(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	large := func(i int) Result { return Result{Status: http.StatusOK, Body: body(i)} }
	small := func(int) Result { return Result{Status: http.StatusCreated} }

	fill("large", large)
	sh := &m.shards[0]
	class := classOf(t, sh, Key{ID: "large-0"})
	if pages := len(sh.classes[class].pages); pages < 2 {
		t.Fatalf("%d results of %d bytes took %d pages; the test wants several", n, blockSizes[class], pages)
	}
	for i := range n {
		c, err := m.Begin(ctx, Key{ID: fmt.Sprintf("large-%d", i)}, fp)
		if err != nil || c.Outcome != Replay || !bytes.Equal(c.Result.Body, body(i)) {
			t.Fatalf("large-%d: %v, %v; want a replay of its own body", i, c.Outcome, err)
		}
	}

	fill("small", small)
	if c := sh.classes[class]; c.pages != nil || c.free != nil || c.used != 0 {
		t.Errorf("after its last result was evicted, block size %d keeps %d pages and %d free blocks",
			blockSizes[class], len(c.pages), len(c.free))
	}
	if got, _ := m.Len(ctx); got != n {
		t.Errorf("Len = %d, want %d", got, n)
	}

	fill("large-again", large)
	c, err := m.Begin(ctx, Key{ID: "large-again-7"}, fp)
	if err != nil || c.Outcome != Replay || !bytes.Equal(c.Result.Body, body(7)) {
		t.Fatalf("after the pages were released: %v, %v; want a replay of its own body", c.Outcome, err)
	}
}

// classOf returns the block size index of k's result.
func classOf(t *testing.T, sh *memShard, k Key) uint8 {
	t.Helper()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, ok := sh.index[digest(k).index()]
	if !ok {
		t.Fatalf("no result for %q", k.ID)
	}
	return sh.slots[i].class
}
