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

func TestResultRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  Result
	}{
		{"capture", Result{Status: 201, Header: http.Header{
			"Capture-Id": {"4ba29b50-be7b-44f5-a492-113e6a865e22"},
			"Location":   {"https://api.klarna.com/ordermanagement/v1/orders/o/captures/4ba29b50-be7b-44f5-a492-113e6a865e22"},
		}}},
		{"empty", Result{Status: 204}},
		{"no values", Result{Status: 200, Header: http.Header{"X": {}}}},
		{"empty value", Result{Status: 200, Header: http.Header{"X": {""}}, Body: []byte{0}}},
		{"long value", Result{Status: 999, Header: http.Header{"X": {string(bytes.Repeat([]byte{'v'}, 300))}}, Body: []byte("b")}},
		{"lowest status", Result{Status: 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := appendResult([]byte("prefix"), tc.res)
			if err != nil {
				t.Fatal(err)
			}
			if string(enc[:6]) != "prefix" {
				t.Fatalf("appendResult overwrote dst: %q", enc)
			}
			if n := len(enc) - 6; n != encodedLen(tc.res) {
				t.Errorf("encoded %d bytes, encodedLen = %d", n, encodedLen(tc.res))
			}
			got, err := parseResult(string(enc[6:]))
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

func TestResultStatusRange(t *testing.T) {
	for _, status := range []int{-1, 0, 99, 1000, 70000} {
		if _, err := appendResult(nil, Result{Status: status}); err == nil {
			t.Errorf("appendResult accepted status %d", status)
		}
	}
}

func TestParseCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name string
		enc  string
	}{
		{"empty", ""},
		{"short", "\x00"},
		{"status 0", "\x00\x00\x00"},
		{"count beyond input", "\x00\xc9\x05\x01a\x00"},
		{"name beyond input", "\x00\xc9\x01\x09ab"},
		{"values beyond input", "\x00\xc9\x01\x01a\x09"},
		{"value beyond input", "\x00\xc9\x01\x01a\x01\x05ab"},
		{"unterminated varint", "\x00\xc9\x80"},
		{"varint overflow", "\x00\xc9\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r, err := parseResult(tc.enc); !errors.Is(err, errCorrupt) {
				t.Errorf("parseResult(%q) = %+v, %v; want errCorrupt", tc.enc, r, err)
			}
		})
	}
}

// FuzzParseResult checks that any stored bytes either parse into a result
// that encodes back to a result equal to it, or are refused; never a panic.
func FuzzParseResult(f *testing.F) {
	enc, _ := appendResult(nil, Result{Status: 201, Header: http.Header{"Capture-Id": {"c"}, "Location": {"/l"}}})
	f.Add(string(enc))
	f.Add("\x00\xc9\x00")
	f.Add("\x01\x93\x01\x0cContent-Type\x01\x10application/json{}")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseResult(s)
		if err != nil {
			return
		}
		enc, err := appendResult(nil, r)
		if err != nil {
			t.Fatalf("parsed %+v does not encode: %v", r, err)
		}
		again, err := parseResult(string(enc))
		if err != nil || !sameResult(again, r) {
			t.Fatalf("re-encoded %+v parses as %+v, %v", r, again, err)
		}
	})
}
