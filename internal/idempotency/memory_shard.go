package idempotency

import (
	"sync"
	"time"

	"github.com/pspguard/pspguard/internal/slotlru"
)

// memShard is one lock's worth of results: slots in a slice, an index from
// key to slot, and the results' bytes in blocks of large pages. None of
// them holds a pointer the garbage collector would follow per result; the
// claims in flight, few at any time, are kept apart with their tokens.
type memShard struct {
	mu       sync.Mutex
	index    map[uint64]uint32 // memoryKey.index -> slot
	slots    []resultSlot      // by slot number; slot 0 is unused
	lru      slotlru.List      // the results, and the free slots
	classes  [len(blockSizes)]blockClass
	big      map[uint32][]byte // results larger than the largest block
	inflight map[memoryKey]claim
	capacity int
}

// resultSlot is one completed result.
type resultSlot struct {
	key     uint64 // memoryKey.index of the key the result belongs to
	check   uint64 // memoryKey.check of that key
	expires int64  // Unix nanoseconds (of the store's clock) from which it is no longer replayed
	block   uint32 // the block within its class
	size    uint16 // bytes stored in the block (the fingerprint, then the encoded result); 0 in bigClass
	class   uint8  // index in blockSizes, or bigClass
}

// blockSizes is the ladder of block sizes, in steps of about an eighth, so
// a result wastes little of its block. A Klarna capture answer (201,
// Capture-Id and Location) takes about 200 bytes.
var blockSizes = [...]uint32{
	64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 448, 512,
	576, 640, 768, 896, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096,
}

// bigClass marks a result kept in memShard.big.
const bigClass = 0xff

// pageSize is the size of the pages blocks are cut from. A page is an
// object the garbage collector marks and sweeps, so pages are large: a
// million capture answers take about 3,500 of them, and a collection with
// them all takes a millisecond on two cores (16 KiB pages made it three).
// The price is a last page only partly used per block size in use in a
// shard; PSP answers come in a few sizes.
const pageSize = 64 << 10

// blockClass hands out the blocks of one size.
type blockClass struct {
	pages [][]byte
	free  []uint32
	used  uint32 // blocks cut from the pages so far
}

func (sh *memShard) init(capacity int) {
	sh.index = make(map[uint64]uint32)
	sh.slots = make([]resultSlot, 1, 1+min(capacity, 1024))
	sh.lru = slotlru.List{}
	sh.big = make(map[uint32][]byte)
	sh.inflight = make(map[memoryKey]claim)
	sh.capacity = capacity
}

// release drops everything the shard holds.
func (sh *memShard) release() {
	sh.index, sh.slots, sh.big, sh.inflight = nil, nil, nil, nil
	sh.lru = slotlru.List{}
	sh.classes = [len(blockSizes)]blockClass{}
}

// result returns the slot of the live result stored for d and marks it
// recently used; an expired one is dropped.
func (sh *memShard) result(d memoryKey, now time.Time) (uint32, bool) {
	i, ok := sh.index[d.index()]
	if !ok || sh.slots[i].check != d.check() {
		return 0, false
	}
	if now.UnixNano() >= sh.slots[i].expires {
		sh.remove(i)
		return 0, false
	}
	sh.lru.MoveToFront(i)
	return i, true
}

// bytes returns what slot i stores; it is valid while the lock is held.
func (sh *memShard) bytes(i uint32) []byte {
	s := &sh.slots[i]
	if s.class == bigClass {
		return sh.big[i]
	}
	size := blockSizes[s.class]
	perPage := pageSize / size
	page := sh.classes[s.class].pages[s.block/perPage]
	off := (s.block % perPage) * size
	return page[off : off+uint32(s.size)]
}

// store keeps data as the result of d until expires, in place of any
// result under d's index, and evicts the least recently used results
// beyond the shard's capacity.
func (sh *memShard) store(d memoryKey, expires int64, data []byte) {
	if i, ok := sh.index[d.index()]; ok {
		sh.remove(i)
	}
	i := sh.lru.Alloc()
	if int(i) == len(sh.slots) {
		sh.slots = append(sh.slots, resultSlot{})
	}
	s := &sh.slots[i]
	*s = resultSlot{key: d.index(), check: d.check(), expires: expires, class: bigClass}
	for c, size := range blockSizes {
		if uint32(len(data)) <= size {
			s.class, s.block, s.size = uint8(c), sh.classes[c].alloc(size), uint16(len(data))
			break
		}
	}
	if s.class == bigClass {
		sh.big[i] = append([]byte(nil), data...)
	} else {
		copy(sh.bytes(i), data)
	}
	sh.index[d.index()] = i
	sh.lru.PushFront(i)
	for len(sh.index) > sh.capacity {
		victim := sh.lru.Back()
		if victim == 0 || victim == i {
			break
		}
		sh.remove(victim)
	}
}

// alloc returns a free block of size bytes.
func (c *blockClass) alloc(size uint32) uint32 {
	if n := len(c.free); n > 0 {
		b := c.free[n-1]
		c.free = c.free[:n-1]
		return b
	}
	perPage := pageSize / size
	if c.used/perPage == uint32(len(c.pages)) {
		c.pages = append(c.pages, make([]byte, perPage*size))
	}
	c.used++
	return c.used - 1
}

// remove drops the result in slot i.
func (sh *memShard) remove(i uint32) {
	s := &sh.slots[i]
	if s.class == bigClass {
		delete(sh.big, i)
	} else {
		c := &sh.classes[s.class]
		c.free = append(c.free, s.block)
		if len(c.free) == int(c.used) {
			// The last result of this size is gone: its pages go back to
			// the heap, so a burst of results of one size does not hold
			// memory once they have expired or been evicted.
			*c = blockClass{}
		}
	}
	sh.lru.Remove(i)
	delete(sh.index, s.key)
	*s = resultSlot{}
	sh.lru.Free(i)
}

// expire drops expired results from the least recently used end, up to
// limit of them (no limit when negative), and stops at the first live one.
func (sh *memShard) expire(now time.Time, limit int) {
	t := now.UnixNano()
	for ; limit != 0; limit-- {
		i := sh.lru.Back()
		if i == 0 || t < sh.slots[i].expires {
			return
		}
		sh.remove(i)
	}
}

// sweep drops lapsed claims.
func (sh *memShard) sweep(now time.Time) {
	for d, c := range sh.inflight {
		if !now.Before(c.expires) {
			delete(sh.inflight, d)
		}
	}
}

// held returns the claim on d if token holds it.
func (sh *memShard) held(d memoryKey, token string, now time.Time) (claim, bool) {
	c, ok := sh.inflight[d]
	if !ok || c.token != token {
		return claim{}, false
	}
	if !now.Before(c.expires) {
		delete(sh.inflight, d)
		return claim{}, false
	}
	return c, true
}
