package psp

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

const orderID = "f3392f8b-6116-4073-ab96-e330819e2c07"

// assertBadValue checks that err is a 400 BAD_VALUE *Error naming field,
// with msg in its message.
func assertBadValue(t *testing.T, err error, field, msg string) {
	t.Helper()
	assertError(t, err, http.StatusBadRequest, CodeBadValue, field, msg)
}

func assertError(t *testing.T, err error, status int, code, field, msg string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *psp.Error", err, err)
	}
	if e.Status != status || e.Code != code || e.Field != field || !strings.Contains(e.Message, msg) {
		t.Fatalf("err = {%d %s field %q %q}, want {%d %s field %q containing %q}",
			e.Status, e.Code, e.Field, e.Message, status, code, field, msg)
	}
}

func TestClassifyKlarnaOperations(t *testing.T) {
	om := "/ordermanagement/v1/orders/" + orderID
	tests := []struct {
		method, path string
		want         Route
	}{
		{"POST", "/payments/v1/authorizations/b4bd3423-24e3-4a1a-a3ad-3d03c6ab8a43/order", Route{Op: OpCreateOrder, Token: "b4bd3423-24e3-4a1a-a3ad-3d03c6ab8a43"}},
		{"POST", "/checkout/v3/orders", Route{Op: OpCreateCheckoutOrder}},
		{"POST", "/checkout/v3/orders/" + orderID, Route{Op: OpUpdateCheckoutOrder, OrderID: orderID}},
		{"POST", "/checkout/v3/orders/" + strings.ToUpper(orderID), Route{Op: OpUpdateCheckoutOrder, OrderID: orderID}},
		// A customer token names the customer across orders: it is not carried
		// (the decision log would otherwise tie their orders together).
		{"POST", "/customer-token/v1/tokens/b4bd3423-24e3-4a1a-a3ad-3d03c6ab8a43/order", Route{Op: OpCreateTokenOrder}},
		{"POST", "/hpp/v1/sessions", Route{Op: OpCreateHPPSession}},
		{"POST", "/v2/payment/authorize", Route{Op: OpAuthorizePayment}},
		{"GET", om, Route{Op: OpGetOrder, OrderID: orderID}},
		{"POST", om + "/captures", Route{Op: OpCapture, OrderID: orderID}},
		{"PATCH", om + "/authorization", Route{Op: OpUpdateAuthorization, OrderID: orderID}},
		{"POST", om + "/release-remaining-authorization", Route{Op: OpRelease, OrderID: orderID}},
		{"POST", om + "/cancel", Route{Op: OpCancel, OrderID: orderID}},
		{"POST", om + "/refunds", Route{Op: OpRefund, OrderID: orderID}},
		// An upper-case UUID keys the same order as its lower-case spelling.
		{"POST", "/ordermanagement/v1/orders/" + strings.ToUpper(orderID) + "/captures", Route{Op: OpCapture, OrderID: orderID}},
		{"GET", "/ordermanagement/v1/orders/F3392F8B-6116-4073-Ab96-e330819E2C07", Route{Op: OpGetOrder, OrderID: orderID}},

		// Canonical paths under a guarded prefix that are not guarded.
		{"GET", om + "/captures/4ba29b50-be7b-44f5-a492-113e6a865e22", Route{}},
		{"POST", om + "/extend-authorization-time", Route{}},
		{"POST", "/payments/v1/sessions", Route{}},
		{"GET", "/checkout/v3/orders/" + orderID, Route{}},
		{"POST", "/payments", Route{}},
		// Guarded paths with another (upper-case) method.
		{"PUT", om + "/captures", Route{}},
		{"DELETE", om + "/captures", Route{}},
		{"GET", om + "/captures", Route{}},
		{"HEAD", om, Route{}},
		{"POST", om, Route{}},
		{"GET", "/checkout/v3/orders", Route{}},
		{"GET", "/hpp/v1/sessions/" + orderID, Route{}},
		{"POST", "/hpp/v1/sessions/" + orderID + "/distribution", Route{}},
		{"GET", "/customer-token/v1/tokens/abc", Route{}},
		{"POST", "/v2/payment/capture", Route{}},
		// Not under a guarded prefix at all: proxied untouched, however spelled.
		{"GET", "/settlements/v1/payouts", Route{}},
		{"post", "/hpp-v1/sessions/", Route{}},
		{"GET", "/", Route{}},
		{"GET", "", Route{}},
		{"OPTIONS", "*", Route{}},
		{"GET", "/v1/payments/x/", Route{}},
		{"GET", "/paymentsx/v1/a", Route{}},
		{"GET", "/a/b/../payments/../c", Route{}},
	}
	k := Klarna()
	for _, tt := range tests {
		got, err := k.Classify(tt.method, tt.path)
		if err != nil || got != tt.want {
			t.Errorf("Classify(%s %s) = %+v, %v; want %+v", tt.method, tt.path, got, err, tt.want)
		}
	}
}

