package slotlru

import (
	"reflect"
	"slices"
	"testing"

	"github.com/pspguard/pspguard/internal/noscan"
)

// order lists the slots from the back (least recently used) to the front.
func order(l *List) []uint32 {
	var out []uint32
	for i := l.Back(); i != 0; i = l.links[i].prev {
		out = append(out, i)
	}
	return out
}

func TestList(t *testing.T) {
	var l List
	if l.Back() != 0 {
		t.Fatal("an empty list has a back")
	}
	a, b, c := l.Alloc(), l.Alloc(), l.Alloc()
	if a == 0 || b == 0 || c == 0 || a == b || b == c || a == c {
		t.Fatalf("Alloc = %d, %d, %d; want distinct slots above 0", a, b, c)
	}
	for _, i := range []uint32{a, b, c} {
		l.PushFront(i)
	}
	if got := order(&l); !slices.Equal(got, []uint32{a, b, c}) {
		t.Fatalf("order %v, want %v", got, []uint32{a, b, c})
	}
	l.MoveToFront(a)
	if got := order(&l); !slices.Equal(got, []uint32{b, c, a}) {
		t.Fatalf("after MoveToFront(a): %v", got)
	}
	l.Remove(c)
	if got := order(&l); !slices.Equal(got, []uint32{b, a}) {
		t.Fatalf("after Remove(c): %v", got)
	}
	l.Free(c)
	if d := l.Alloc(); d != c {
		t.Fatalf("Alloc after Free(%d) = %d; want the freed slot", c, d)
	}
	l.Remove(b)
	l.Remove(a)
	if l.Back() != 0 {
		t.Fatalf("emptied list has back %d", l.Back())
	}
}

// A List's order and free slots hold no pointer per slot.
func TestListHoldsNoPointers(t *testing.T) {
	var l List
	for _, typ := range []reflect.Type{reflect.TypeOf(l.links).Elem(), reflect.TypeOf(l.free).Elem()} {
		if path, found := noscan.Pointer(typ); found {
			t.Errorf("%s holds a pointer at %s", typ, path)
		}
	}
}
