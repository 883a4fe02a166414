package pspsim

import (
	"strings"
	"testing"
)

func TestObjectInteger(t *testing.T) {
	tests := []struct {
		raw     string
		n       int64
		present bool
		err     string
	}{
		{`6000`, 6000, true, ""},
		{`-0`, 0, true, ""},
		{` 7 `, 7, true, ""},
		{`null`, 0, false, "is required"},
		{`6000.0`, 0, true, "must be an integer"},
		{`6e3`, 0, true, "must be an integer"},
		{`"6000"`, 0, true, "must be an integer"},
		{`9223372036854775808`, 0, true, "must be an integer"},
		{`10`, 0, true, "must be between 0 and 9"},
		{`-1`, 0, true, "must be between 0 and 9"},
	}
	for _, tt := range tests {
		o, err := parseObject([]byte(`{"n":` + tt.raw + `}`))
		if err != nil {
			t.Fatal(err)
		}
		hi := int64(1 << 62)
		if strings.Contains(tt.err, "between") {
			hi = 9
		}
		n, present, err := o.integer("n", 0, hi, true)
		if n != tt.n || present != tt.present || (err == nil) != (tt.err == "") || err != nil && !strings.HasSuffix(err.Error(), "n: "+tt.err) {
			t.Errorf("%s: %d, %v, %v", tt.raw, n, present, err)
		}
	}
}

func TestObjectMembers(t *testing.T) {
	o, err := parseObject([]byte(`{"s":"x","e":"","b":false,"a":[1,2],"o":{"k":1},"n":null,"num":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := o.text("s", true); s != "x" || err != nil {
		t.Errorf("text: %q %v", s, err)
	}
	if _, err := o.text("e", true); err == nil {
		t.Error("an empty required string was accepted")
	}
	if s, err := o.text("n", false); s != "" || err != nil {
		t.Errorf("null text: %q %v", s, err)
	}
	if _, err := o.text("num", false); err == nil {
		t.Error("a number was accepted as a string")
	}
	if b, err := o.boolean("b"); b || err != nil {
		t.Errorf("boolean: %v %v", b, err)
	}
	if _, err := o.boolean("s"); err == nil {
		t.Error("a string was accepted as a boolean")
	}
	if a, err := o.array("a", 2, true); len(a) != 2 || err != nil {
		t.Errorf("array: %v %v", a, err)
	}
	if _, err := o.array("a", 1, true); err == nil {
		t.Error("an array over its limit was accepted")
	}
	if _, err := o.array("o", 5, true); err == nil {
		t.Error("an object was accepted as an array")
	}
	if m, err := o.member("o"); m == nil || err != nil {
		t.Errorf("member: %v %v", m, err)
	}
	if m, err := o.member("n"); m != nil || err != nil {
		t.Errorf("null member: %v %v", m, err)
	}
	if _, err := o.member("a"); err == nil {
		t.Error("an array was accepted as an object")
	}
	for _, body := range []string{``, ` `, `null`, `[]`, `"x"`, `{} {}`} {
		if _, err := parseObject([]byte(body)); err == nil {
			t.Errorf("parseObject(%q) accepted", body)
		}
	}
	if o, err := parseOptionalObject([]byte("  ")); err != nil || len(o) != 0 {
		t.Errorf("empty optional body: %v %v", o, err)
	}
}
