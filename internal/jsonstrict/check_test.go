package jsonstrict

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func nested(n int) string {
	return `{"a":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`
}

func TestCheckRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   string
		path string // Error.Path
		msg  string // substring of Error.Msg
	}{
		{"duplicate member", `{"a":1,"a":2}`, "a", `duplicate member "a" in $`},
		{"duplicate member spelled with an escape", `{"a":1,"\u0061":2}`, "a", `duplicate member "a" in $`},
		{"duplicate escaped both ways", `{"\u0061":1,"\u0061":2}`, "a", `duplicate member "a"`},
		{"duplicate with escaped slash", `{"a/b":1,"a\/b":2}`, `["a/b"]`, `duplicate member "a/b"`},
		{"duplicate nested", `{"options":{"auto_capture":false,"auto_capture":true}}`,
			"options.auto_capture", `duplicate member "auto_capture" in $.options`},
		{"duplicate in an array element", `{"order_lines":[{"type":"x"},{"type":"physical","type":"digital"}]}`,
			"order_lines[1].type", `duplicate member "type" in $.order_lines[1]`},
		{"duplicate far apart", `{"auto_capture":false,"b":1,"c":2,"d":[],"auto_capture":true}`,
			"auto_capture", `duplicate member "auto_capture"`},
		{"case variant", `{"auto_capture":false,"Auto_Capture":true}`, "Auto_Capture", `differ only by letter case`},
		{"case variant upper", `{"AUTO_CAPTURE":true,"auto_capture":false}`, "auto_capture", `differ only by letter case`},
		{"case variant escaped", `{"auto_capture":false,"\u0041uto_capture":true}`, "Auto_capture", `differ only by letter case`},
		{"case variant Kelvin sign", `{"kind":1,"\u212Aind":2}`, "[\"\u212Aind\"]", `differ only by letter case`},
		{"case variant dotless i", `{"id":1,"\u0131d":2}`, "[\"\u0131d\"]", `differ only by letter case`},
		{"case variant long s", `{"status":1,"\u017Ftatus":2}`, "[\"\u017Ftatus\"]", `differ only by letter case`},
		{"case variant nested", `{"options":{"auto_capture":false,"auto_Capture":true}}`, "options.auto_Capture", `in $.options differ only by letter case`},
		{"trailing object", `{"a":1}{}`, "", "unexpected data after the JSON object"},
		{"trailing garbage", `{"a":1} x`, "", "unexpected data after the JSON object"},
		{"trailing NUL", "{\"a\":1}\x00", "", "unexpected data after the JSON object"},
		{"byte order mark", "\xEF\xBB\xBF{}", "", "byte order mark"},
		{"invalid UTF-8 in a value", "{\"a\":\"\xff\"}", "a", "invalid UTF-8"},
		{"invalid UTF-8 in a name", "{\"\xc3\":1}", "", "invalid UTF-8"},
		{"overlong UTF-8", "{\"a\":\"\xc0\xaf\"}", "a", "invalid UTF-8"},
		{"UTF-8 encoded surrogate", "{\"a\":\"\xed\xa0\x80\"}", "a", "invalid UTF-8"},
		{"invalid UTF-8 outside strings", "{\"a\":1,\xc3\xa9}", "", `expected a member name in double quotes in $, found byte 0xC3`},
		{"lone high surrogate", `{"a":"\ud800"}`, "a", "lone UTF-16 high surrogate"},
		{"high surrogate then text", `{"a":"\ud800x"}`, "a", "lone UTF-16 high surrogate"},
		{"high surrogate then non-surrogate escape", `{"a":"\ud800\u0041"}`, "a", "lone UTF-16 high surrogate"},
		{"two high surrogates", `{"a":"\ud800\ud800"}`, "a", "lone UTF-16 high surrogate"},
		{"lone low surrogate", `{"a":"\udc00"}`, "a", "lone UTF-16 low surrogate"},
		{"lone surrogate in a name", `{"\ud800":1}`, "", "lone UTF-16 high surrogate"},
		{"control character", "{\"a\":\"x\x01\"}", "a", "unescaped control character byte 0x01"},
		{"raw tab in a string", "{\"a\":\"x\ty\"}", "a", "unescaped control character"},
		{"raw newline in a name", "{\"a\nb\":1}", "", "unescaped control character"},
		{"depth 65", nested(64), "a" + strings.Repeat("[0]", 63), "too deeply nested"},
		{"depth 65 objects", strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 65), strings.TrimSuffix(strings.Repeat("a.", 64), "."), "too deeply nested"},
		{"block comment", `{"a":1/*x*/}`, "a", "expected ',' or '}'"},
		{"line comment", "{// c\n\"a\":1}", "", "expected a member name"},
		{"comment as value", `{"a":/*x*/1}`, "a", "comments are not JSON"},
		{"single-quoted name", `{'a':1}`, "", "expected a member name in double quotes"},
		{"single-quoted value", `{"a":'x'}`, "a", "single-quoted strings are not JSON"},
		{"unquoted name", `{a:1}`, "", "expected a member name in double quotes"},
		{"leading zero", `{"a":01}`, "a", "leading zero"},
		{"negative leading zero", `{"a":-01}`, "a", "leading zero"},
		{"leading zero with fraction", `{"a":00.5}`, "a", "leading zero"},
		{"NaN", `{"a":NaN}`, "a", "NaN, Infinity"},
		{"Infinity", `{"a":Infinity}`, "a", "NaN, Infinity"},
		{"negative Infinity", `{"a":-Infinity}`, "a", "expected a digit"},
		{"plus sign", `{"a":+1}`, "a", "NaN, Infinity and a leading '+'"},
		{"bare fraction", `{"a":.5}`, "a", "must start with a digit"},
		{"fraction without digits", `{"a":1.}`, "a", "after the decimal point"},
		{"exponent without digits", `{"a":1e}`, "a", "in the exponent"},
		{"exponent sign without digits", `{"a":1e+}`, "a", "in the exponent"},
		{"hex number", `{"a":0x10}`, "a", "expected ',' or '}'"},
		{"trailing comma in object", `{"a":1,}`, "a", "trailing comma after $.a"},
		{"trailing comma in array", `{"a":[1,]}`, "a", "trailing comma before ']' in $.a"},
		{"missing value in array", `{"a":[1,,2]}`, "a[1]", "a value is missing"},
		{"missing colon", `{"a" 1}`, "a", "expected ':'"},
		{"missing comma", `{"a":1 "b":2}`, "a", "expected ',' or '}'"},
		{"missing value", `{"a":}`, "a", "a value is missing"},
		{"capitalised literal", `{"a":True}`, "a", "true and false are lower case"},
		{"truncated literal", `{"a":tru}`, "a", "invalid value"},
		{"null spelled differently", `{"a":nul}`, "a", "invalid value"},
		{"invalid escape", `{"a":"\x41"}`, "a", `invalid escape sequence \x`},
		{"upper-case u escape", `{"a":"\U0041"}`, "a", `invalid escape sequence \U`},
		{"escaped control character", "{\"a\":\"\\\x01\"}", "a", `invalid escape sequence '\' followed by byte 0x01`},
		{"short u escape", `{"a":"\u12"}`, "a", `invalid \u escape`},
		{"unterminated string", `{"a":"x`, "a", "inside a string"},
		{"unclosed object", `{"a":1`, "", "the object is not closed"},
		{"unclosed array", `{"a":[1`, "a", "the array is not closed"},
		{"array at top level", `[{"a":1}]`, "", "must be a JSON object, found an array"},
		{"string at top level", `"x"`, "", "found a string"},
		{"number at top level", `7000`, "", "found a number"},
		{"null at top level", `null`, "", "found null"},
		{"empty body", ``, "", "the body is empty"},
		{"whitespace only", " \n\t", "", "the body is empty"},
		{"non-JSON whitespace", "\u00a0{}", "", "must be a JSON object"},
		{"form feed as whitespace", "{\f}", "", "expected a member name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Check([]byte(tt.in))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Check(%q) = %v, want an *Error", tt.in, err)
			}
			if e.Path != tt.path {
				t.Errorf("Path = %q, want %q (%s)", e.Path, tt.path, e.Msg)
			}
			if !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("Msg = %q, want it to contain %q", e.Msg, tt.msg)
			}
		})
	}
}

