package jsonstrict

import (
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// Value is one value of a checked document, found by member names from the
// top-level object. Its getters are exact: they never coerce ("true" is not
// a boolean, 7000.0 is not an integer), and their errors name the value's
// path the way the merchant wrote it.
//
// Lookups use gjson on the checked bytes; gjson compares unescaped names,
// as Check does. Check guarantees that member names are unique, even after
// unescaping and regardless of letter case. A lookup also refuses a member
// whose name differs from the wanted one only by letter case, '_' or '-'
// ("Auto_Capture", "autoCapture" for auto_capture): a PSP that binds names
// loosely would read it as the wanted member, a strict one would ignore it.
type Value struct {
	r   gjson.Result
	err *Error // a lookup on the way to this value was ambiguous
	// The path is kept in parts and joined only when an error needs it:
	// prefix, then the element index (if index >= 0), then name.
	prefix string
	index  int
	name   string
}

// Root returns the top-level value of a document that passed Check. It
// copies data once, so the values (and the strings they return) stay valid
// when the caller reuses data.
func Root(data []byte) Value {
	return Value{r: gjson.Parse(string(data)), index: -1}
}

// RootString is Root for a document held in a string, such as a JSON
// document nested in a string member.
func RootString(doc string) Value {
	return Value{r: gjson.Parse(doc), index: -1}
}

// Get returns the member name of an object value. The result does not exist
// if v is not an object or has no such member.
func (v Value) Get(name string) Value {
	var out [1]Value
	v.Fields([]string{name}, out[:])
	return out[0]
}

// Fields looks up several members of an object value in one pass over it:
// out[i] is what Get(names[i]) returns. out must be at least as long as
// names.
func (v Value) Fields(names []string, out []Value) {
	for i, name := range names {
		out[i] = v.child(name)
	}
	if v.err != nil || !v.r.IsObject() {
		return
	}
	v.r.ForEach(func(k, r gjson.Result) bool {
		for i, name := range names {
			switch {
			case k.Str == name:
				out[i].r = r
			case out[i].err == nil && looseEqual(k.Str, name):
				out[i].err = out[i].misspelled(k.Str)
			}
		}
		return true
	})
}

// child is the member name of v, not yet looked up.
func (v Value) child(name string) Value {
	c := Value{index: v.index, prefix: v.prefix, name: name, err: v.err}
	if v.name != "" {
		c.prefix, c.index = v.Path(), -1
	}
	return c
}

// misspelled is the error for a member spelled wrote where v's name was
// wanted.
func (v Value) misspelled(wrote string) *Error {
	w := v
	w.name = wrote
	msg := func(wrote string) string {
		return "member " + wrote + " must be spelled " + v.Path() +
			": a PSP that matches member names loosely would read it as " + v.Path()
	}
	return &Error{Path: w.Path(), Msg: msg(w.Path()), logMsg: msg(logPath(w.Path()))}
}

// Lookup follows a dot-separated list of member names ("options.auto_capture").
func (v Value) Lookup(path string) Value {
	for {
		name, rest, more := strings.Cut(path, ".")
		v = v.Get(name)
		if !more {
			return v
		}
		path = rest
	}
}

// Exists reports whether the value is present (null is present). A value
// whose lookup was refused counts as present: its getters return the error.
func (v Value) Exists() bool { return v.err != nil || v.r.Exists() }

// Err is the error of an ambiguous lookup on the way to v, if any.
func (v Value) Err() error {
	if v.err != nil {
		return v.err
	}
	return nil
}

// IsNull reports whether the value is the literal null.
func (v Value) IsNull() bool { return v.r.Type == gjson.Null && v.r.Exists() }

// Path is the value's path as the merchant wrote it: "options.auto_capture",
// "order_lines[2].total_amount"; "" for the top-level object.
func (v Value) Path() string {
	if v.index < 0 && v.prefix == "" {
		if v.name == "" {
			return ""
		}
		if plainName(v.name) {
			return v.name
		}
	}
	b := make([]byte, 0, len(v.prefix)+len(v.name)+8)
	b = append(b, v.prefix...)
	if v.index >= 0 {
		b = appendIndex(b, v.index)
	}
	if v.name != "" {
		b = appendName(b, v.name)
	}
	return string(b)
}

// Bool returns an exact boolean: only the literals true and false.
func (v Value) Bool() (val, present bool, err error) {
	if v.err != nil {
		return false, true, v.err
	}
	switch v.r.Type {
	case gjson.True:
		return true, true, nil
	case gjson.False:
		return false, true, nil
	}
	if !v.Exists() {
		return false, false, nil
	}
	return false, true, v.typeError("a boolean (true or false)")
}

// Int returns an exact integer between min and max: the literal must be a
// plain integer (-?(0|[1-9][0-9]*)) that fits in int64. 7000.0, 7e3, "7000"
// and 9223372036854775808 are all refused.
func (v Value) Int(min, max int64) (val int64, present bool, err error) {
	if !v.Exists() {
		return 0, false, nil
	}
	if v.err != nil {
		return 0, true, v.err
	}
	want := func() string {
		return "an integer between " + strconv.FormatInt(min, 10) + " and " + strconv.FormatInt(max, 10)
	}
	if v.r.Type != gjson.Number {
		return 0, true, v.typeError(want())
	}
	raw := v.r.Raw
	if !integerLiteral(raw) {
		return 0, true, v.errorf(" must be " + want() + " (a whole number without a fraction or exponent)")
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < min || n > max {
		return 0, true, v.errorf(" must be " + want())
	}
	return n, true, nil
}

// integerLiteral reports whether raw is -?(0|[1-9][0-9]*).
func integerLiteral(raw string) bool {
	if raw != "" && raw[0] == '-' {
		raw = raw[1:]
	}
	if raw == "" || raw[0] == '0' && len(raw) > 1 {
		return false
	}
	for i := 0; i < len(raw); i++ {
		if !isDigit(raw[i]) {
			return false
		}
	}
	return true
}

// Str returns a string value, unescaped.
func (v Value) Str() (val string, present bool, err error) {
	if !v.Exists() {
		return "", false, nil
	}
	if v.err != nil {
		return "", true, v.err
	}
	if v.r.Type != gjson.String {
		return "", true, v.typeError("a string")
	}
	return v.r.Str, true, nil
}

// Object reports whether the value is present and refuses anything but an
// object.
func (v Value) Object() (present bool, err error) {
	if !v.Exists() {
		return false, nil
	}
	if v.err != nil {
		return true, v.err
	}
	if !v.r.IsObject() {
		return true, v.typeError("an object")
	}
	return true, nil
}

// Array calls fn for each element of an array value, in order, stopping at
// the first error. An array of more than max elements is refused before fn
// sees element max.
func (v Value) Array(max int, fn func(elem Value) error) (present bool, err error) {
	if !v.Exists() {
		return false, nil
	}
	if v.err != nil {
		return true, v.err
	}
	if !v.r.IsArray() {
		return true, v.typeError("an array")
	}
	prefix := v.Path()
	i := 0
	v.r.ForEach(func(_, r gjson.Result) bool {
		if i == max {
			err = pathError(prefix, " must have at most "+strconv.Itoa(max)+" entries")
			return false
		}
		err = fn(Value{r: r, prefix: prefix, index: i})
		i++
		return err == nil
	})
	return true, err
}

// Members calls fn for each member of an object value, in document order.
func (v Value) Members(fn func(name string, val Value) error) (present bool, err error) {
	if present, err := v.Object(); !present || err != nil {
		return present, err
	}
	prefix := v.Path()
	v.r.ForEach(func(k, r gjson.Result) bool {
		err = fn(k.Str, Value{r: r, prefix: prefix, index: -1, name: k.Str})
		return err == nil
	})
	return true, err
}

// Empty reports whether the value is null, "", [] or {}.
func (v Value) Empty() bool {
	switch v.r.Type {
	case gjson.Null:
		return true
	case gjson.String:
		return v.r.Str == ""
	case gjson.JSON:
		empty := true
		v.r.ForEach(func(_, _ gjson.Result) bool {
			empty = false
			return false
		})
		return empty
	}
	return false
}

func (v Value) typeError(want string) *Error {
	return v.errorf(" must be " + want + ", not " + v.kind())
}

// errorf is an error about v: its path followed by what is wrong.
func (v Value) errorf(what string) *Error { return pathError(v.Path(), what) }

func pathError(path, what string) *Error {
	return &Error{Path: path, Msg: path + what, logMsg: logPath(path) + what}
}

// kind names the JSON type of a value for a message.
func (v Value) kind() string {
	switch v.r.Type {
	case gjson.Null:
		return "null"
	case gjson.True, gjson.False:
		return "a boolean"
	case gjson.Number:
		return "a number"
	case gjson.String:
		return "a string"
	}
	if v.r.IsArray() {
		return "an array"
	}
	return "an object"
}

// Bool reads an exact boolean at a dot-separated path of a checked document.
func Bool(data []byte, path string) (v, present bool, err error) {
	return Root(data).Lookup(path).Bool()
}

// Int reads an exact integer between min and max at a dot-separated path of
// a checked document.
func Int(data []byte, path string, min, max int64) (v int64, present bool, err error) {
	return Root(data).Lookup(path).Int(min, max)
}

// String reads a string at a dot-separated path of a checked document.
func String(data []byte, path string) (v string, present bool, err error) {
	return Root(data).Lookup(path).Str()
}
