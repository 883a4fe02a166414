// Package slotlru keeps the slots of a store's slice in least recently
// used order and recycles the slots that are freed, with slot numbers in
// place of pointers: the garbage collector never has to look at it, however
// many slots there are. The stores keep their entries in a slice of their
// own, indexed by the slot numbers a List hands out.
package slotlru

// link is a slot's place in the order.
type link struct{ prev, next uint32 }

// List is an order over slot numbers from 1 (0 is never handed out) and
// the slots free for reuse. The zero List is empty and ready to use. A slot
// is in the order from PushFront until Remove.
type List struct {
	links []link // links[0] is the sentinel: its next is the front, its prev the back
	free  []uint32
}

// Alloc returns a slot number not in use, a freed one first. The slot is
// not in the order yet.
func (l *List) Alloc() uint32 {
	if len(l.links) == 0 {
		l.links = make([]link, 1, 16)
	}
	if n := len(l.free); n > 0 {
		i := l.free[n-1]
		l.free = l.free[:n-1]
		return i
	}
	l.links = append(l.links, link{})
	return uint32(len(l.links) - 1)
}

// Free gives slot i back for reuse. It must not be in the order.
func (l *List) Free(i uint32) { l.free = append(l.free, i) }

// PushFront puts slot i, not in the order, at its front.
func (l *List) PushFront(i uint32) {
	s := l.links
	s[i] = link{prev: 0, next: s[0].next}
	s[s[0].next].prev = i
	s[0].next = i
}

// Remove takes slot i out of the order.
func (l *List) Remove(i uint32) {
	s := l.links
	s[s[i].prev].next = s[i].next
	s[s[i].next].prev = s[i].prev
	s[i] = link{}
}

// MoveToFront marks slot i, in the order, as the most recently used.
func (l *List) MoveToFront(i uint32) {
	l.Remove(i)
	l.PushFront(i)
}

// Back returns the least recently used slot in the order, or 0 if the
// order is empty.
func (l *List) Back() uint32 {
	if len(l.links) == 0 {
		return 0
	}
	return l.links[0].prev
}
