package rackform

import (
	"encoding/json"
	"testing"
)

// The readings are Rack 3's (Rack::Utils.parse_nested_query), as its own
// specs (test/spec_utils.rb) state them.
func TestParse(t *testing.T) {
	for _, tt := range []struct{ qs, seps, want string }{
		{"a=1&a=2", "&", `{"a":"2"}`},
		{"a[]=1&a[]=2", "&", `{"a":["1","2"]}`},
		{"a[b]=2&a=1", "&", `{"a":"1"}`},
		{"a[b]c=1", "&", `{"a":{"b":{"c":"1"}}}`},
		{"a[=1", "&", `{"a[":"1"}`},
		{"a]b=1", "&", `{"a]b":"1"}`},
		{"[a]=1", "&", `{"[a]":"1"}`},
		{"a%5Bb%5D=1", "&", `{"a":{"b":"1"}}`},
		{"a=1;b=2", "&", `{"a":"1;b=2"}`},
		{"a=1;b=2", "&;", `{"a":"1","b":"2"}`},
		{"a=1&  b=2", "&", `{"a":"1","b":"2"}`},
		{"a=x+y%20z&b", "&", `{"a":"x y z","b":null}`},
		{"a=%zz", "&", `{"a":"%zz"}`},
		{"=1&&a=2&", "&", `{"a":"2"}`},
		{"x[][y]=1&x[][z]=2", "&", `{"x":[{"y":"1","z":"2"}]}`},
		{"x[][y]=1&x[][y]=2", "&", `{"x":[{"y":"1"},{"y":"2"}]}`},
		{"a=b=c", "&", `{"a":"b=c"}`},
	} {
		got, err := Parse(tt.qs, tt.seps)
		if err != nil {
			t.Errorf("%q: %v", tt.qs, err)
			continue
		}
		b, _ := json.Marshal(plain(got))
		if string(b) != tt.want {
			t.Errorf("%q (%q) = %s, want %s", tt.qs, tt.seps, b, tt.want)
		}
	}
	for _, qs := range []string{"a=1&a[b]=2", "a[b]=1&a[b][]=2", "a[]=1&a[b]=2"} {
		if got, err := Parse(qs, "&"); err == nil {
			t.Errorf("%q = %v, want Rack's ParameterTypeError", qs, got)
		}
	}
}

// plain turns *Array into slices for encoding.
func plain(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := map[string]any{}
		for k, e := range v {
			m[k] = plain(e)
		}
		return m
	case *Array:
		s := []any{}
		for _, e := range v.Elems {
			s = append(s, plain(e))
		}
		return s
	}
	return v
}

func TestLookup(t *testing.T) {
	p, _ := Parse("payment_method_options[card][capture_method]=manual&amount=5", "&")
	if v, ok := String(p, "payment_method_options", "card", "capture_method"); !ok || v != "manual" {
		t.Errorf("nested lookup = %q, %v", v, ok)
	}
	if _, ok := String(p, "amount", "x"); ok {
		t.Error("lookup below a value found something")
	}
}
