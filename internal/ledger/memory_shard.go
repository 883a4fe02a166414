package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"sync"

	"github.com/pspguard/pspguard/internal/psp"
	"github.com/pspguard/pspguard/internal/slotlru"
)

// entry is an order as the memory store holds it. A million of them must
// fit in well under 256 MiB, and the garbage collector must not have to
// look at them: an entry holds no pointer. It keeps the key's digest rather
// than the key, the expiry as nanoseconds and a typical currency code
// inline; its place in the LRU order and its reservations, few at any time,
// live beside the slots.
type entry struct {
	id       digest
	amount   int64
	captured int64
	released int64
	expires  int64 // unixNano of the order's ExpiresAt
	// ver is the order's version: the shard's clock at its last change.
	// The clock only moves forward, so a version never comes back for a
	// key, also after the entry was dropped and made again.
	ver        uint64
	captures   int32
	state      psp.OrderState
	single     bool
	busy       bool // has reservations in flight, so is not in the LRU list
	unverified bool // no account of the order from the PSP to decide on
	curLen     uint8
	cur        [inlineCurrency]byte
}

// inlineCurrency is the longest currency an entry holds itself (ISO 4217
// codes have three letters); a longer one is kept in shard.longCur.
const inlineCurrency = 7

// longCurrency marks an entry whose currency is in shard.longCur.
const longCurrency = 0xff

// reservation is one capture or order change in flight on an entry.
type reservation struct {
	token     string
	tag       string
	amount    int64 // a capture's amount; 0 for an order change
	limit     int64 // an order change's bound on the amount (ChangeAmount: the new amount)
	since     int64 // unixNano when it was made or adopted
	change    ChangeKind
	uncertain bool
}

// shard is one lock's worth of entries, in a slice of slots indexed by a
// map from digest to slot number. Neither holds a pointer, so a full store
// adds nothing to the work of a garbage collection. Entries without
// reservations are kept in LRU order for eviction; entries with
// reservations are not in the list at all, which is what keeps them from
// being evicted: dropping one would forget the amount in flight and allow
// an over-capture.
type shard struct {
	mu       sync.Mutex
	index    map[digest]uint32
	slots    []entry                  // by slot number; slot 0 is unused
	lru      slotlru.List             // idle entries, and the free slots
	res      map[uint32][]reservation // reservations in flight, by slot
	spare    [][]reservation          // emptied reservation slices, so an order's next capture does not allocate
	longCur  map[uint32]string
	names    map[[inlineCurrency + 1]byte]string // currency strings, made once each
	bound    int
	lease    int64 // nanoseconds a reservation stays pending
	inFlight int64
	clock    uint64 // the last version given out
}

// tick returns a version no entry of the shard has had.
func (sh *shard) tick() uint64 {
	sh.clock++
	return sh.clock
}

// placeholder adds an unverified entry for id, of which nothing is known.
func (sh *shard) placeholder(id digest) (uint32, *entry) {
	i, e := sh.insert(id)
	sh.setOrder(i, top)
	e.unverified = true
	e.ver = sh.tick()
	return i, e
}

// meet restricts the order facts of slot i by another account of them;
// a currency disagreement makes the entry unverified.
func (sh *shard) meet(i uint32, o psp.Order) {
	var reserved int64
	for _, r := range sh.res[i] {
		reserved += r.amount
	}
	m, agree := meet(sh.order(i), o, reserved)
	sh.setOrder(i, m)
	if !agree {
		sh.slots[i].unverified = true
	}
}

// apply settles order change r on slot i as applied by the PSP. A raised
// amount is not believed: the entry becomes unverified.
func (sh *shard) apply(i uint32, r reservation) {
	e := &sh.slots[i]
	switch r.change {
	case ChangeAmount:
		if r.limit > e.amount {
			e.unverified = true
		}
		e.amount = min(e.amount, r.limit)
	case ChangeRelease:
		e.released = max(e.released, e.amount-e.captured)
	case ChangeCancel:
		e.state = psp.StateCancelled
	}
}

// lapsed reports whether r's outcome counts as unknown at now: marked so,
// or pending for longer than the lease.
func (sh *shard) lapsed(r *reservation, now int64) bool {
	return r.uncertain || now-r.since >= sh.lease
}

