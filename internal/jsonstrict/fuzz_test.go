package jsonstrict

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"testing"
)

// lenientView is how a lenient reader (encoding/json into a struct: names
// matched case-insensitively, the last duplicate wins) reads the policy
// fields of a body.
type lenientView struct {
	AutoCapture    any `json:"auto_capture"`
	CapturedAmount any `json:"captured_amount"`
	OrderAmount    any `json:"order_amount"`
	Options        struct {
		AutoCapture any `json:"auto_capture"`
	} `json:"options"`
}

// FuzzCheck checks that whatever Check accepts, a lenient reader accepts
// too and reads the same top-level members and the same policy values, and
// that re-encoding the document does not change its fingerprint.
func FuzzCheck(f *testing.F) {
	for _, seed := range []string{
		`{}`,
		captureBody,
		createOrderBody,
		`{"auto_capture":true,"options":{"auto_capture":false},"order_amount":-0}`,
		`{"auto_capture":false,"Auto_Capture":true}`,
		`{"captured_amount":7000,"captured_amount":7001}`,
		`{"\u0061uto_capture":true}`,
		`{"a":"\ud83d\ude00\u0000\"\\\/"}`,
		`{"a":"\ud800"}`,
		`{"n":9223372036854775808,"m":7e3,"o":7000.0}`,
		`{"a":[1,2,{"b":null}]} {}`,
		"\xEF\xBB\xBF{}",
		"{\"a\":\"\xff\"}",
		`{"\u212Aey":1,"key":2}`,
		`{"a":{"b":{"c":[[[[]]]]}}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fp, err := Check(data)
		if verr := Valid(data); (err == nil) != (verr == nil) || (err != nil && err.Error() != verr.Error()) {
			t.Fatalf("Check says %v, Valid says %v", err, verr)
		}
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error is %T, want *Error", err)
			}
			return
		}

		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var doc any
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("accepted, but encoding/json refuses: %v", err)
		}
		obj, ok := doc.(map[string]any)
		if !ok {
			t.Fatalf("accepted a %T", doc)
		}

		root := Root(data)
		members := 0
		if _, err := root.Members(func(string, Value) error { members++; return nil }); err != nil {
			t.Fatal(err)
		}
		if members != len(obj) {
			t.Fatalf("%d members, encoding/json sees %d names", members, len(obj))
		}
		for name, want := range obj {
			compareValue(t, root.Get(name), want)
		}

		var lv lenientView
		if err := json.Unmarshal(data, &lv); err == nil {
			compareValue(t, root.Get("auto_capture"), lv.AutoCapture)
			compareValue(t, root.Get("captured_amount"), lv.CapturedAmount)
			compareValue(t, root.Get("order_amount"), lv.OrderAmount)
			compareValue(t, root.Get("options").Get("auto_capture"), lv.Options.AutoCapture)
		}

		again, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		fp2, err := Check(again)
		if err != nil {
			t.Fatalf("re-encoded document refused: %v", err)
		}
		if fp2 != fp {
			t.Fatalf("fingerprint changed by re-encoding to %s", again)
		}
	})
}

// compareValue checks that our exact getters and a lenient reader agree on
// one value. A value the lenient reader did not find (nil) must be absent
// or null for us too.
func compareValue(t *testing.T, v Value, lenient any) {
	t.Helper()
	if v.Err() != nil {
		return // refused as ambiguous: the gateway reads nothing
	}
	switch want := lenient.(type) {
	case nil:
		if v.Exists() && !v.IsNull() {
			t.Fatalf("%s: we read %s, the lenient reader nothing", v.Path(), v.r.Raw)
		}
	case bool:
		got, present, err := v.Bool()
		if !present || err != nil || got != want {
			t.Fatalf("%s: bool %v, present %v, %v; lenient reader: %v", v.Path(), got, present, err, want)
		}
	case string:
		got, present, err := v.Str()
		if !present || err != nil || got != want {
			t.Fatalf("%s: string %q, present %v, %v; lenient reader: %q", v.Path(), got, present, err, want)
		}
	case float64, json.Number:
		lit := ""
		switch n := want.(type) {
		case json.Number:
			lit = n.String()
		case float64:
			lit = strconv.FormatFloat(n, 'g', -1, 64)
		}
		got, present, err := v.Int(math.MinInt64, math.MaxInt64)
		if !present {
			t.Fatalf("%s: number missing", v.Path())
		}
		if err != nil {
			return // not an exact integer for us: refused, nothing to compare
		}
		n, perr := strconv.ParseFloat(lit, 64)
		if perr != nil || math.Abs(n-float64(got)) > math.Abs(float64(got))*1e-15 {
			t.Fatalf("%s: integer %d, lenient reader %s", v.Path(), got, lit)
		}
	case map[string]any:
		if present, err := v.Object(); !present || err != nil {
			t.Fatalf("%s: object present %v, %v", v.Path(), present, err)
		}
	case []any:
		n := 0
		if present, err := v.Array(math.MaxInt, func(Value) error { n++; return nil }); !present || err != nil || n != len(want) {
			t.Fatalf("%s: array present %v, %v, %d elements, want %d", v.Path(), present, err, n, len(want))
		}
	default:
		t.Fatalf("%s: unexpected %T", v.Path(), lenient)
	}
}