func TestClassifyKlarnaRefusesNonCanonicalPaths(t *testing.T) {
	om := "/ordermanagement/v1/orders/" + orderID
	tests := []struct {
		method, path, msg string
	}{
		{"POST", om + "/captures/", "a trailing slash"},
		{"POST", om + "/captures;jsessionid=x", "matrix parameters"},
		{"POST", om + ";x=1/captures", "matrix parameters"},
		{"POST", "/ordermanagement;v=1/v1/orders/" + orderID + "/captures", "matrix parameters"},
		{"POST", "/OrderManagement/v1/orders/" + orderID + "/captures", "in lower case"},
		{"POST", "/ORDERMANAGEMENT/v1/orders/" + orderID + "/captures", "in lower case"},
		{"POST", om + "/Captures", "only by letter case"},
		{"POST", om + "/CAPTURES", "only by letter case"},
		{"POST", "/ordermanagement/V1/orders/" + orderID + "/captures", "only by letter case"},
		{"POST", "/ordermanagement/v1/Orders/" + orderID + "/captures", "only by letter case"},
		{"PATCH", om + "/Authorization", "only by letter case"},
		{"POST", "/Checkout/v3/orders", "in lower case"},
		{"POST", "/checkout/V3/Orders", "only by letter case"},
		{"POST", "/Payments/v1/authorizations/tok/order", "in lower case"},
		{"POST", "/Customer-Token/v1/tokens/tok/order", "in lower case"},
		{"POST", "/customer-token/v1/tokens/tok/Order", "only by letter case"},
		{"POST", "/customer-token/v1/tokens/tok/order/", "a trailing slash"},
		{"POST", "/HPP/v1/sessions", "in lower case"},
		{"post", "/hpp/v1/sessions/", "a trailing slash"},
		{"POST", "/hpp/v1/sessions.json", ".json suffix"},
		{"POST", "/%68pp/v1/sessions", "percent-encoded"},
		{"POST", "/V2/payment/authorize", "in lower case"},
		{"POST", "/v2/Payment/authorize", "only by letter case"},
		{"POST", "/v2/payment/authorize;x=1", "matrix parameters"},
		{"POST", "/v2//payment/authorize", "empty segment"},
		{"POST", "/checkout/v3/orders/" + orderID + "/", "a trailing slash"},
		{"POST", "/%6Frdermanagement/v1/orders/" + orderID + "/captures", "percent-encoded"},
		{"POST", om + "/%63aptures", "percent-encoded"},
		{"POST", om + "/captures%2F", "percent-encoded"},
		{"POST", "/ordermanagement/v1/orders/f3392f8b%2D6116/captures", "percent-encoded"},
		{"POST", "/payments%2Fv1/authorizations/tok/order", "percent-encoded"},
		{"POST", "//ordermanagement/v1/orders/" + orderID + "/captures", "empty segment"},
		{"POST", "/ordermanagement//v1/orders/" + orderID + "/captures", "empty segment"},
		{"POST", "/ordermanagement/v1/orders//captures", "empty segment"},
		{"POST", "/ordermanagement/v1/orders/./" + orderID + "/captures", "'.' or '..' segment"},
		{"POST", "/ordermanagement/v1/orders/x/../" + orderID + "/captures", "'.' or '..' segment"},
		{"POST", "/./ordermanagement/v1/orders/" + orderID + "/captures", "'.' or '..' segment"},
		{"POST", "/x/../ordermanagement/v1/orders/" + orderID + "/captures", "in lower case"},
		{"POST", "/%2e%2e/ordermanagement/v1/orders/" + orderID + "/captures", "percent-encoded"},
		{"POST", om + "/captures.json", ".json suffix"},
		{"GET", om + ".json", ".json suffix"},
		{"POST", "/checkout/v3/orders.json", ".json suffix"},
		{"POST", `/ordermanagement\v1\orders\` + orderID + `\captures`, "characters other than"},
		{"POST", "/ordermanagement/v1/orders/a b/captures", "characters other than"},
		{"POST", "/ordermanagement/v1/orders/" + strings.Repeat("a", 129) + "/captures", "longer than 128"},
		{"POST", "/chec\u212Aout/v3/orders", "characters other than"},
		{"POST", "/chec%E2%84%AAout/v3/orders", "percent-encoded"},
		{"POST", "/payment%C5%BF/v1/authorizations/tok/order", "percent-encoded"},
		{"POST", "/checkout%252Fv3/orders", "percent-encoded"},
		{"POST", "/ordermanagement/", "a trailing slash"},
		{"GET", "/payments/", "a trailing slash"},
		{"GET", "ordermanagement/v1/orders/x", "does not start with '/'"},
		{"POST", "/ ordermanagement/v1/orders/x/captures", "characters other than"},
		{"POST", "/ordermanagement.json/v1/orders/x/captures", ".json suffix"},
	}
	k := Klarna()
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			got, err := k.Classify(tt.method, tt.path)
			if got != (Route{}) {
				t.Errorf("route %+v", got)
			}
			assertBadValue(t, err, "path", tt.msg)
		})
	}
}

// Klarna's order ids are UUIDs. A Java PSP reads shortened and some
// overlong spellings as a UUID too; they, and every other id, are refused
// rather than keyed as a second order.
func TestClassifyKlarnaRefusesOrderIDsOtherThanUUIDs(t *testing.T) {
	for _, id := range []string{
		"a-0-0-0-b",                             // UUID.fromString: 0000000a-0000-0000-0000-00000000000b
		"0000000a-0-0-0-00000000000b",           // one group shortened
		"f3392f8b-6116-4073-ab96-e330819e2c0",   // last group one digit short
		"f3392f8b-6116-4073-ab96-0e330819e2c07", // last group one digit long (masked by some Java versions)
		"0f3392f8b-6116-4073-ab96-e330819e2c0",  // a group moved
		"f3392f8b61164073ab96e330819e2c07",      // no dashes
		"f3392f8b-6116-4073-ab96-e330819e2c07-1",
		"f3392f8b_6116_4073_ab96_e330819e2c07",
		"g3392f8b-6116-4073-ab96-e330819e2c07",
		"Order_42-x",
		strings.Repeat("a", 36),
	} {
		for _, p := range []struct{ method, suffix string }{
			{"GET", ""}, {"POST", "/captures"}, {"PATCH", "/authorization"},
			{"POST", "/release-remaining-authorization"}, {"POST", "/cancel"}, {"POST", "/refunds"},
		} {
			got, err := Klarna().Classify(p.method, "/ordermanagement/v1/orders/"+id+p.suffix)
			if got != (Route{}) {
				t.Errorf("%s %s: route %+v", p.method, id, got)
			}
			assertBadValue(t, err, "path", "must be a UUID")
		}
	}
	// Ids of routes that are not guarded are the PSP's to judge.
	if got, err := Klarna().Classify("POST", "/ordermanagement/v1/orders/a-0-0-0-b/extend-authorization-time"); err != nil || got != (Route{}) {
		t.Errorf("extend authorization: %+v, %v", got, err)
	}
}

func TestClassifyRefusesNonUpperCaseMethods(t *testing.T) {
	om := "/ordermanagement/v1/orders/" + orderID
	for _, method := range []string{"post", "Post", "pOST", "patch", "get", "POST ", "P0ST"} {
		for _, path := range []string{om + "/captures", om + "/authorization", om, "/checkout/v3/orders"} {
			_, err := Klarna().Classify(method, path)
			assertBadValue(t, err, "method", "must be upper case")
		}
	}
	_, err := Hellgate().Classify("post", "/payments/pay_1/capture")
	assertBadValue(t, err, "method", "must be upper case")
}

func TestClassifyHellgate(t *testing.T) {
	h := Hellgate()
	id := "54ba1fdb-7e4e-402b-aebb-66f9d5345cf8"
	ok := []struct {
		method, path string
		want         Route
	}{
		{"POST", "/payments/one-off", Route{Op: OpCreateOrder}},
		{"GET", "/payments/" + id, Route{Op: OpGetOrder, OrderID: id}},
		{"POST", "/payments/" + id + "/capture", Route{Op: OpCapture, OrderID: id}},
		{"POST", "/payments/" + strings.ToUpper(id) + "/capture", Route{Op: OpCapture, OrderID: id}},
		{"POST", "/payments/" + id + "/void", Route{}},
		{"POST", "/payments/" + id + "/refund", Route{}},
		{"PUT", "/payments/" + id + "/capture", Route{}},
		{"POST", "/payments", Route{}},
		{"POST", "/ordermanagement/v1/orders/" + id + "/captures", Route{}}, // not Hellgate's
		{"POST", "/tokens", Route{}},
	}
	for _, tt := range ok {
		got, err := h.Classify(tt.method, tt.path)
		if err != nil || got != tt.want {
			t.Errorf("Classify(%s %s) = %+v, %v; want %+v", tt.method, tt.path, got, err, tt.want)
		}
	}
	for _, path := range []string{
		"/payments/" + id + "/capture/",
		"/payments/" + id + "/Capture",
		"/Payments/" + id + "/capture",
		"/payments/" + id + "/capture.json",
		"/payments/" + id + "/capture;x",
		"/payments//" + id + "/capture",
		"/payments/x/../" + id + "/capture",
		"/%70ayments/" + id + "/capture",
		"/payments/ONE-OFF",
		"/payments/one-off/",
		"/payments/one-off.json",
	} {
		_, err := h.Classify("POST", path)
		assertBadValue(t, err, "path", "not in canonical form")
	}
}

func TestLenientFirstSegment(t *testing.T) {
	for in, want := range map[string]string{
		"/Payments/x":              "payments",
		"//payments":               "payments",
		"/./payments":              "payments",
		"/a/../payments":           "payments",
		"/a/b/../../payments/x":    "payments",
		"/..;/payments":            "payments",
		"/;x=y/payments":           "payments",
		"/%70ayments":              "payments",
		"/%2570ayments":            "payments",
		"/%252570ayments":          "payments",
		`\payments\v1`:             "payments",
		"/%5Cpayments":             "payments",
		"/pay%2Fments":             "pay",
		"/ payments /x":            "payments",
		"/payments.json":           "payments",
		"/PAYMENT\u017F":           "payments",
		"/chec\u212Aout":           "checkout",
		"/%C4%B0tems":              "items",
		"\r/\tPayments":            "payments",
		"/":                        "",
		"":                         "",
		"/../..":                   "",
		"/ordermanagement;v=1/v1/": "ordermanagement",
	} {
		if got := lenientFirstSegment(in); got != want {
			t.Errorf("lenientFirstSegment(%q) = %q, want %q", in, got, want)
		}
	}
}
