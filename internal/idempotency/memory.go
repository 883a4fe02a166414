package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pspguard/pspguard/internal/stores"
)

// Memory is a Store in the process's memory, for a single gateway.
//
// Completed results live in an LRU bounded by Options.Capacity. Each result
// carries its own expiry, checked when it is read: an expired result is
// dropped the moment its key is used again, when LRU pressure evicts it, or
// when it reaches the least recently used end of the LRU. Len counts an
// expired result until one of these happens; a result that was replayed
// after it was stored sits ahead of older, unread ones and can be counted
// for a while after it expired.
//
// Claims in flight live in a separate map, so pressure on the LRU never
// evicts a claim (which would let a concurrent retry through); that map is
// bounded by the number of requests in flight, and claims older than
// Options.InFlightTTL count as absent and are swept.
//
// A million results must fit next to the ledger, and the garbage collector
// must not have to look at them. Results are spread over up to 64 shards,
// each with its own lock and its own share of the capacity and LRU order (a
// capacity under 2,048 keeps one shard); hashing does not fill them evenly,
// so a full store holds slightly fewer results than its capacity. In a
// shard, a result's slot (the second half of its key's digest and its
// expiry) sits in a slice of slots indexed by a map from the first half of
// the digest and kept in LRU order by slot number (internal/slotlru); its
// bytes (the first 128 bits of the request's fingerprint, then the result
// in memoryLayout, encoding.go) sit in a block of large byte pages,
// in the smallest of a ladder of block sizes that holds them. Slots, index,
// order and pages hold no pointers, so a full cache adds nothing to the
// work of a garbage collection. Only a result larger than the largest block
// (4 KiB, several times a PSP answer) is kept in a map of its own; it
// counts toward the capacity and is evicted like the others. A freed block
// is reused by the next result of its size, and the pages of a size are
// released when its last result goes, so a shard keeps pages for the most
// results of a size it has held at once since that size was last unused.
// The store starts no goroutine, so a replaced store leaves nothing behind.
type Memory struct {
	opts    Options
	now     func() time.Time
	shards  []memShard
	closed  atomic.Bool
	sweepAt atomic.Int64 // Unix nanoseconds of the next sweep of lapsed claims
}

// memoryKey is the digest of a Key: an entry costs the same whatever the
// length of the caller's idempotency key. 128 bits make a collision among
// the keys a cache can hold negligible.
type memoryKey [16]byte

// index is the half of the digest a shard's index is keyed by; the slot
// holds the other half. Two keys whose index collides are never confused:
// the later result replaces the earlier, which is then simply not cached.
func (d memoryKey) index() uint64 { return binary.LittleEndian.Uint64(d[:8]) }

func (d memoryKey) check() uint64 { return binary.LittleEndian.Uint64(d[8:]) }

// fingerprintLen is how much of a request's fingerprint a result keeps.
const fingerprintLen = 16

type claim struct {
	fingerprint [32]byte
	token       string
	expires     time.Time
}

// sweepPerComplete bounds how many expired results a Complete drops. It is
// more than the one result a Complete adds, so sweeping keeps up with any
// rate of traffic.
const sweepPerComplete = 2

const (
	maxMemShards      = 64
	minShardResults   = 1024 // fewer shards for small capacities keep the LRU order close to global
	completeStackSize = 512  // a typical result is encoded without an allocation
)

// NewMemory returns an empty memory store.
func NewMemory(opts Options) *Memory {
	opts = opts.withDefaults()
	n := 1
	for n < maxMemShards && opts.Capacity/(2*n) >= minShardResults {
		n *= 2
	}
	m := &Memory{opts: opts, now: opts.Now, shards: make([]memShard, n)}
	for i := range m.shards {
		m.shards[i].init(opts.Capacity / n)
	}
	return m
}

func digest(k Key) memoryKey {
	var buf [128]byte
	sum := sha256.Sum256(append(append(buf[:0], k.Scope[:]...), k.ID...))
	return memoryKey(sum[:16])
}

