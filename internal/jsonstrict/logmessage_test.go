package jsonstrict

import (
	"strings"
	"testing"
)

func init() { RegisterNames("order_amount", "order_lines", "type") }

// A refused body's message names the members the sender wrote; its log
// message names only registered members, so that what the sender wrote as a
// member name (an email address, a card number) does not reach a log.
func TestLogMessageNamesOnlyRegisteredMembers(t *testing.T) {
	const secret = "jane.doe@example.com"
	docs := []string{
		`{"order_amount": 1, "` + secret + `": 1.}`,                         // scanner error inside the member
		`{"` + secret + `": {"type": tru}}`,                                 // nested
		`{"order_lines": [{"` + secret + `": 1, "` + secret + `": 2}]}`,     // duplicate
		`{"x": {"Jane.Doe@example.com": 1, "` + secret + `": 2}}`,           // case variants
		`{"order_lines": [{"type": "x"}], "` + secret + `": [1, 2,]}`,       // trailing comma
		`{"` + secret + `": "\uDC00"}`,                                      // lone surrogate
		`{"order_amount": 1, "a b ` + secret + `": {"order_lines": [1 2]}}`, // quoted name
	}
	for _, doc := range docs {
		_, err := Check([]byte(doc))
		e, ok := err.(*Error)
		if !ok {
			t.Fatalf("%s: error %v, want *Error", doc, err)
		}
		if !strings.Contains(strings.ToLower(e.Error()), secret) {
			t.Errorf("%s: message %q should name the member for the sender", doc, e.Error())
		}
		if lm := e.LogMessage(); strings.Contains(strings.ToLower(lm), "doe") || !strings.Contains(lm, "*") {
			t.Errorf("%s: log message %q names an unregistered member", doc, lm)
		}
	}

	// Getters: a misspelled member and a member reached through Members.
	root := Root([]byte(`{"Order_Amount": 1, "order_lines": [{"type": 1}], "m": {"` + secret + `": true}}`))
	_, _, err := root.Get("order_amount").Int(0, 10)
	if e := err.(*Error); strings.Contains(e.LogMessage(), "Order_Amount") || !strings.Contains(e.Error(), "Order_Amount") {
		t.Errorf("misspelled: message %q, log message %q", e.Error(), e.LogMessage())
	}
	_, err = root.Get("m").Members(func(_ string, v Value) error {
		_, _, err := v.Int(0, 1)
		return err
	})
	if e := err.(*Error); strings.Contains(e.LogMessage(), "doe") || !strings.Contains(e.Error(), "doe") {
		t.Errorf("member of m: message %q, log message %q", e.Error(), e.LogMessage())
	}

	// Registered names are shown as they are.
	var lineErr error
	_, _ = root.Get("order_lines").Array(10, func(v Value) error {
		_, _, lineErr = v.Get("type").Str()
		return lineErr
	})
	if e := lineErr.(*Error); e.LogMessage() != e.Error() || !strings.Contains(e.LogMessage(), "order_lines[0].type") {
		t.Errorf("registered path: message %q, log message %q", e.Error(), e.LogMessage())
	}
}