func TestCheckAccepts(t *testing.T) {
	for _, in := range []string{
		`{}`,
		" \t\r\n{ } \r\n\t",
		`{"a":{},"b":[],"c":[{}],"d":""}`,
		`{"a":-0,"b":0,"c":-1.5e-10,"d":1E+400,"e":123456789012345678901234567890}`,
		`{"a":true,"b":false,"c":null}`,
		`{"a":"\"\\\/\b\f\n\r\t\u0000\u001f\u00e9\ud83d\ude00"}`,
		`{"emoji":"😀","é":"ü"}`,
		`{"":1}`,
		`{"a":"x","A1":"y","b":"z"}`, // no two names differ only by case
		`{"ss":1,"ß":2}`,             // full case folding would merge these; no PSP matcher does
		`{"a":[1,[2,[3,{"b":[true]}]]]}`,
		"{\"del\":\"\x7f\"}",
		nested(63),
	} {
		if _, err := Check([]byte(in)); err != nil {
			t.Errorf("Check(%q): %v", in, err)
		}
	}
}

func TestErrorString(t *testing.T) {
	_, err := Check([]byte(`{"options":{"auto_capture":false,"auto_capture":true}}`))
	want := `duplicate member "auto_capture" in $.options (at byte offset 33)`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}

func TestErrorPathsShortenLongNames(t *testing.T) {
	long := strings.Repeat("n", 1000)
	_, err := Check([]byte(`{"` + long + `":1,"` + long + `":2}`))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v", err)
	}
	if len(e.Msg) > 200 || len(e.Path) > 100 {
		t.Errorf("message or path not shortened: %d, %d bytes", len(e.Msg), len(e.Path))
	}
}

