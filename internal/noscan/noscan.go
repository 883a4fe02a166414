// Package noscan checks that a type holds no pointers. The memory stores
// keep millions of entries in slices and maps of such types, which the
// garbage collector then never scans; their tests use it so that a change
// cannot quietly bring a pointer back.
package noscan

import "reflect"

// Pointer returns the path to the first pointer inside t ("" and false if
// there is none). Strings, slices, maps, channels, functions and
// interfaces hold pointers.
func Pointer(t reflect.Type) (path string, found bool) {
	return find(t, t.String())
}

func find(t reflect.Type, path string) (string, bool) {
	switch t.Kind() {
	case reflect.Pointer, reflect.String, reflect.Slice, reflect.Map, reflect.Chan,
		reflect.Func, reflect.Interface, reflect.UnsafePointer:
		return path, true
	case reflect.Array:
		if t.Len() == 0 {
			return "", false
		}
		return find(t.Elem(), path+"[]")
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if p, ok := find(f.Type, path+"."+f.Name); ok {
				return p, true
			}
		}
	}
	return "", false
}