// shard returns d's shard, locked, or nil if the store is closed.
func (m *Memory) shard(d memoryKey) *memShard {
	sh := &m.shards[d.check()&uint64(len(m.shards)-1)]
	sh.mu.Lock()
	if m.closed.Load() {
		sh.mu.Unlock()
		return nil
	}
	return sh
}

// Begin claims key, or reports why it cannot be claimed.
func (m *Memory) Begin(_ context.Context, key Key, fingerprint [32]byte) (Claim, error) {
	d := digest(key)
	now := m.now()
	m.sweep(now)
	sh := m.shard(d)
	if sh == nil {
		return Claim{}, errClosed
	}
	if i, ok := sh.result(d, now); ok {
		stored := sh.bytes(i)
		if string(stored[:fingerprintLen]) != string(fingerprint[:fingerprintLen]) {
			sh.mu.Unlock()
			return Claim{Outcome: Mismatch}, nil
		}
		encoded := string(stored[fingerprintLen:]) // a copy the replay owns
		sh.mu.Unlock()
		res, err := memoryLayout.parse(encoded)
		if err != nil {
			return Claim{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return Claim{Outcome: Replay, Result: &res}, nil
	}
	defer sh.mu.Unlock()
	if c, ok := sh.inflight[d]; ok && now.Before(c.expires) {
		if c.fingerprint != fingerprint {
			return Claim{Outcome: Mismatch}, nil
		}
		return Claim{Outcome: InFlight}, nil
	}
	c := claim{fingerprint: fingerprint, token: stores.NewToken(), expires: now.Add(m.opts.InFlightTTL)}
	sh.inflight[d] = c
	return Claim{Outcome: Started, Token: c.token}, nil
}

// sweep drops lapsed claims from every shard, at most once per
// InFlightTTL, so a crashed caller's claims do not pile up.
func (m *Memory) sweep(now time.Time) {
	next := m.sweepAt.Load()
	if now.UnixNano() < next || !m.sweepAt.CompareAndSwap(next, now.Add(m.opts.InFlightTTL).UnixNano()) {
		return
	}
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		if !m.closed.Load() {
			sh.sweep(now)
		}
		sh.mu.Unlock()
	}
}

// Complete turns the claim held by token into a result replayed for
// Options.TTL.
func (m *Memory) Complete(_ context.Context, key Key, token string, res Result) error {
	// The fingerprint is filled in once the claim is known.
	var buf [completeStackSize]byte
	enc, err := memoryLayout.append(buf[:fingerprintLen], res)
	if err != nil {
		return err
	}
	d := digest(key)
	sh := m.shard(d)
	if sh == nil {
		return errClosed
	}
	defer sh.mu.Unlock()
	now := m.now()
	c, ok := sh.held(d, token, now)
	if !ok {
		return ErrNotHeld
	}
	copy(enc, c.fingerprint[:fingerprintLen])
	delete(sh.inflight, d)
	sh.store(d, now.Add(m.opts.TTL).UnixNano(), enc)
	sh.expire(now, sweepPerComplete)
	return nil
}

// Abandon releases the claim held by token, so the key can be claimed again.
func (m *Memory) Abandon(_ context.Context, key Key, token string) error {
	d := digest(key)
	sh := m.shard(d)
	if sh == nil {
		return errClosed
	}
	defer sh.mu.Unlock()
	if _, ok := sh.held(d, token, m.now()); !ok {
		return ErrNotHeld
	}
	delete(sh.inflight, d)
	return nil
}

// Len reports the completed results held. It first drops the expired
// results at the least recently used end of each shard; expired results
// elsewhere are counted until they are dropped (see Memory).
func (m *Memory) Len(context.Context) (int64, error) {
	if m.closed.Load() {
		return 0, errClosed
	}
	now := m.now()
	var n int64
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		if m.closed.Load() {
			sh.mu.Unlock()
			return 0, errClosed
		}
		sh.expire(now, -1)
		n += int64(len(sh.index))
		sh.mu.Unlock()
	}
	return n, nil
}

// Close drops everything the store holds; later calls fail with
// ErrUnavailable.
func (m *Memory) Close() error {
	m.closed.Store(true)
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		sh.release()
		sh.mu.Unlock()
	}
	return nil
}

// Interface guards
var _ Store = (*Memory)(nil)
