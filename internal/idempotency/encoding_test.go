package idempotency

import (
	"bytes"
	"errors"
	"maps"
	"net/http"
	"slices"
	"testing"
)

func sameResult(a, b Result) bool {
	return a.Status == b.Status && bytes.Equal(a.Body, b.Body) &&
		len(a.Header) == len(b.Header) && maps.EqualFunc(a.Header, b.Header, slices.Equal)
}

var layouts = []struct {
	name string
	l    layout
}{{"redis", redisLayout}, {"memory", memoryLayout}}

func TestResultRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  Result
	}{
		{"capture", Result{Status: 201, Header: http.Header{
			"Capture-Id": {"4ba29b50-be7b-44f5-a492-113e6a865e22"},
			"Location":   {"https://api.klarna.com/ordermanagement/v1/orders/o/captures/4ba29b50-be7b-44f5-a492-113e6a865e22"},
		}}},
		{"every name of the memory table", Result{Status: 403, Header: http.Header{
			"Capture-Id": {"c"}, "Content-Type": {"application/json"}, "Klarna-Correlation-Id": {"k"},
			"Location": {"/l"}, "Order-Id": {"o"}, "Refund-Id": {"r"}, "X-Correlation-Id": {"x"},
		}, Body: []byte(`{"error_code":"CAPTURE_NOT_ALLOWED"}`)}},
		{"other names", Result{Status: 200, Header: http.Header{"X-Other": {"1", "2"}, "location": {"lower case is another name"}}}},
		{"empty name", Result{Status: 200, Header: http.Header{"": {"v"}}}},
		{"long name", Result{Status: 200, Header: http.Header{string(bytes.Repeat([]byte{'n'}, 300)): {"v"}}}},
		{"empty", Result{Status: 204}},
		{"no values", Result{Status: 200, Header: http.Header{"X": {}}}},
		{"empty value", Result{Status: 200, Header: http.Header{"X": {""}}, Body: []byte{0}}},
		{"long value", Result{Status: 999, Header: http.Header{"X": {string(bytes.Repeat([]byte{'v'}, 300))}}, Body: []byte("b")}},
		{"binary body", Result{Status: 999, Body: []byte{0, 0xff, '\n'}}},
		{"lowest status", Result{Status: 100}},
	} {
		for _, l := range layouts {
			t.Run(l.name+"/"+tc.name, func(t *testing.T) {
				enc, err := l.l.append([]byte("prefix"), tc.res)
				if err != nil {
					t.Fatal(err)
				}
				if string(enc[:6]) != "prefix" {
					t.Fatalf("append overwrote dst: %q", enc)
				}
				if n := len(enc) - 6; n > plainLen(tc.res) || l.l == nil && n != plainLen(tc.res) {
					t.Errorf("encoded %d bytes, plainLen = %d", n, plainLen(tc.res))
				}
				got, err := l.l.parse(string(enc[6:]))
				if err != nil {
					t.Fatal(err)
				}
				if !sameResult(got, tc.res) {
					t.Errorf("round trip = %+v, want %+v", got, tc.res)
				}
				if got.Header == nil {
					t.Error("parsed header is nil; callers may set headers on a replay")
				}
			})
		}
	}
}

