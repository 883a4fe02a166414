package psp

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestLineTypes(t *testing.T) {
	req, err := Klarna().ParseRequest(createRoute, []byte(`{"order_amount":3,"purchase_currency":"EUR","order_lines":[
		{"type":"PHYSICAL","total_amount":1},{"type":"gift_card","total_amount":1},{"type":"jane@example.com","total_amount":1},{"total_amount":0}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	req.LineTypes.Each(func(n string) { names = append(names, n) })
	if got := strings.Join(names, ","); got != "physical,gift_card,other" || !req.PhysicalLines {
		t.Errorf("line types %q (physical %t), want physical,gift_card,other", got, req.PhysicalLines)
	}
	for _, n := range names {
		if lt, ok := ParseLineType(n); !ok || req.LineTypes&lt == 0 {
			t.Errorf("ParseLineType(%q) = %v, %t", n, lt, ok)
		}
	}
}

// What a caller wrote (a method, a header value, the member names of the
// extra merchant data) is in the message the caller gets, not in the one
// the decision log may carry.
func TestLogMessageLeavesOutRequestText(t *testing.T) {
	const secret = "jane@example.com"
	check := func(name string, err error) {
		t.Helper()
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("%s: %v is not a *psp.Error", name, err)
		}
		if !strings.Contains(e.Message, secret) || strings.Contains(e.LogMessage(), secret) || e.LogMessage() == "" {
			t.Errorf("%s: message %q, log message %q", name, e.Message, e.LogMessage())
		}
	}
	_, err := Klarna().Classify(secret, "/ordermanagement/v1/orders/"+orderID+"/captures")
	check("method", err)
	_, he := CheckHeaders(http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {secret}}, Klarna(), true)
	check("content encoding", he)
	_, err = Klarna().ParseRequest(createRoute, []byte(`{"order_amount":0,"purchase_currency":"EUR","order_lines":[],
		"attachment":{"content_type":"application/vnd.klarna.internal.emd-v2+json","body":"{\"`+secret+`\": 1.}"}}`))
	check("emd", err)
	_, err = Klarna().ParseRequest(createRoute, []byte(`{"order_amount":0,"purchase_currency":"EUR","order_lines":[],"`+secret+`":tru}`))
	check("member", err)
}
