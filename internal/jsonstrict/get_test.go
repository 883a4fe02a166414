package jsonstrict

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// mustCheck returns data after checking it, as the getters require.
func mustCheck(t testing.TB, doc string) []byte {
	t.Helper()
	if _, err := Check([]byte(doc)); err != nil {
		t.Fatalf("Check(%q): %v", doc, err)
	}
	return []byte(doc)
}

func TestBool(t *testing.T) {
	tests := []struct {
		doc     string
		want    bool
		present bool
		err     string
	}{
		{`{"options":{"auto_capture":true}}`, true, true, ""},
		{`{"options":{"auto_capture":false}}`, false, true, ""},
		{`{"options":{}}`, false, false, ""},
		{`{}`, false, false, ""},
		{`{"options":null}`, false, false, ""},
		{`{"options":{"auto_capture":"true"}}`, false, true, "options.auto_capture must be a boolean (true or false), not a string"},
		{`{"options":{"auto_capture":1}}`, false, true, "options.auto_capture must be a boolean (true or false), not a number"},
		{`{"options":{"auto_capture":0}}`, false, true, "options.auto_capture must be a boolean (true or false), not a number"},
		{`{"options":{"auto_capture":null}}`, false, true, "options.auto_capture must be a boolean (true or false), not null"},
		{`{"options":{"auto_capture":[true]}}`, false, true, "options.auto_capture must be a boolean (true or false), not an array"},
		{`{"options":{"auto_capture":{}}}`, false, true, "options.auto_capture must be a boolean (true or false), not an object"},
		// gjson resolves escaped names the way Check does.
		{`{"options":{"auto\u005fcapture":true}}`, true, true, ""},
		{`{"\u006fptions":{"\u0061uto_capture":true}}`, true, true, ""},
	}
	for _, tt := range tests {
		got, present, err := Bool(mustCheck(t, tt.doc), "options.auto_capture")
		if got != tt.want || present != tt.present || errString(err) != tt.err {
			t.Errorf("Bool(%s) = %v, %v, %q; want %v, %v, %q", tt.doc, got, present, errString(err), tt.want, tt.present, tt.err)
		}
	}
}

