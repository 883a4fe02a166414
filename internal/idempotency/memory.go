package idempotency

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// Memory is a Store in the process's memory, for a single gateway.
//
// Completed results live in an expirable LRU bounded by Config.Capacity and
// Config.TTL. Claims in flight live in a separate map, so pressure on the
// LRU never evicts a claim (which would let a concurrent retry through);
// that map is bounded by the number of requests in flight, and claims older
// than Config.InFlightTTL count as absent and are swept.
type Memory struct {
	cfg Config
	now func() time.Time // only for in-flight claims: the LRU reads the real clock

	// mu makes each operation atomic across the LRU and the claims.
	mu       sync.Mutex
	results  *expirable.LRU[[sha256.Size]byte, []byte] // fingerprint + encoded result, never modified
	inflight map[[sha256.Size]byte]claim
	sweepAt  time.Time
	closed   bool
}

type claim struct {
	fingerprint [32]byte
	token       string
	expires     time.Time
}

// NewMemory returns an empty memory store.
func NewMemory(cfg Config) *Memory {
	cfg = cfg.withDefaults()
	return &Memory{
		cfg:      cfg,
		now:      time.Now,
		results:  expirable.NewLRU[[sha256.Size]byte, []byte](cfg.Capacity, nil, cfg.TTL),
		inflight: make(map[[sha256.Size]byte]claim),
	}
}

// memoryKey digests a key into a fixed-size map key, so an entry costs the
// same whatever the length of the caller's idempotency key.
func memoryKey(k Key) [sha256.Size]byte {
	var buf [128]byte
	return sha256.Sum256(append(append(buf[:0], k.Scope[:]...), k.ID...))
}

// Begin claims key, or reports why it cannot be claimed.
func (m *Memory) Begin(_ context.Context, key Key, fingerprint [32]byte) (Claim, error) {
	d := memoryKey(key)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return Claim{}, errClosed
	}
	if v, ok := m.results.Get(d); ok {
		m.mu.Unlock()
		if string(v[:len(fingerprint)]) != string(fingerprint[:]) {
			return Claim{Outcome: Mismatch}, nil
		}
		res, err := parseResult(string(v[len(fingerprint):]))
		if err != nil {
			return Claim{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return Claim{Outcome: Replay, Result: &res}, nil
	}
	now := m.now()
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

// held returns the claim on d if token holds it. m.mu is held.
func (m *Memory) held(d [sha256.Size]byte, token string) (claim, bool) {
	c, ok := m.inflight[d]
	if !ok || c.token != token {
		return claim{}, false
	}
	if !m.now().Before(c.expires) {
		delete(m.inflight, d)
		return claim{}, false
	}
	return c, true
}

// Complete turns the claim held by token into a result replayed for
// Config.TTL.
func (m *Memory) Complete(_ context.Context, key Key, token string, res Result) error {
	// The fingerprint comes first, filled in once the claim is known.
	enc, err := appendResult(make([]byte, len(claim{}.fingerprint)), res)
	if err != nil {
		return err
	}
	d := memoryKey(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	c, ok := m.held(d, token)
	if !ok {
		return ErrNotHeld
	}
	copy(enc, c.fingerprint[:])
	delete(m.inflight, d)
	m.results.Add(d, enc)
	return nil
}

// Abandon releases the claim held by token, so the key can be claimed again.
func (m *Memory) Abandon(_ context.Context, key Key, token string) error {
	d := memoryKey(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	if _, ok := m.held(d, token); !ok {
		return ErrNotHeld
	}
	delete(m.inflight, d)
	return nil
}

// Len reports the completed results held, including expired ones the LRU
// has not swept yet (it sweeps about every TTL/100).
func (m *Memory) Len(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, errClosed
	}
	return int64(m.results.Len()), nil
}

// Close drops everything the store holds; later calls fail with
// ErrUnavailable. The LRU's expiry goroutine cannot be stopped (the library
// offers no way to), so Close empties it to release the memory.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed = true
		m.results.Purge()
		m.inflight = nil
	}
	return nil
}

// Interface guards
var _ Store = (*Memory)(nil)
