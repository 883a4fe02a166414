package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Memory is a Store in the process's memory, for a single gateway.
//
// Completed results live in an LRU bounded by Config.Capacity. Each result
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
// Config.InFlightTTL count as absent and are swept.
//
// An entry is kept small, because a million of them must fit next to the
// ledger: the LRU is indexed by 64 bits of the key's 128-bit digest and the
// other 64 bits are checked on every read, the fingerprint is kept to 128
// bits, and the expiry and the result are one string. The store starts no
// goroutine, so a replaced store leaves nothing behind.
type Memory struct {
	cfg Config
	now func() time.Time

	// mu makes each operation atomic across the LRU and the claims.
	mu       sync.Mutex
	results  *simplelru.LRU[uint64, string] // by memoryKey.index; the layout of the string is below
	inflight map[memoryKey]claim
	sweepAt  time.Time
	closed   bool
}

// memoryKey is the digest of a Key: an entry costs the same whatever the
// length of the caller's idempotency key. 128 bits make a collision among
// the keys a cache can hold negligible.
type memoryKey [16]byte

// index is the half of the digest the LRU is indexed by; the stored result
// holds the other half. Two keys whose index collides are never confused:
// the later result replaces the earlier, which is then simply not cached.
func (d memoryKey) index() uint64 { return binary.LittleEndian.Uint64(d[:8]) }

// A stored result is one string:
//
//	check(8) expires(8) fingerprint(16) result
//
// check is the second half of the key's digest, expires the Unix
// nanoseconds (of the store's clock) from which the result is no longer
// replayed, fingerprint the first 128 bits of the request's fingerprint,
// and result the encoding of memory_encoding.go.
const (
	checkEnd       = 8
	expiresEnd     = 16
	fingerprintEnd = 32
	fingerprintLen = fingerprintEnd - expiresEnd
)

func storedCheck(v string) string { return v[:checkEnd] }

func storedExpires(v string) int64 {
	var b [8]byte
	copy(b[:], v[checkEnd:expiresEnd])
	return int64(binary.LittleEndian.Uint64(b[:]))
}

type claim struct {
	fingerprint [32]byte
	token       string
	expires     time.Time
}

// sweepPerComplete bounds how many expired results a Complete drops. It is
// more than the one result a Complete adds, so sweeping keeps up with any
// rate of traffic.
const sweepPerComplete = 2

// NewMemory returns an empty memory store.
func NewMemory(cfg Config) *Memory {
	cfg = cfg.withDefaults()
	// NewLRU fails only for a size below 1, which withDefaults rules out.
	results, _ := simplelru.NewLRU[uint64, string](cfg.Capacity, nil)
	return &Memory{
		cfg:      cfg,
		now:      time.Now,
		results:  results,
		inflight: make(map[memoryKey]claim),
	}
}

func digest(k Key) memoryKey {
	var buf [128]byte
	sum := sha256.Sum256(append(append(buf[:0], k.Scope[:]...), k.ID...))
	return memoryKey(sum[:16])
}

// Begin claims key, or reports why it cannot be claimed.
func (m *Memory) Begin(_ context.Context, key Key, fingerprint [32]byte) (Claim, error) {
	d := digest(key)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return Claim{}, errClosed
	}
	now := m.now()
	if v, ok := m.result(d, now); ok {
		m.mu.Unlock()
		if v[expiresEnd:fingerprintEnd] != string(fingerprint[:fingerprintLen]) {
			return Claim{Outcome: Mismatch}, nil
		}
		res, err := parseCompact(v[fingerprintEnd:])
		if err != nil {
			return Claim{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return Claim{Outcome: Replay, Result: &res}, nil
	}
	m.sweep(now)
	if c, ok := m.inflight[d]; ok && now.Before(c.expires) {
		m.mu.Unlock()
		if c.fingerprint != fingerprint {
			return Claim{Outcome: Mismatch}, nil
		}
		return Claim{Outcome: InFlight}, nil
	}
	c := claim{fingerprint: fingerprint, token: newToken(), expires: now.Add(m.cfg.InFlightTTL)}
	m.inflight[d] = c
	m.mu.Unlock()
	return Claim{Outcome: Started, Token: c.token}, nil
}

// result returns the live result stored for d and marks it recently used;
// an expired one is dropped. m.mu is held.
func (m *Memory) result(d memoryKey, now time.Time) (string, bool) {
	v, ok := m.results.Get(d.index())
	if !ok || storedCheck(v) != string(d[checkEnd:]) {
		return "", false
	}
	if now.UnixNano() >= storedExpires(v) {
		m.results.Remove(d.index())
		return "", false
	}
	return v, true
}

// sweep drops lapsed claims, at most once per InFlightTTL. m.mu is held.
func (m *Memory) sweep(now time.Time) {
	if now.Before(m.sweepAt) {
		return
	}
	for d, c := range m.inflight {
		if !now.Before(c.expires) {
			delete(m.inflight, d)
		}
	}
	m.sweepAt = now.Add(m.cfg.InFlightTTL)
}

// expire drops expired results from the least recently used end, up to
// limit of them (no limit when negative), and stops at the first live one.
// m.mu is held.
func (m *Memory) expire(now time.Time, limit int) {
	t := now.UnixNano()
	for ; limit != 0; limit-- {
		_, v, ok := m.results.GetOldest()
		if !ok || t < storedExpires(v) {
			return
		}
		m.results.RemoveOldest()
	}
}

// held returns the claim on d if token holds it. m.mu is held.
func (m *Memory) held(d memoryKey, token string, now time.Time) (claim, bool) {
	c, ok := m.inflight[d]
	if !ok || c.token != token {
		return claim{}, false
	}
	if !now.Before(c.expires) {
		delete(m.inflight, d)
		return claim{}, false
	}
	return c, true
}

// Complete turns the claim held by token into a result replayed for
// Config.TTL.
func (m *Memory) Complete(_ context.Context, key Key, token string, res Result) error {
	// The prefix is filled in once the claim is known. A typical answer is
	// encoded on the stack and copied once into the string the store keeps.
	var buf [256]byte
	enc, err := appendCompact(buf[:fingerprintEnd], res)
	if err != nil {
		return err
	}
	d := digest(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	now := m.now()
	c, ok := m.held(d, token, now)
	if !ok {
		return ErrNotHeld
	}
	copy(enc, d[checkEnd:])
	binary.LittleEndian.PutUint64(enc[checkEnd:], uint64(now.Add(m.cfg.TTL).UnixNano()))
	copy(enc[expiresEnd:], c.fingerprint[:fingerprintLen])
	delete(m.inflight, d)
	m.results.Add(d.index(), string(enc))
	m.expire(now, sweepPerComplete)
	return nil
}

// Abandon releases the claim held by token, so the key can be claimed again.
func (m *Memory) Abandon(_ context.Context, key Key, token string) error {
	d := digest(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	if _, ok := m.held(d, token, m.now()); !ok {
		return ErrNotHeld
	}
	delete(m.inflight, d)
	return nil
}

// Len reports the completed results held. It first drops the expired
// results at the least recently used end; expired results elsewhere in the
// LRU are counted until they are dropped (see Memory).
func (m *Memory) Len(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, errClosed
	}
	m.expire(m.now(), -1)
	return int64(m.results.Len()), nil
}

// Close drops everything the store holds; later calls fail with
// ErrUnavailable.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.results = nil
	m.inflight = nil
	return nil
}

// Interface guards
var _ Store = (*Memory)(nil)