// maxSpare and maxNames bound what a shard keeps only to save allocations.
const (
	maxSpare = 64
	maxNames = 256
)

func (sh *shard) init(bound int, lease int64) {
	sh.lease = lease
	sh.index = make(map[digest]uint32)
	sh.slots = make([]entry, 1, 1+min(bound, 1024))
	sh.lru = slotlru.List{}
	sh.res = make(map[uint32][]reservation)
	sh.longCur = make(map[uint32]string)
	sh.names = make(map[[inlineCurrency + 1]byte]string)
	sh.bound = bound
}

// get returns the slot of id and its entry, without marking it used.
func (sh *shard) get(id digest) (uint32, *entry) {
	i, ok := sh.index[id]
	if !ok {
		return 0, nil
	}
	return i, &sh.slots[i]
}

// lookup returns the slot of id and its entry, marking it used. The entry
// pointer is valid until the next insert.
func (sh *shard) lookup(id digest) (uint32, *entry) {
	i, e := sh.get(id)
	if e != nil && !e.busy {
		sh.lru.MoveToFront(i)
	}
	return i, e
}

// insert adds an empty entry for id, evicting the least recently used idle
// entries beyond the bound. If every other entry has reservations in flight
// the shard grows past its bound rather than lose one of them.
func (sh *shard) insert(id digest) (uint32, *entry) {
	i := sh.lru.Alloc()
	if int(i) == len(sh.slots) {
		sh.slots = append(sh.slots, entry{})
	}
	sh.slots[i] = entry{id: id}
	sh.index[id] = i
	sh.lru.PushFront(i)
	for len(sh.index) > sh.bound {
		victim := sh.lru.Back()
		if victim == 0 || victim == i {
			break
		}
		sh.remove(victim)
	}
	return i, &sh.slots[i]
}

func (sh *shard) remove(i uint32) {
	e := &sh.slots[i]
	if !e.busy {
		sh.lru.Remove(i)
	}
	if rs, ok := sh.res[i]; ok {
		sh.inFlight -= int64(len(rs))
		delete(sh.res, i)
	}
	if e.curLen == longCurrency {
		delete(sh.longCur, i)
	}
	delete(sh.index, e.id)
	*e = entry{}
	sh.lru.Free(i)
}

func (sh *shard) setOrder(i uint32, o psp.Order) {
	e := &sh.slots[i]
	e.amount = o.Amount
	e.captured = o.Captured
	e.released = o.Released
	e.state = o.State
	e.single = o.SingleCapture
	e.expires = unixNano(o.ExpiresAt)
	if e.curLen == longCurrency {
		delete(sh.longCur, i)
	}
	if len(o.Currency) > inlineCurrency {
		e.curLen = longCurrency
		sh.longCur[i] = o.Currency
		return
	}
	e.curLen = uint8(len(o.Currency))
	copy(e.cur[:], o.Currency)
}

// currency returns the entry's currency, as a string made once per
// currency rather than once per read.
func (sh *shard) currency(i uint32) string {
	e := &sh.slots[i]
	if e.curLen == longCurrency {
		return sh.longCur[i]
	}
	var k [inlineCurrency + 1]byte
	k[0] = e.curLen
	copy(k[1:], e.cur[:e.curLen])
	if s, ok := sh.names[k]; ok {
		return s
	}
	s := string(e.cur[:e.curLen])
	if len(sh.names) < maxNames {
		sh.names[k] = s
	}
	return s
}

// snapshot returns the entry in slot i as the Store interface shows it at
// now: a reservation pending for longer than the lease counts as uncertain.
func (sh *shard) snapshot(i uint32, now int64) Entry {
	e := &sh.slots[i]
	s := Entry{Order: sh.order(i), Captures: int(e.captures), Unverified: e.unverified}
	rs := sh.res[i]
	for j := range rs {
		r := &rs[j]
		s.Reserved += r.amount
		if r.change != 0 {
			if s.Changes == 0 || r.limit < s.Limit {
				s.Limit = r.limit
			}
			s.Changes++
		}
		if sh.lapsed(r, now) {
			s.Uncertain++
		} else {
			s.Pending++
		}
	}
	return s
}

