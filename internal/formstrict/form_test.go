package formstrict

import (
	"strings"
	"testing"
)

func mustParse(t *testing.T, body string) Form {
	t.Helper()
	f, err := Parse([]byte(body), nil)
	if err != nil {
		t.Fatalf("Parse(%q): %v", body, err)
	}
	return f
}

func TestParseReadsStripeForms(t *testing.T) {
	f := mustParse(t, "amount=2000&currency=eur&payment_method_types[]=card&payment_method_types[]=klarna"+
		"&payment_method_options[card][capture_method]=manual&metadata[order]=A+1%2B2%20%E2%82%AC&expand[]=latest_charge&description=")
	for key, want := range map[string]string{
		"amount":   "2000",
		"currency": "eur",
		"payment_method_options[card][capture_method]": "manual",
		"metadata[order]": "A 1+2 €",
		"description":     "",
	} {
		if got, ok := f.Get(key); !ok || got != want {
			t.Errorf("Get(%q) = %q, %v; want %q", key, got, ok, want)
		}
	}
	for _, key := range []string{"capture_method", "payment_method_options[card]", "payment_method_options", "metadata[Order]"} {
		if got, ok := f.Get(key); ok {
			t.Errorf("Get(%q) = %q, want absent", key, got)
		}
	}
	var types []string
	f.Values("payment_method_types[]", func(v string) { types = append(types, v) })
	if strings.Join(types, ",") != "card,klarna" {
		t.Errorf("payment_method_types[] = %q, want card then klarna", types)
	}
	if f.Len() != 8 {
		t.Errorf("Len = %d, want 8", f.Len())
	}
}

func TestParseEmpty(t *testing.T) {
	f := mustParse(t, "")
	if f.Len() != 0 || f.Has("a") {
		t.Fatalf("empty body: %d fields", f.Len())
	}
}

func TestPlusAndPercent20AreSpaces(t *testing.T) {
	a, b := mustParse(t, "metadata[a+b]=x+y"), mustParse(t, "metadata[a%20b]=x%20y")
	for _, f := range []Form{a, b} {
		if v, _ := f.Get("metadata[a b]"); v != "x y" {
			t.Errorf("metadata[a b] = %q, want \"x y\"", v)
		}
	}
	if a.Fingerprint() != b.Fingerprint() {
		t.Error("'+' and %20 spellings have different fingerprints")
	}
}

func TestFingerprint(t *testing.T) {
	base := mustParse(t, "amount=1&currency=eur&expand[]=a&expand[]=b").Fingerprint()
	if got := mustParse(t, "expand[]=a&currency=%65ur&amount=1&expand[]=b").Fingerprint(); got != base {
		t.Error("reordered fields and escapes change the fingerprint")
	}
	for _, other := range []string{
		"amount=1&currency=eur&expand[]=b&expand[]=a", // array order is content
		"amount=2&currency=eur&expand[]=a&expand[]=b",
		"amount=1&currency=eur&expand[]=a",
		"amount=1&currency=eur&expand[]=ab",
	} {
		if mustParse(t, other).Fingerprint() == base {
			t.Errorf("%q has the fingerprint of another form", other)
		}
	}
	small := mustParse(t, "amount=1&currency=eur&expand[]=a&expand[]=b")
	if small.fingerprintLarge() != base {
		t.Error("the streaming hash of large forms disagrees with the one of small forms")
	}
	// A long value spans the hash's buffer.
	long := strings.Repeat("x", 2000)
	if mustParse(t, "a="+long).Fingerprint() == mustParse(t, "a="+long+"y").Fingerprint() {
		t.Error("long values differing at the end have one fingerprint")
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, body, key, msg string
	}{
		{"repeated scalar key", "capture_method=manual&capture_method=SECRET", "capture_method", "more than once"},
		{"repeated key spelled with an escape", "capture_method=manual&%63apture_method=SECRET", "capture_method", "more than once"},
		{"repeated nested key", "a[b]=1&a[b]=SECRET", "a[b]", "more than once"},
		{"value then hash", "a=SECRET&a[b]=2", "a[b]", "value, a hash or an array"},
		{"hash then value", "a[b]=2&a=SECRET", "a[b]", "value, a hash or an array"},
		{"value then array", "a[b]=1&a[b][]=SECRET", "a[b][]", "value, a hash or an array"},
		{"array then value", "a[b][]=SECRET&a[b]=1", "a[b][]", "value, a hash or an array"},
		{"array then hash", "a[]=1&a[b]=SECRET", "a[b]", "value, a hash or an array"},
		{"array and scalar", "a[]=1&a=SECRET", "a[]", "value, a hash or an array"},
		{"unclosed bracket", "a[=SECRET", "", "'[' without its ']'"},
		{"unclosed segment", "a[b=SECRET", "", "'[' without its ']'"},
		{"stray closing bracket", "a]b=SECRET", "", "']' without a '['"},
		{"text after a segment", "a[b]c=SECRET", "", "text after a ']'"},
		{"leading bracket", "[a]=SECRET", "", "starts with '['"},
		{"bracket in a segment", "a[b[c]]=SECRET", "", "'[' inside brackets"},
		{"empty segment", "a[]b=SECRET", "", "only as the last segment"},
		{"hash in an array", "a[][b]=SECRET", "", "only as the last segment"},
		{"too deep", "a" + strings.Repeat("[b]", MaxDepth+1) + "=SECRET", "", "deeper than"},
		{"empty key", "=SECRET", "", "empty key"},
		{"no equals sign", "capture_method", "", "no '='"},
		{"empty field", "a=SECRET&&b=1", "", "field 2 is empty"},
		{"trailing ampersand", "a=SECRET&", "", "field 2 is empty"},
		{"percent-encoded bracket", "a%5Bb%5D=SECRET", "", "percent-encoded '['"},
		{"percent-encoded closing bracket", "a[b%5D=SECRET", "", "percent-encoded ']'"},
		{"percent-encoded ampersand in a key", "a%26b=SECRET", "", "percent-encoded '&'"},
		{"percent-encoded equals in a key", "a%3Db=SECRET", "", "percent-encoded '='"},
		{"percent-encoded semicolon in a key", "a%3Bb=SECRET", "", "percent-encoded ';'"},
		{"percent-encoded percent in a key", "a%2541=SECRET", "", "percent-encoded '%'"},
		{"semicolon separator", "capture_method=manual;amount=SECRET", "capture_method", "has a ';'"},
		{"semicolon in a key", "a;b=SECRET", "", "has a ';'"},
		{"raw space", "a=1& b=SECRET", "", "raw space"},
		{"raw equals in a value", "a=SECRET=x", "a", "raw '='"},
		{"invalid escape", "a=%zzSECRET", "a", "invalid percent escape"},
		{"truncated escape", "a=SECRET%4", "a", "invalid percent escape"},
		{"invalid escape in a key", "a%g1=SECRET", "", "invalid percent escape"},
		{"invalid UTF-8", "a=SECRET%ff", "a", "not valid UTF-8"},
		{"overlong UTF-8", "a=SECRET%c0%af", "a", "not valid UTF-8"},
		{"invalid UTF-8 in a key", "a%ff=SECRET", "", "not valid UTF-8"},
		{"NUL", "a=SECRET%00", "a", "NUL or control"},
		{"control character", "a=SECRET%1b", "a", "NUL or control"},
		{"DEL", "a=SECRET%7f", "a", "NUL or control"},
		{"newline in a key", "a%0A=SECRET", "", "NUL or control"},
		{"raw control byte", "a=SECRET\n", "a", "raw control or non-ASCII"},
		{"raw non-ASCII", "a=SECRET\xc3\xa9", "a", "raw control or non-ASCII"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.body), nil)
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("Parse(%q) = %v, want an *Error", tc.body, err)
			}
			if !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("message %q does not say %q", e.Msg, tc.msg)
			}
			if e.Key != tc.key {
				t.Errorf("Key = %q, want %q", e.Key, tc.key)
			}
			if strings.Contains(e.Msg, "SECRET") || strings.Contains(e.LogMessage(), "SECRET") {
				t.Errorf("message %q echoes a value", e.Msg)
			}
		})
	}
}

