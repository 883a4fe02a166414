package idempotency

import (
	"bytes"
	"errors"
	"net/http"
	"slices"
	"testing"
)

func TestCompactRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  Result
	}{
		{"capture", Result{Status: 201, Header: http.Header{
			"Capture-Id": {"4ba29b50-be7b-44f5-a492-113e6a865e22"},
			"Location":   {"https://api.klarna.com/ordermanagement/v1/orders/o/captures/4ba29b50-be7b-44f5-a492-113e6a865e22"},
		}}},
		{"every known name", Result{Status: 403, Header: http.Header{
			"Capture-Id": {"c"}, "Content-Type": {"application/json"}, "Klarna-Correlation-Id": {"k"},
			"Location": {"/l"}, "Order-Id": {"o"}, "Refund-Id": {"r"}, "X-Correlation-Id": {"x"},
		}, Body: []byte(`{"error_code":"CAPTURE_NOT_ALLOWED"}`)}},
		{"other names", Result{Status: 200, Header: http.Header{"X-Other": {"1", "2"}, "location": {"lower case is another name"}}}},
		{"empty name", Result{Status: 200, Header: http.Header{"": {"v"}}}},
		{"long name", Result{Status: 200, Header: http.Header{string(bytes.Repeat([]byte{'n'}, 300)): {"v"}}}},
		{"empty", Result{Status: 204}},
		{"no values", Result{Status: 200, Header: http.Header{"X": {}}}},
		{"binary body", Result{Status: 999, Body: []byte{0, 0xff, '\n'}}},
		{"lowest status", Result{Status: 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := appendCompact([]byte("prefix"), tc.res)
			if err != nil {
				t.Fatal(err)
			}
			if string(enc[:6]) != "prefix" {
				t.Fatalf("appendCompact overwrote dst: %q", enc)
			}
			got, err := parseCompact(string(enc[6:]))
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

// TestCompactKnownNames checks that each known header name takes one byte
// instead of its length and its text.
func TestCompactKnownNames(t *testing.T) {
	res := Result{Status: 201, Header: http.Header{"Capture-Id": {"c"}, "Location": {"/l"}}}
	plain, _ := appendResult(nil, res)
	compact, err := appendCompact(nil, res)
	if err != nil {
		t.Fatal(err)
	}
	if saved := len(plain) - len(compact); saved != len("Capture-Id")+len("Location") {
		t.Errorf("compact encoding is %d bytes shorter, want %d", saved, len("Capture-Id")+len("Location"))
	}
}

func TestCompactStatusRange(t *testing.T) {
	for _, status := range []int{-1, 0, 99, 1000, 70000} {
		if _, err := appendCompact(nil, Result{Status: status}); err == nil {
			t.Errorf("appendCompact accepted status %d", status)
		}
	}
}

func TestParseCompactCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name string
		enc  string
	}{
		{"empty", ""},
		{"short", "\x00"},
		{"status 0", "\x00\x00\x00"},
		{"count beyond input", "\x00\xc9\x05\x03\x00"},
		{"literal name beyond input", "\x00\xc9\x01\x10ab"},
		{"values beyond input", "\x00\xc9\x01\x03\x09"},
		{"value beyond input", "\x00\xc9\x01\x03\x01\x05ab"},
		{"unterminated varint", "\x00\xc9\x01\x80"},
		{"varint overflow", "\x00\xc9\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r, err := parseCompact(tc.enc); !errors.Is(err, errCorrupt) {
				t.Errorf("parseCompact(%q) = %+v, %v; want errCorrupt", tc.enc, r, err)
			}
		})
	}
}

// A replay's headers share one array of values. A caller that adds a value
// to one header must not change another.
func TestParseCompactHeadersApart(t *testing.T) {
	res := Result{Status: 201, Header: http.Header{
		"Capture-Id": {"c-1"}, "Location": {"/a", "/b"}, "X-Other": {"o"},
	}}
	enc, err := appendCompact(nil, res)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseCompact(string(enc))
	if err != nil {
		t.Fatal(err)
	}
	for name := range got.Header {
		got.Header[name] = append(got.Header[name], "added to "+name)
	}
	for name, values := range res.Header {
		want := append(slices.Clone(values), "added to "+name)
		if !slices.Equal(got.Header[name], want) {
			t.Errorf("%s = %q, want %q", name, got.Header[name], want)
		}
	}
}

// FuzzParseCompact checks that any stored bytes either parse into a result
// that encodes back to a result equal to it, or are refused; never a panic.
func FuzzParseCompact(f *testing.F) {
	enc, _ := appendCompact(nil, Result{Status: 201, Header: http.Header{"Capture-Id": {"c"}, "Location": {"/l"}}})
	f.Add(string(enc))
	f.Add("\x00\xc9\x00")
	f.Add("\x01\x93\x02\x01\x01\x10application/json\x0aX-A\x02\x011\x012{}")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseCompact(s)
		if err != nil {
			return
		}
		enc, err := appendCompact(nil, r)
		if err != nil {
			t.Fatalf("parsed %+v does not encode: %v", r, err)
		}
		again, err := parseCompact(string(enc))
		if err != nil || !sameResult(again, r) {
			t.Fatalf("re-encoded %+v parses as %+v, %v", r, again, err)
		}
	})
}