// order returns the order facts of slot i.
func (sh *shard) order(i uint32) psp.Order {
	e := &sh.slots[i]
	return psp.Order{
		Amount:        e.amount,
		Currency:      sh.currency(i),
		Captured:      e.captured,
		Released:      e.released,
		State:         e.state,
		SingleCapture: e.single,
		ExpiresAt:     fromUnixNano(e.expires),
	}
}

// adoptable returns the index of the uncertain (or lapsed) reservation of
// slot i that a retry with tag and amount takes over, or -1.
func (sh *shard) adoptable(i uint32, tag string, amount int64, now int64) int {
	if tag == "" {
		return -1
	}
	rs := sh.res[i]
	for j := range rs {
		if r := &rs[j]; r.change == 0 && sh.lapsed(r, now) && r.tag == tag && r.amount == amount {
			return j
		}
	}
	return -1
}

// find returns the index of the reservation with token in rs, or -1.
func find(rs []reservation, token string) int {
	for j := range rs {
		if rs[j].token == token {
			return j
		}
	}
	return -1
}

// hold adds a reservation to slot i, taking its entry out of the eviction
// list.
func (sh *shard) hold(i uint32, r reservation) {
	rs, ok := sh.res[i]
	if !ok {
		sh.lru.Remove(i)
		sh.slots[i].busy = true
		if n := len(sh.spare); n > 0 {
			rs = sh.spare[n-1]
			sh.spare = sh.spare[:n-1]
		}
	}
	sh.res[i] = append(rs, r)
	sh.inFlight++
}

// drop removes reservation j of rs, the reservations of slot i; an entry
// left without reservations becomes the most recently used idle entry.
func (sh *shard) drop(i uint32, rs []reservation, j int) {
	n := len(rs) - 1
	copy(rs[j:], rs[j+1:])
	rs[n] = reservation{}
	rs = rs[:n]
	sh.inFlight--
	if n > 0 {
		sh.res[i] = rs
		return
	}
	delete(sh.res, i)
	if len(sh.spare) < maxSpare {
		sh.spare = append(sh.spare, rs)
	}
	sh.slots[i].busy = false
	sh.lru.PushFront(i)
}

// dropUncertain removes every reservation of slot i uncertain or lapsed at
// now.
func (sh *shard) dropUncertain(i uint32, now int64) {
	rs := sh.res[i]
	for j := len(rs) - 1; j >= 0; j-- {
		if sh.lapsed(&rs[j], now) {
			sh.drop(i, rs, j)
			rs = rs[:len(rs)-1]
		}
	}
}

// commit settles reservation j of rs, the reservations of slot i, as
// captured.
func (sh *shard) commit(i uint32, rs []reservation, j int) {
	e := &sh.slots[i]
	e.captured += rs[j].amount
	if e.captures < math.MaxInt32 {
		e.captures++
	}
	sh.drop(i, rs, j)
	if e.single || e.captured >= e.amount {
		e.state = psp.StateCaptured
	}
}

// digest identifies an order in the memory store: the first 128 bits of the
// SHA-256 of its key. A fixed 16 bytes in place of a key string of some 50
// takes a third off the store's memory; two orders could share a digest only
// by a SHA-256 collision on 128 bits, which takes some 2^64 attempts to find
// on purpose and is never met by chance.
type digest [16]byte

// keyBuf sizes the stack buffer a key is encoded into; longer keys still
// work, at the cost of an allocation.
const keyBuf = 128

func keyDigest(k Key) digest {
	var buf [keyBuf]byte
	sum := sha256.Sum256(appendKey(buf[:0], k))
	return digest(sum[:len(digest{})])
}

// appendKey appends the encoding of k that is digested: the PSP and the
// merchant length-prefixed, so that no two keys share an encoding, then the
// order id.
func appendKey(dst []byte, k Key) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(k.PSP)))
	dst = append(dst, k.PSP...)
	dst = binary.AppendUvarint(dst, uint64(len(k.Merchant)))
	dst = append(dst, k.Merchant...)
	return append(dst, k.OrderID...)
}
