package noscan

import (
	"reflect"
	"testing"
)

func TestPointer(t *testing.T) {
	type flat struct {
		a int64
		b [4]uint32
		c struct{ d bool }
	}
	type nested struct {
		a int64
		b struct{ s []byte }
	}
	for _, tc := range []struct {
		v    any
		path string
	}{
		{flat{}, ""},
		{[0]*int{}, ""},
		{nested{}, "noscan.nested.b.s"},
		{[2]string{}, "[2]string[]"},
		{map[int]int{}, "map[int]int"},
		{new(int), "*int"},
	} {
		path, found := Pointer(reflect.TypeOf(tc.v))
		if path != tc.path || found != (tc.path != "") {
			t.Errorf("Pointer(%T) = %q, %v; want %q", tc.v, path, found, tc.path)
		}
	}
}