func TestFingerprintIgnoresFormatting(t *testing.T) {
	groups := [][]string{
		{
			`{"captured_amount":6000,"reference":"r-1","order_lines":[{"type":"physical","total_amount":6000}]}`,
			"{\n  \"captured_amount\": 6000,\n  \"reference\": \"r-1\",\n  \"order_lines\": [ { \"type\": \"physical\", \"total_amount\": 6000 } ]\n}\n",
			`{"order_lines":[{"total_amount":6000,"type":"physical"}],"reference":"r-1","captured_amount":6000}`,
			`{"\u0063aptured_amount":6000,"reference":"r\u002d1","order_lines":[{"type":"ph\u0079sical","total_amount":6000}]}`,
		},
		{`{"s":"a/b"}`, `{"s":"a\/b"}`, `{"s":"\u0061\u002F\u0062"}`},
		{`{"s":"é"}`, `{"s":"\u00e9"}`, `{"s":"\u00E9"}`},
		{`{"s":"\n"}`, `{"s":"\u000a"}`, `{"s":"\u000A"}`},
		{`{"s":"😀"}`, `{"s":"\ud83d\ude00"}`, `{"s":"\uD83D\uDE00"}`},
		{`{"b":{"y":1,"x":2},"a":[3,{"q":1,"p":2}]}`, `{"a":[3,{"p":2,"q":1}],"b":{"x":2,"y":1}}`},
	}
	for _, g := range groups {
		want, err := Check([]byte(g[0]))
		if err != nil {
			t.Fatalf("Check(%q): %v", g[0], err)
		}
		for _, in := range g[1:] {
			got, err := Check([]byte(in))
			if err != nil {
				t.Fatalf("Check(%q): %v", in, err)
			}
			if got != want {
				t.Errorf("fingerprint of %q differs from %q", in, g[0])
			}
		}
	}
}

func TestFingerprintFollowsContent(t *testing.T) {
	docs := []string{
		`{"captured_amount":6000}`,
		`{"captured_amount":6001}`,
		`{"captured_amount":6000.0}`,
		`{"captured_amount":6e3}`,
		`{"captured_amount":"6000"}`,
		`{"captured_amount":-6000}`,
		`{"captured_amount":6000,"x":null}`,
		`{"captured_amount":null}`,
		`{"Captured_amount":6000}`,
		`{"auto_capture":true}`,
		`{"auto_capture":"true"}`,
		`{"a":[1,2]}`,
		`{"a":[2,1]}`,
		`{"a":[[1],2]}`,
		`{"a":{"b":1}}`,
		`{"a":{},"b":1}`,
		`{"a":"b","c":"d"}`,
		`{"a":"b\",\"c\":\"d"}`,
		`{"a":"x\u0000"}`,
		`{"a":"x"}`,
		`{"a":""}`,
		`{"a":[]}`,
		`{"a":{}}`,
		`{}`,
	}
	seen := map[Fingerprint]string{}
	for _, d := range docs {
		fp, err := Check([]byte(d))
		if err != nil {
			t.Fatalf("Check(%q): %v", d, err)
		}
		if prev, ok := seen[fp]; ok {
			t.Errorf("%q and %q have the same fingerprint", prev, d)
		}
		seen[fp] = d
	}
}