func TestValuesMayHoldLineBreaks(t *testing.T) {
	f := mustParse(t, "description=line%0D%0Abreak%09tab")
	if v, _ := f.Get("description"); v != "line\r\nbreak\ttab" {
		t.Fatalf("description = %q", v)
	}
}

func TestLogMessageHidesUnknownKeys(t *testing.T) {
	RegisterNames("metadata")
	_, err := Parse([]byte("metadata[jane@example.com]=1&metadata[jane@example.com]=2"), nil)
	e := err.(*Error)
	if !strings.Contains(e.Msg, "jane@example.com") {
		t.Errorf("message %q does not name the key", e.Msg)
	}
	if got := e.LogMessage(); strings.Contains(got, "jane") || !strings.Contains(got, `"metadata[*]"`) {
		t.Errorf("log message %q", got)
	}
}

func TestParseKeepsFieldsInBuffer(t *testing.T) {
	var buf [4]Field
	f, err := Parse([]byte("b=1&a=2"), buf[:])
	if err != nil {
		t.Fatal(err)
	}
	if f.Key(0) != "a" || f.Key(1) != "b" || buf[0] != f.fields[0] {
		t.Fatalf("fields %q, %q not sorted into the caller's buffer", f.Key(0), f.Key(1))
	}
}

func TestParseAllocations(t *testing.T) {
	body := []byte(stripeBody)
	var buf [32]Field
	allocs := testing.AllocsPerRun(100, func() {
		f, err := Parse(body, buf[:])
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := f.Get("payment_method_options[card][capture_method]"); !ok || v != "manual" {
			t.Fatal(v)
		}
	})
	if allocs > 1 {
		t.Fatalf("%v allocations per Parse and lookup, want 1 (the decoded text)", allocs)
	}
}

const stripeBody = "amount=2000&currency=eur&confirm=true&customer=cus_9s6XKzkNRiz8i3" +
	"&payment_method_types[]=card&payment_method_types[]=klarna" +
	"&payment_method_options[card][capture_method]=manual" +
	"&metadata[order_id]=6735&metadata[note]=ships+in+3+days&description=Shoes%2C+size+42" +
	"&expand[]=latest_charge&statement_descriptor_suffix=SHOESHOP"

func BenchmarkParse(b *testing.B) {
	body := []byte(stripeBody)
	var buf [32]Field
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := Parse(body, buf[:])
		if err != nil {
			b.Fatal(err)
		}
		_, _ = f.Get("capture_method")
	}
}