func TestInt(t *testing.T) {
	const rangeMsg = "captured_amount must be an integer between 1 and 200000000"
	tests := []struct {
		doc     string
		want    int64
		present bool
		err     string
	}{
		{`{"captured_amount":7000}`, 7000, true, ""},
		{`{"captured_amount":1}`, 1, true, ""},
		{`{"captured_amount":200000000}`, 200000000, true, ""},
		{`{}`, 0, false, ""},
		{`{"captured_amount":0}`, 0, true, rangeMsg},
		{`{"captured_amount":-0}`, 0, true, rangeMsg},
		{`{"captured_amount":-1}`, 0, true, rangeMsg},
		{`{"captured_amount":200000001}`, 0, true, rangeMsg},
		{`{"captured_amount":7000.0}`, 0, true, rangeMsg + " (a whole number without a fraction or exponent)"},
		{`{"captured_amount":7000.5}`, 0, true, rangeMsg + " (a whole number without a fraction or exponent)"},
		{`{"captured_amount":7e3}`, 0, true, rangeMsg + " (a whole number without a fraction or exponent)"},
		{`{"captured_amount":7E3}`, 0, true, rangeMsg + " (a whole number without a fraction or exponent)"},
		{`{"captured_amount":"7000"}`, 0, true, rangeMsg + ", not a string"},
		{`{"captured_amount":null}`, 0, true, rangeMsg + ", not null"},
		{`{"captured_amount":true}`, 0, true, rangeMsg + ", not a boolean"},
		{`{"captured_amount":9223372036854775808}`, 0, true, rangeMsg},
		{`{"captured_amount":18446744073709551616}`, 0, true, rangeMsg},
		{`{"\u0063aptured_amount":7000}`, 7000, true, ""},
	}
	for _, tt := range tests {
		got, present, err := Int(mustCheck(t, tt.doc), "captured_amount", 1, 200000000)
		if got != tt.want || present != tt.present || errString(err) != tt.err {
			t.Errorf("Int(%s) = %v, %v, %q; want %v, %v, %q", tt.doc, got, present, errString(err), tt.want, tt.present, tt.err)
		}
	}

	// The full int64 range, and -0 where zero is allowed.
	for doc, want := range map[string]int64{
		`{"n":9223372036854775807}`:  math.MaxInt64,
		`{"n":-9223372036854775808}`: math.MinInt64,
		`{"n":-0}`:                   0,
	} {
		got, _, err := Int(mustCheck(t, doc), "n", math.MinInt64, math.MaxInt64)
		if err != nil || got != want {
			t.Errorf("Int(%s) = %d, %v; want %d", doc, got, err, want)
		}
	}
	if _, _, err := Int(mustCheck(t, `{"n":-9223372036854775809}`), "n", math.MinInt64, math.MaxInt64); err == nil {
		t.Error("int64 underflow accepted")
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		doc     string
		want    string
		present bool
		err     string
	}{
		{`{"purchase_currency":"EUR"}`, "EUR", true, ""},
		{`{"purchase_currency":"\u0045UR"}`, "EUR", true, ""},
		{`{"purchase_currency":""}`, "", true, ""},
		{`{}`, "", false, ""},
		{`{"purchase_currency":978}`, "", true, "purchase_currency must be a string, not a number"},
		{`{"purchase_currency":null}`, "", true, "purchase_currency must be a string, not null"},
	}
	for _, tt := range tests {
		got, present, err := String(mustCheck(t, tt.doc), "purchase_currency")
		if got != tt.want || present != tt.present || errString(err) != tt.err {
			t.Errorf("String(%s) = %q, %v, %q; want %q, %v, %q", tt.doc, got, present, errString(err), tt.want, tt.present, tt.err)
		}
	}
}

// Member names that are gjson path syntax are found literally, and a dotted
// name is not confused with a nested member.
func TestGetNamesLiterally(t *testing.T) {
	doc := mustCheck(t, `{"a":{"b":2},"a.b":1,"a*":3,"@this":4,"#":5,"q\"u":6,"back\\slash":7,"é":8,"\u0000":9}`)
	root := Root(doc)
	for name, want := range map[string]int64{"a.b": 1, "a*": 3, "@this": 4, "#": 5, `q"u`: 6, `back\slash`: 7, "é": 8, "\x00": 9} {
		got, present, err := root.Get(name).Int(0, 10)
		if !present || err != nil || got != want {
			t.Errorf("Get(%q) = %d, %v, %v; want %d", name, got, present, err, want)
		}
	}
	if got, _, _ := root.Lookup("a.b").Int(0, 10); got != 2 {
		t.Errorf(`Lookup("a.b") = %d, want the nested member 2`, got)
	}
	if root.Get("a?").Exists() || root.Get("x").Exists() {
		t.Error("a pattern or a missing name found a member")
	}
}