// A scanner reused from the pool must not carry state from a refused
// document into the next one.
func TestCheckReuseAfterError(t *testing.T) {
	want, _ := Check([]byte(`{"b":{"c":1},"a":2}`))
	for i := 0; i < 10; i++ {
		if _, err := Check([]byte(`{"x":{"y":{"z":[1,{"q":1,"q":2}]}}}`)); err == nil {
			t.Fatal("duplicate accepted")
		}
		got, err := Check([]byte(`{"a":2,"b":{"c":1}}`))
		if err != nil || got != want {
			t.Fatalf("after a refused document: %v, fingerprint equal %v", err, got == want)
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	benchDocs(b, func(data []byte) error {
		_, err := Check(data)
		return err
	})
}

const captureBody = `{
  "captured_amount": 6000,
  "reference": "c9a94cf1-7126-4f55-92fa-4d34f416ed7f",
  "description": "Shipped the full order",
  "order_lines": [
    {"type": "physical", "reference": "123050", "name": "Tomatoes", "quantity": 10,
     "quantity_unit": "kg", "unit_price": 600, "tax_rate": 2500, "total_amount": 6000,
     "total_tax_amount": 1200}
  ],
  "shipping_info": [{"shipping_company": "DHL", "tracking_number": "63456415674545679874"}]
}`

const createOrderBody = `{
"auto_capture": true,
"purchase_country": "US",
"purchase_currency": "USD",
"billing_address": {"given_name": "John", "family_name": "Doe", "email": "john@doe.com", "title": "Mr",
  "street_address": "Lombard St 10", "street_address2": "Apt 214", "postal_code": "90210",
  "city": "Beverly Hills", "region": "CA", "phone": "333444555", "country": "US"},
"shipping_address": {"given_name": "John", "family_name": "Doe", "email": "john@doe.com", "title": "Mr",
  "street_address": "Lombard St 10", "street_address2": "Apt 214", "postal_code": "90210",
  "city": "Beverly Hills", "region": "CA", "phone": "333444555", "country": "US"},
"order_amount": 10,
"order_tax_amount": 0,
"order_lines": [{"type": "physical", "reference": "19-402-USA", "name": "Battery Power Pack", "quantity": 1,
  "unit_price": 10, "tax_rate": 0, "total_amount": 10, "total_discount_amount": 0, "total_tax_amount": 0,
  "product_url": "https://www.estore.com/products/f2a8d7e34", "image_url": "https://www.exampleobjects.com/logo.png"}],
"merchant_urls": {"confirmation": "https://example.com/confirmation", "notification": "https://example.com/pending"},
"merchant_reference1": "45aa52f387871e3a210645d4"
}`

// Valid refuses and accepts exactly what Check does.
func TestValidAgreesWithCheck(t *testing.T) {
	for _, doc := range []string{
		captureBody, createOrderBody, `{}`, `{"a":1,"a":2}`, `{"a":1,"A":2}`, `{"a":1} x`, `[1]`,
		`{"a":"\ud800"}`, "\xef\xbb\xbf{}", `{"a":{"b":[1,{"c":true,"C":false}]}}`,
		// Names whose case-folded hashes are equal (Valid looks closer).
		`{"merchant_x_reference":1,"merchant_y_reference":2}`,
		`{"merchant_x_reference":1,"merchant_y_reference":2,"Merchant_X_Reference":3}`,
		// More members than Valid compares pairwise: it sorts them.
		manyMembers(40, ""), manyMembers(40, `,"m7":0`), manyMembers(40, `,"M39":0`),
		manyMembers(20, `,"m3":0`), manyMembers(20, `,"M19":{"x":1,"X":2}`),
	} {
		_, checkErr := Check([]byte(doc))
		validErr := Valid([]byte(doc))
		if (checkErr == nil) != (validErr == nil) || (checkErr != nil && checkErr.Error() != validErr.Error()) {
			t.Errorf("%s: Check says %v, Valid says %v", doc, checkErr, validErr)
		}
	}
}

// manyMembers is an object of n members m0..m(n-1), then extra.
func manyMembers(n int, extra string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"m%d":%d`, i, i)
	}
	return b.String() + extra + "}"
}

// BenchmarkValid is Check without the fingerprint: what a request without
// an idempotency key, and a PSP's answer, cost.
func BenchmarkValid(b *testing.B) { benchDocs(b, Valid) }

// benchDocs runs read over a capture and a create-order body.
func benchDocs(b *testing.B, read func([]byte) error) {
	for _, bm := range []struct{ name, doc string }{
		{"capture", captureBody},
		{"create_order", createOrderBody},
	} {
		b.Run(bm.name, func(b *testing.B) {
			data := []byte(bm.doc)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := read(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