// Redis records keep the layout every gateway version reads: names
// spelled out as length and text.
func TestRedisLayoutSpellsNamesOut(t *testing.T) {
	enc, err := redisLayout.append(nil, Result{Status: 201, Header: http.Header{"Capture-Id": {"c"}}, Body: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	if want := "\x00\xc9\x01\x0aCapture-Id\x01\x01c{}"; string(enc) != want {
		t.Errorf("encoded %q, want %q", enc, want)
	}
}

// In memory each name of the table takes one byte instead of its length
// and its text.
func TestMemoryLayoutAbbreviatesKnownNames(t *testing.T) {
	res := Result{Status: 201, Header: http.Header{"Capture-Id": {"c"}, "Location": {"/l"}}}
	plain, _ := redisLayout.append(nil, res)
	compact, err := memoryLayout.append(nil, res)
	if err != nil {
		t.Fatal(err)
	}
	if saved := len(plain) - len(compact); saved != len("Capture-Id")+len("Location") {
		t.Errorf("memory encoding is %d bytes shorter, want %d", saved, len("Capture-Id")+len("Location"))
	}
}

func TestResultStatusRange(t *testing.T) {
	for _, l := range layouts {
		for _, status := range []int{-1, 0, 99, 1000, 70000} {
			if _, err := l.l.append(nil, Result{Status: status}); err == nil {
				t.Errorf("%s: append accepted status %d", l.name, status)
			}
		}
	}
}

func TestParseCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    layout
		enc  string
	}{
		{"empty", redisLayout, ""},
		{"short", redisLayout, "\x00"},
		{"status 0", redisLayout, "\x00\x00\x00"},
		{"count beyond input", redisLayout, "\x00\xc9\x05\x01a\x00"},
		{"name beyond input", redisLayout, "\x00\xc9\x01\x09ab"},
		{"values beyond input", redisLayout, "\x00\xc9\x01\x01a\x09"},
		{"value beyond input", redisLayout, "\x00\xc9\x01\x01a\x01\x05ab"},
		{"unterminated varint", redisLayout, "\x00\xc9\x80"},
		{"varint overflow", redisLayout, "\x00\xc9\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02"},
		{"memory: empty", memoryLayout, ""},
		{"memory: status 0", memoryLayout, "\x00\x00\x00"},
		{"memory: count beyond input", memoryLayout, "\x00\xc9\x05\x03\x00"},
		{"memory: literal name beyond input", memoryLayout, "\x00\xc9\x01\x10ab"},
		{"memory: values beyond input", memoryLayout, "\x00\xc9\x01\x03\x09"},
		{"memory: value beyond input", memoryLayout, "\x00\xc9\x01\x03\x01\x05ab"},
		{"memory: unterminated varint", memoryLayout, "\x00\xc9\x01\x80"},
		{"memory: varint overflow", memoryLayout, "\x00\xc9\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r, err := tc.l.parse(tc.enc); !errors.Is(err, errCorrupt) {
				t.Errorf("parse(%q) = %+v, %v; want errCorrupt", tc.enc, r, err)
			}
		})
	}
}

// A replay's headers share one array of values. A caller that adds a value
// to one header must not change another.
func TestParseHeadersApart(t *testing.T) {
	res := Result{Status: 201, Header: http.Header{
		"Capture-Id": {"c-1"}, "Location": {"/a", "/b"}, "X-Other": {"o"},
	}}
	for _, l := range layouts {
		enc, err := l.l.append(nil, res)
		if err != nil {
			t.Fatal(err)
		}
		got, err := l.l.parse(string(enc))
		if err != nil {
			t.Fatal(err)
		}
		for name := range got.Header {
			got.Header[name] = append(got.Header[name], "added to "+name)
		}
		for name, values := range res.Header {
			want := append(slices.Clone(values), "added to "+name)
			if !slices.Equal(got.Header[name], want) {
				t.Errorf("%s: %s = %q, want %q", l.name, name, got.Header[name], want)
			}
		}
	}
}

// FuzzParseResult checks, for both layouts, that any stored bytes either
// parse into a result that encodes back to a result equal to it, or are
// refused; never a panic.
func FuzzParseResult(f *testing.F) {
	res := Result{Status: 201, Header: http.Header{"Capture-Id": {"c"}, "Location": {"/l"}}}
	for _, l := range layouts {
		enc, _ := l.l.append(nil, res)
		f.Add(string(enc))
	}
	f.Add("\x00\xc9\x00")
	f.Add("\x01\x93\x01\x0cContent-Type\x01\x10application/json{}")
	f.Add("\x01\x93\x02\x01\x01\x10application/json\x0aX-A\x02\x011\x012{}")
	f.Fuzz(func(t *testing.T, s string) {
		for _, l := range layouts {
			r, err := l.l.parse(s)
			if err != nil {
				continue
			}
			enc, err := l.l.append(nil, r)
			if err != nil {
				t.Fatalf("%s: parsed %+v does not encode: %v", l.name, r, err)
			}
			again, err := l.l.parse(string(enc))
			if err != nil || !sameResult(again, r) {
				t.Fatalf("%s: re-encoded %+v parses as %+v, %v", l.name, r, again, err)
			}
		}
	})
}
