package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"sync"

	"github.com/pspguard/pspguard/internal/psp"
)

// entry is an order as the memory store holds it: a million of them must
// fit in well under 256 MiB, so it keeps the key's digest rather than the
// key, the expiry as nanoseconds, and derives the in-flight counters from
// its reservations instead of storing them.
type entry struct {
	id         digest
	prev, next *entry // LRU links; nil while the entry has reservations in flight
	amount     int64
	captured   int64
	released   int64
	expires    int64 // unixNano of the order's ExpiresAt
	currency   string
	res        []reservation
	captures   int32
	state      psp.OrderState
	single     bool
}

// reservation is one capture in flight on an entry.
type reservation struct {
	token     string
	tag       string
	amount    int64
	uncertain bool
}

func (e *entry) setOrder(o psp.Order) {
	e.amount = o.Amount
	e.currency = o.Currency
	e.captured = o.Captured
	e.released = o.Released
	e.state = o.State
	e.single = o.SingleCapture
	e.expires = unixNano(o.ExpiresAt)
}

// snapshot returns the entry as the Store interface shows it.
func (e *entry) snapshot() Entry {
	s := Entry{
		Order: psp.Order{
			Amount:        e.amount,
			Currency:      e.currency,
			Captured:      e.captured,
			Released:      e.released,
			State:         e.state,
			SingleCapture: e.single,
			ExpiresAt:     fromUnixNano(e.expires),
		},
		Captures: int(e.captures),
	}
	for _, r := range e.res {
		s.Reserved += r.amount
		if r.uncertain {
			s.Uncertain++
		} else {
			s.Pending++
		}
	}
	return s
}

// adoptable returns the index of the uncertain reservation a retry with tag
// and amount takes over, or -1.
func (e *entry) adoptable(tag string, amount int64) int {
	if tag == "" {
		return -1
	}
	for i, r := range e.res {
		if r.uncertain && r.tag == tag && r.amount == amount {
			return i
		}
	}
	return -1
}

func (e *entry) find(token string) int {
	for i, r := range e.res {
		if r.token == token {
			return i
		}
	}
	return -1
}

// shard is one lock's worth of entries. Entries without reservations are
// kept in LRU order for eviction; entries with reservations are not in the
// list at all, which is what keeps them from being evicted: dropping one
// would forget the amount in flight and allow an over-capture.
type shard struct {
	mu       sync.Mutex
	entries  map[digest]*entry
	idle     entry // sentinel: idle.next is the most recently used idle entry, idle.prev the least
	bound    int
	inFlight int64
}

func (sh *shard) init(bound int) {
	sh.entries = make(map[digest]*entry)
	sh.idle.next = &sh.idle
	sh.idle.prev = &sh.idle
	sh.bound = bound
}

// lookup returns the entry for id, marking it used.
func (sh *shard) lookup(id digest) *entry {
	e := sh.entries[id]
	if e != nil && e.next != nil {
		sh.unlink(e)
		sh.pushFront(e)
	}
	return e
}

// insert adds an empty entry for id, evicting the least recently used idle
// entries beyond the bound. If every other entry has reservations in flight
// the shard grows past its bound rather than lose one of them.
func (sh *shard) insert(id digest) *entry {
	e := &entry{id: id}
	sh.entries[id] = e
	sh.pushFront(e)
	for len(sh.entries) > sh.bound {
		victim := sh.idle.prev
		if victim == &sh.idle || victim == e {
			break
		}
		sh.unlink(victim)
		delete(sh.entries, victim.id)
	}
	return e
}

func (sh *shard) remove(e *entry) {
	if e.next != nil {
		sh.unlink(e)
	}
	sh.inFlight -= int64(len(e.res))
	delete(sh.entries, e.id)
}

// hold adds a reservation to e, taking e out of the eviction list.
func (sh *shard) hold(e *entry, r reservation) {
	if len(e.res) == 0 {
		sh.unlink(e)
	}
	e.res = append(e.res, r)
	sh.inFlight++
}

// drop removes e's reservation i; an entry left without reservations
// becomes the most recently used idle entry. The slice keeps its capacity,
// so the order's next capture does not allocate.
func (sh *shard) drop(e *entry, i int) {
	n := len(e.res) - 1
	copy(e.res[i:], e.res[i+1:])
	e.res[n] = reservation{}
	e.res = e.res[:n]
	sh.inFlight--
	if n == 0 {
		sh.pushFront(e)
	}
}

// dropUncertain removes every uncertain reservation of e.
func (sh *shard) dropUncertain(e *entry) {
	for i := len(e.res) - 1; i >= 0; i-- {
		if e.res[i].uncertain {
			sh.drop(e, i)
		}
	}
}

func (sh *shard) commit(e *entry, i int) {
	e.captured += e.res[i].amount
	if e.captures < math.MaxInt32 {
		e.captures++
	}
	sh.drop(e, i)
	if e.single || e.captured >= e.amount {
		e.state = psp.StateCaptured
	}
}

func (sh *shard) pushFront(e *entry) {
	e.prev = &sh.idle
	e.next = sh.idle.next
	e.next.prev = e
	sh.idle.next = e
}

func (sh *shard) unlink(e *entry) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
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