// A member spelled like the wanted one but for letter case or separators is
// refused: a loose binder would read it as the wanted member.
func TestGetRefusesLooseSpellings(t *testing.T) {
	for _, doc := range []string{
		`{"options":{"Auto_Capture":true}}`,
		`{"options":{"AUTO_CAPTURE":true}}`,
		`{"options":{"autoCapture":true}}`,
		`{"options":{"auto-capture":true}}`,
		`{"options":{"_auto_capture_":true}}`,
		`{"options":{"auto_capture":false,"autoCapture":true}}`,
		`{"options":{"\u0041uto_capture":true}}`,
		`{"Options":{"auto_capture":true}}`,
		// Letters outside ASCII that a case-insensitive matcher takes for
		// ASCII ones: dotless i, long s.
		`{"opt\u0131ons":{"auto_capture":true}}`,
		`{"option\u017f":{"auto_capture":true}}`,
		`{"OPT\u0131ONS":{"AUTO-CAPTURE":true}}`,
	} {
		v, present, err := Bool(mustCheck(t, doc), "options.auto_capture")
		var e *Error
		if v || !present || !errors.As(err, &e) || !strings.Contains(e.Msg, "must be spelled options") {
			t.Errorf("Bool(%s) = %v, %v, %v; want a spelling error", doc, v, present, err)
		}
	}
	_, _, err := Bool(mustCheck(t, `{"options":{"autoCapture":true}}`), "options.auto_capture")
	if want := "member options.autoCapture must be spelled options.auto_capture: a PSP that matches member names loosely would read it as options.auto_capture"; errString(err) != want {
		t.Errorf("message %q, want %q", errString(err), want)
	}
	// Different names are not confused.
	for _, doc := range []string{`{"options":{"auto_captured":true}}`, `{"options":{"autocapture1":true}}`} {
		if _, present, err := Bool(mustCheck(t, doc), "options.auto_capture"); present || err != nil {
			t.Errorf("Bool(%s) = %v, %v; want absent", doc, present, err)
		}
	}
}

func TestArrayAndPaths(t *testing.T) {
	doc := mustCheck(t, `{"order_lines":[{"total_amount":10},{"total_amount":"20"}],"odd name":[1],"emd":{"x":[{"y":true}]}}`)
	root := Root(doc)

	var sum int64
	present, err := root.Get("order_lines").Array(1000, func(e Value) error {
		n, _, err := e.Get("total_amount").Int(-200000000, 200000000)
		sum += n
		return err
	})
	if !present || errString(err) != "order_lines[1].total_amount must be an integer between -200000000 and 200000000, not a string" || sum != 10 {
		t.Errorf("Array = %v, %q, sum %d", present, errString(err), sum)
	}

	_, err = root.Get("order_lines").Array(1, func(Value) error { return nil })
	if errString(err) != "order_lines must have at most 1 entries" {
		t.Errorf("max entries: %q", errString(err))
	}

	_, err = root.Get("odd name").Array(10, func(e Value) error { _, _, err := e.Bool(); return err })
	if errString(err) != `["odd name"][0] must be a boolean (true or false), not a number` {
		t.Errorf("quoted name path: %q", errString(err))
	}

	_, err = root.Get("emd").Get("x").Array(10, func(e Value) error { _, _, err := e.Get("y").Get("z").Bool(); return err })
	if err != nil {
		t.Errorf("missing member of a boolean: %v", err)
	}
	_, err = root.Get("emd").Get("x").Array(10, func(e Value) error { _, _, err := e.Get("y").Int(0, 1); return err })
	var e *Error
	if !errors.As(err, &e) || e.Path != "emd.x[0].y" {
		t.Errorf("nested path: %v", err)
	}

	if p, err := root.Get("emd").Array(10, nil); !p || errString(err) != "emd must be an array, not an object" {
		t.Errorf("object as array: %v %q", p, errString(err))
	}
	if p, err := root.Get("order_lines").Object(); !p || errString(err) != "order_lines must be an object, not an array" {
		t.Errorf("array as object: %v %q", p, errString(err))
	}
	if p, err := root.Get("missing").Array(10, nil); p || err != nil {
		t.Errorf("missing array: %v %v", p, err)
	}
}

func TestMembersAndEmpty(t *testing.T) {
	doc := mustCheck(t, `{"b":null,"a":"","c":[],"d":{},"e":" ","f":0,"g":false,"h":[null],"i":{"x":1},"\u006a":"x"}`)
	var nonEmpty []string
	_, err := Root(doc).Members(func(name string, v Value) error {
		if !v.Empty() {
			nonEmpty = append(nonEmpty, name)
		}
		return nil
	})
	if err != nil || strings.Join(nonEmpty, ",") != "e,f,g,h,i,j" {
		t.Errorf("Members = %v, %v", nonEmpty, err)
	}
	if !Root(doc).Get("b").IsNull() || Root(doc).Get("zz").IsNull() {
		t.Error("IsNull")
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
