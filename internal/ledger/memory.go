package ledger

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/pspguard/pspguard/internal/psp"
	"github.com/pspguard/pspguard/internal/stores"
)

// Memory is a Store held in this process: fast, bounded, and lost on
// restart. Orders are spread over up to 64 shards, each with its own lock
// and LRU list, so that unrelated orders do not contend.
type Memory struct {
	now    func() time.Time
	lease  int64 // nanoseconds
	shards []shard
}

const (
	maxShards      = 64
	minShardOrders = 1024 // fewer shards for small bounds keep the LRU order close to global
)

// NewMemory returns an empty Memory store.
func NewMemory(opts Options) *Memory {
	opts = opts.withDefaults()
	n := 1
	for n < maxShards && opts.MaxOrders/(2*n) >= minShardOrders {
		n *= 2
	}
	m := &Memory{now: opts.Now, lease: int64(opts.Lease), shards: make([]shard, n)}
	for i := range m.shards {
		m.shards[i].init(opts.MaxOrders/n, m.lease)
	}
	return m
}

// shard returns the shard of id. A digest is uniformly distributed, so its
// first bytes pick the shard.
func (m *Memory) shard(id digest) *shard {
	return &m.shards[binary.LittleEndian.Uint64(id[:8])&uint64(len(m.shards)-1)]
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, key Key) (Entry, bool, error) {
	now := m.now().UnixNano()
	id := keyDigest(key)
	sh := m.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, e := sh.lookup(id)
	if e == nil {
		return Entry{}, false, nil
	}
	return sh.snapshot(i, now), true, nil
}

// Learn implements Store.
func (m *Memory) Learn(_ context.Context, key Key, order psp.Order, verified bool) error {
	if err := checkOrder(order); err != nil {
		return err
	}
	id := keyDigest(key)
	sh := m.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, e := sh.lookup(id)
	if e == nil {
		i, e = sh.insert(id)
		sh.setOrder(i, order)
		e.unverified = !verified
	} else {
		sh.meet(i, order)
	}
	e.ver = sh.tick()
	return nil
}

// BeginRead implements Store.
func (m *Memory) BeginRead(_ context.Context, key Key) (ReadToken, error) {
	now := m.now().UnixNano()
	id := keyDigest(key)
	sh := m.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	_, e := sh.lookup(id)
	if e == nil {
		_, e = sh.placeholder(id)
	}
	return ReadToken{ver: e.ver, at: now}, nil
}

// Reconcile implements Store.
func (m *Memory) Reconcile(_ context.Context, key Key, order psp.Order, tok ReadToken) (bool, error) {
	if err := checkOrder(order); err != nil {
		return false, err
	}
	id := keyDigest(key)
	sh := m.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, e := sh.lookup(id)
	fresh := e != nil && e.ver == tok.ver && tok.inc == ""
	switch {
	case e == nil:
		// Dropped since the read began: what the read missed is not known.
		i, e = sh.placeholder(id)
		sh.setOrder(i, order)
	case fresh:
		sh.setOrder(i, order)
		e.unverified = false
		sh.dropUncertain(i, tok.at)
	default:
		sh.meet(i, order)
	}
	e.ver = sh.tick()
	return fresh, nil
}

// Reserve implements Store.
func (m *Memory) Reserve(_ context.Context, key Key, req ReserveRequest) (Decision, error) {
	token := stores.NewToken()
	now := m.now()
	id := keyDigest(key)
	sh := m.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, e := sh.lookup(id)
	if e == nil {
		return Decision{Outcome: NotFound}, nil
	}
	at := now.UnixNano()
	d := Decision{Entry: sh.snapshot(i, at)}
	adopt := -1
	if d.Entry.Uncertain > 0 {
		adopt = sh.adoptable(i, req.Tag, req.Amount, at)
	}
	d.Outcome = decide(d.Entry, adopt >= 0, req, now)
	switch d.Outcome {
	case Adopted:
		r := &sh.res[i][adopt]
		r.token = token
		r.uncertain = false
		r.since = at
		d.Reservation = Reservation{Key: key, Token: token, Amount: r.amount}
	case Reserved:
		sh.hold(i, reservation{token: token, tag: req.Tag, amount: req.Amount, since: at})
		d.Reservation = Reservation{Key: key, Token: token, Amount: req.Amount}
	}
	return d, nil
}

// settlement is what becomes of a reservation.
type settlement uint8

const (
	settleCommit settlement = iota
	settleRelease
	settleUncertain
)

// Commit implements Store.
func (m *Memory) Commit(_ context.Context, res Reservation) error {
	return m.settle(res, settleCommit)
}

// Release implements Store.
func (m *Memory) Release(_ context.Context, res Reservation) error {
	return m.settle(res, settleRelease)
}

// MarkUncertain implements Store. Marking an uncertain reservation again
// changes nothing.
func (m *Memory) MarkUncertain(_ context.Context, res Reservation) error {
	return m.settle(res, settleUncertain)
}

func (m *Memory) settle(res Reservation, s settlement) error {
	id := keyDigest(res.Key)
	sh := m.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, e := sh.get(id)
	if e == nil || res.Token == "" {
		return ErrNotHeld
	}
	rs := sh.res[i]
	j := find(rs, res.Token)
	if j < 0 {
		return ErrNotHeld
	}
	e.ver = sh.tick()
	switch {
	case s == settleCommit && rs[j].change != 0:
		sh.apply(i, rs[j])
		sh.drop(i, rs, j)
	case s == settleCommit:
		sh.commit(i, rs, j)
	case s == settleRelease:
		sh.drop(i, rs, j)
	case s == settleUncertain:
		rs[j].uncertain = true
	}
	return nil
}

// Hold implements Store.
func (m *Memory) Hold(_ context.Context, key Key, c Change) (Decision, error) {
	if c.Kind == ChangeAmount {
		if err := checkAmount("amount", c.Amount); err != nil {
			return Decision{}, err
		}
	}
	token := stores.NewToken()
	now := m.now().UnixNano()
	id := keyDigest(key)
	sh := m.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, e := sh.lookup(id)
	if e == nil {
		i, e = sh.placeholder(id)
	}
	d := Decision{Entry: sh.snapshot(i, now)}
	limit, o := holdLimit(d.Entry, c)
	if o != Reserved {
		d.Outcome = o
		return d, nil
	}
	sh.hold(i, reservation{token: token, change: c.Kind, limit: limit, since: now})
	sh.slots[i].ver = sh.tick()
	d.Outcome = Reserved
	d.Reservation = Reservation{Key: key, Token: token, change: true}
	return d, nil
}

// Forget implements Store. Reservations in flight on the order are dropped
// with it: their tokens are no longer held.
func (m *Memory) Forget(_ context.Context, key Key) error {
	id := keyDigest(key)
	sh := m.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if i, e := sh.get(id); e != nil {
		sh.remove(i)
	}
	return nil
}

// Stats implements Store.
func (m *Memory) Stats(context.Context) (orders, reservations int64, err error) {
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		orders += int64(len(sh.index))
		reservations += sh.inFlight
		sh.mu.Unlock()
	}
	return orders, reservations, nil
}

// Close implements Store; a Memory store holds nothing to release.
func (m *Memory) Close() error { return nil }

// Interface guards
var _ Store = (*Memory)(nil)
