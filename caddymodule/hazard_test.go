package caddymodule

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The hazard tests send, through a real Caddy, requests that a lenient PSP
// (Jackson and Spring defaults: last duplicate member wins, scalars coerced,
// trailing data ignored, paths matched loosely) could read differently from
// the gateway. Every one must be refused in the PSP's own error format, with
// a message naming the field at fault, and must not reach the PSP. A few
// unambiguous rows (an escaped member name, an upper-case order id, an
// absolute-form target) show that the gateway reads them as the PSP would:
// the policy refuses them.
//
// Requests are written byte for byte on a raw connection, so that nothing
// (Go's client included) normalises a method, a path or a repeated header
// before the gateway sees it.

// hazard is one request and the refusal it must get.
type hazard struct {
	name   string
	method string   // default POST
	path   string   // request target as written on the wire
	body   string   // sent as is; Content-Length is its length
	hdr    []string // extra header lines, name then value; a repeated name is sent twice
	omit   []string // default headers not to send: Authorization, Content-Type, Content-Length
	status int
	code   string
	field  string // the error message must contain it; "" when the body as a whole is at fault
}

// rawRequest is what one hazard writes on the wire.
type rawRequest struct {
	method, target, body string
	auth                 []string // the credential header: name, value; nil sends none
	hdr                  []string // name, value pairs in order
	omit                 []string
}

// sends reports whether the default header name goes out: neither omitted
// nor spelled by the row itself.
func (req rawRequest) sends(name string) bool {
	for _, o := range req.omit {
		if strings.EqualFold(o, name) {
			return false
		}
	}
	for i := 0; i+1 < len(req.hdr); i += 2 {
		if strings.EqualFold(req.hdr[i], name) {
			return false // the row spells it itself
		}
	}
	return true
}

// headers are the header lines of req but Host and Content-Length, in
// order: the credentials, the JSON Content-Type of a body, then the row's
// own.
func (req rawRequest) headers() [][2]string {
	var out [][2]string
	if len(req.auth) == 2 && req.sends(req.auth[0]) {
		out = append(out, [2]string{req.auth[0], req.auth[1]})
	}
	if req.body != "" && req.sends("Content-Type") {
		out = append(out, [2]string{"Content-Type", "application/json"})
	}
	for i := 0; i+1 < len(req.hdr); i += 2 {
		out = append(out, [2]string{req.hdr[i], req.hdr[i+1]})
	}
	return out
}

// raw writes req on a new connection to the gateway and reads the answer.
func (g *gateway) raw(req rawRequest) (*http.Response, string) {
	g.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: localhost:%d\r\nConnection: close\r\n", req.method, req.target, testHTTPPort)
	if req.sends("Content-Length") {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(req.body))
	}
	for _, h := range req.headers() {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	b.WriteString("\r\n")
	b.WriteString(req.body)

	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", testHTTPPort), 5*time.Second)
	if err != nil {
		g.t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, b.String()); err != nil {
		g.t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		g.t.Fatalf("%s %s: reading the answer: %v", req.method, req.target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		g.t.Fatal(err)
	}
	return resp, string(body)
}

// basicAuth is the Authorization value of merchant:secret.
func basicAuth(merchant string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(merchant+":secret"))
}

// asMerchant is the credential header of merchant:secret.
func asMerchant(merchant string) []string { return []string{"Authorization", basicAuth(merchant)} }

// viaClient sends req with Go's HTTP client, as most merchants' clients
// send requests, rather than byte for byte: the target still goes out as
// written, and repeated headers stay repeated.
func (g *gateway) viaClient(req rawRequest) (*http.Response, string) {
	g.t.Helper()
	var body io.Reader = http.NoBody
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	r, err := http.NewRequest(req.method, g.base, body)
	if err != nil {
		g.t.Fatal(err)
	}
	if strings.HasPrefix(req.target, "//") {
		// An opaque part starting with // is written as a URL with a host.
		r.URL.Path, r.URL.RawPath = req.target, req.target
	} else {
		r.URL.Opaque = req.target
	}
	for _, h := range req.headers() {
		r.Header[h[0]] = append(r.Header[h[0]], h[1])
	}
	resp, err := g.tester.Client.Do(r)
	if err != nil {
		g.t.Fatalf("%s %s: %v", req.method, req.target, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		g.t.Fatal(err)
	}
	return resp, string(raw)
}

// runHazards sends every row on the wire, byte for byte, with the given
// credential header, and checks the refusal (runHazardsVia).
func runHazards(t *testing.T, g *gateway, auth []string, rows []hazard,
	errorOf func(t *testing.T, body string) (code, message string)) {
	t.Helper()
	runHazardsVia(t, g, (*gateway).raw, auth, rows, errorOf)
}

// runHazardsVia sends every row with send and the given credential header
// and checks the refusal: status, the PSP's error format via errorOf, the
// code, the field named in the message, and that the PSP received nothing.
func runHazardsVia(t *testing.T, g *gateway, send func(*gateway, rawRequest) (*http.Response, string),
	auth []string, rows []hazard, errorOf func(t *testing.T, body string) (code, message string)) {
	t.Helper()
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "POST"
			}
			before := g.sim.Stats().Total
			resp, body := send(g, rawRequest{method: method, target: tc.path, body: tc.body, auth: auth, hdr: tc.hdr, omit: tc.omit})
			if after := g.sim.Stats().Total; after != before {
				t.Fatalf("the PSP received %d requests; want none (gateway answered %d %s)", after-before, resp.StatusCode, body)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			code, msg := errorOf(t, body)
			if code != tc.code {
				t.Errorf("error code %q, want %q (%s)", code, tc.code, msg)
			}
			if !strings.Contains(msg, tc.field) {
				t.Errorf("message %q does not name %q", msg, tc.field)
			}
		})
	}
}

// createBody is a Klarna Payments create-order body for a physical order
// of 1000, with extra members appended to the top-level object.
func createBody(extra string) string {
	return `{"purchase_country":"SE","purchase_currency":"SEK","locale":"sv-SE","order_amount":1000,"order_tax_amount":0,` +
		`"order_lines":[{"type":"physical","reference":"shoe-1","name":"Shoes","quantity":1,"unit_price":1000,"tax_rate":0,"total_amount":1000,"total_tax_amount":0}]` +
		extra + `}`
}

// manyLines is a create-order body with n order lines of 1 each.
func manyLines(n int) string {
	line := `{"type":"digital","name":"x","quantity":1,"unit_price":1,"total_amount":1}`
	return fmt.Sprintf(`{"purchase_country":"SE","purchase_currency":"SEK","order_amount":%d,"order_lines":[%s]}`,
		n, strings.TrimSuffix(strings.Repeat(line+",", n), ","))
}

// emd is an attachment member holding doc as its extra merchant data.
func emd(doc string) string {
	return `,"attachment":{"content_type":"application/vnd.klarna.internal.emd-v2+json","body":` + doc + `}`
}

// Auto-capture smuggling: every spelling a lenient PSP could read as
// auto_capture true while the gateway reads something else is refused.
// shoeshop may not auto-capture, so a body the gateway misread as
// auto_capture false or absent would reach the PSP and fail the test.
func TestHazardCreateOrder(t *testing.T) {
	g := newGateway(t, exampleRules, "")
	runHazards(t, g, asMerchant("shoeshop"), createHazards(), klarnaError)
}

// createHazards are the create-order rows of the Klarna hazard tables, for
// shoeshop.
func createHazards() []hazard {
	create := func() string { return "/payments/v1/authorizations/" + randToken() + "/order" }
	const checkout = "/checkout/v3/orders"
	nested := strings.Repeat("[", 70) + strings.Repeat("]", 70)

	return []hazard{
		{name: "duplicate auto_capture, last true", path: create(), body: createBody(`,"auto_capture":false,"auto_capture":true`), status: 400, code: "BAD_VALUE", field: "auto_capture"},
		{name: "duplicate auto_capture, first true", path: create(), body: createBody(`,"auto_capture":true,"auto_capture":false`), status: 400, code: "BAD_VALUE", field: "auto_capture"},
		{name: "duplicate spelled with an escape", path: create(), body: createBody(`,"auto_capture":false,"auto\u005fcapture":true`), status: 400, code: "BAD_VALUE", field: "auto_capture"},
		{name: "escaped name read as auto_capture", path: create(), body: createBody(`,"\u0061uto_capture":true`), status: 403, code: "AUTO_CAPTURE_NOT_ALLOWED", field: "auto_capture"},
		{name: "case variant Auto_Capture", path: create(), body: createBody(`,"Auto_Capture":true`), status: 400, code: "BAD_VALUE", field: "auto_capture"},
		{name: "case variant beside the real one", path: create(), body: createBody(`,"auto_capture":false,"AUTO_CAPTURE":true`), status: 400, code: "BAD_VALUE", field: "auto_capture"},
		{name: "camel case autoCapture", path: create(), body: createBody(`,"autoCapture":true`), status: 400, code: "BAD_VALUE", field: "auto_capture"},
		{name: "kebab case auto-capture", path: create(), body: createBody(`,"auto_capture":false,"auto-capture":true`), status: 400, code: "BAD_VALUE", field: "auto_capture"},
		{name: "auto_capture as string", path: create(), body: createBody(`,"auto_capture":"true"`), status: 400, code: "BAD_VALUE", field: "auto_capture"},
		{name: "auto_capture as 1", path: create(), body: createBody(`,"auto_capture":1`), status: 400, code: "BAD_VALUE", field: "auto_capture"},
		{name: "auto_capture null", path: create(), body: createBody(`,"auto_capture":null`), status: 400, code: "BAD_VALUE", field: "auto_capture"},
		{name: "auto_capture as array", path: create(), body: createBody(`,"auto_capture":[true]`), status: 400, code: "BAD_VALUE", field: "auto_capture"},
		{name: "auto_capture True", path: create(), body: createBody(`,"auto_capture":True`), status: 400, code: "BAD_VALUE", field: "auto_capture"},
		{name: "checkout: duplicate options.auto_capture", path: checkout, body: createBody(`,"options":{"auto_capture":false,"auto_capture":true}`), status: 400, code: "BAD_VALUE", field: "$.options"},
		{name: "checkout: options.auto_capture as string", path: checkout, body: createBody(`,"options":{"auto_capture":"true"}`), status: 400, code: "BAD_VALUE", field: "options.auto_capture"},
		{name: "checkout: options.Auto_Capture", path: checkout, body: createBody(`,"options":{"Auto_Capture":true}`), status: 400, code: "BAD_VALUE", field: "options.auto_capture"},
		{name: "checkout: duplicate options", path: checkout, body: createBody(`,"options":{"auto_capture":false},"options":{"auto_capture":true}`), status: 400, code: "BAD_VALUE", field: "options"},
		{name: "checkout: escaped name read as options.auto_capture", path: checkout, body: createBody(`,"options":{"auto\u005fcapture":true}`), status: 403, code: "AUTO_CAPTURE_NOT_ALLOWED", field: "auto_capture"},
		{name: "checkout: options not an object", path: checkout, body: createBody(`,"options":"auto_capture"`), status: 400, code: "BAD_VALUE", field: "options"},
		{name: "trailing second object", path: create(), body: createBody(`,"auto_capture":false`) + `{"auto_capture":true}`, status: 400, code: "BAD_VALUE", field: "after the JSON object"},
		{name: "trailing garbage", path: create(), body: createBody(``) + ` x`, status: 400, code: "BAD_VALUE", field: "after the JSON object"},
		{name: "top-level array", path: create(), body: `[` + createBody(``) + `]`, status: 400, code: "BAD_VALUE", field: "JSON object"},
		{name: "byte order mark", path: create(), body: "\uFEFF" + createBody(``), status: 400, code: "BAD_VALUE", field: "byte order mark"},
		{name: "invalid UTF-8 in a value", path: create(), body: createBody(`,"merchant_reference1":"` + "\xff\xfe" + `"`), status: 400, code: "BAD_VALUE", field: "merchant_reference1"},
		{name: "invalid UTF-8 in a name", path: create(), body: createBody(`,"auto_capture":false,"auto_capture` + "\xc0" + `":true`), status: 400, code: "BAD_VALUE", field: "UTF-8"},
		{name: "lone surrogate in a value", path: create(), body: createBody(`,"merchant_reference1":"\ud800"`), status: 400, code: "BAD_VALUE", field: "merchant_reference1"},
		{name: "lone surrogates in names", path: create(), body: createBody(`,"x\ud800":true,"x\udbff":false`), status: 400, code: "BAD_VALUE", field: "surrogate"},
		{name: "control character in a string", path: create(), body: createBody(`,"merchant_reference1":"a` + "\x01" + `"`), status: 400, code: "BAD_VALUE", field: "merchant_reference1"},
		{name: "deep nesting", path: create(), body: createBody(`,"merchant_data":` + nested), status: 400, code: "BAD_VALUE", field: "merchant_data"},
		{name: "EMD body not JSON", path: create(), body: createBody(`,"auto_capture":false` + emd(`"{voucher: 1}"`)), status: 400, code: "BAD_VALUE", field: "attachment.body"},
		{name: "EMD body with duplicate keys", path: create(), body: createBody(`,"auto_capture":false` + emd(`"{\"voucher\":[],\"voucher\":[{\"voucher_name\":\"x\"}]}"`)), status: 400, code: "BAD_VALUE", field: "attachment.body"},
		{name: "EMD body with trailing data", path: create(), body: createBody(`,"auto_capture":false` + emd(`"{\"voucher\":[]}{\"voucher\":[1]}"`)), status: 400, code: "BAD_VALUE", field: "attachment.body"},
		{name: "EMD body not a string", path: create(), body: createBody(`,"auto_capture":false` + emd(`{"voucher":[1]}`)), status: 400, code: "BAD_VALUE", field: "attachment.body"},
		{name: "EMD of another content type", path: create(), body: createBody(`,"attachment":{"content_type":"text/plain","body":"{}"}`), status: 400, code: "BAD_VALUE", field: "attachment.content_type"},
		{name: "duplicate attachment", path: create(), body: createBody(emd(`"{}"`) + emd(`"{\"voucher\":[1]}"`)), status: 400, code: "BAD_VALUE", field: "attachment"},
		{name: "comment", path: create(), body: createBody(`,"auto_capture":false /*, "auto_capture":true */`), status: 400, code: "BAD_VALUE", field: "auto_capture"},
		{name: "line comment", path: create(), body: createBody(`,"auto_capture": // false
true`), status: 400, code: "BAD_VALUE", field: "auto_capture"},
		{name: "single quotes", path: create(), body: createBody(`,'auto_capture':true`), status: 400, code: "BAD_VALUE", field: "member name"},
		{name: "trailing comma", path: create(), body: createBody(`,"auto_capture":false,`), status: 400, code: "BAD_VALUE", field: "trailing comma"},
		{name: "NaN amount", path: create(), body: strings.Replace(createBody(``), `"order_amount":1000`, `"order_amount":NaN`, 1), status: 400, code: "BAD_VALUE", field: "order_amount"},
		{name: "order_amount as string", path: create(), body: strings.Replace(createBody(``), `"order_amount":1000`, `"order_amount":"1000"`, 1), status: 400, code: "BAD_VALUE", field: "order_amount"},
		{name: "order_amount with exponent", path: create(), body: strings.Replace(createBody(``), `"order_amount":1000`, `"order_amount":1e3`, 1), status: 400, code: "BAD_VALUE", field: "order_amount"},
		{name: "total_amount as string", path: create(), body: strings.Replace(createBody(``), `"total_amount":1000`, `"total_amount":"1000"`, 1), status: 400, code: "BAD_VALUE", field: "order_lines[0].total_amount"},
		{name: "more than 1000 order lines", path: create(), body: manyLines(1001), status: 400, code: "BAD_VALUE", field: "order_lines"},
		{name: "order line type duplicated", path: create(), body: strings.Replace(createBody(`,"auto_capture":false`), `"type":"physical"`, `"type":"physical","type":"digital"`, 1), status: 400, code: "BAD_VALUE", field: "order_lines[0]"},
	}
}

// Captures: only an exact positive integer within the remaining authorized
// amount, read once; anything a lenient PSP could coerce is refused.
func TestHazardCapture(t *testing.T) {
	g := newGateway(t, exampleRules, "")
	runHazards(t, g, asMerchant("shoeshop"), captureHazards(g.createOrder("shoeshop", 1000, false)), klarnaError)
}

// captureHazards are the Klarna hazard rows of order changes on id, an
// order of shoeshop's of 1000 with nothing captured.
func captureHazards(id string) []hazard {
	path := "/ordermanagement/v1/orders/" + id + "/captures"
	return []hazard{
		{name: "amount as string", path: path, body: `{"captured_amount":"500"}`, status: 400, code: "BAD_VALUE", field: "captured_amount"},
		{name: "exponent", path: path, body: `{"captured_amount":1e3}`, status: 400, code: "BAD_VALUE", field: "captured_amount"},
		{name: "fraction zero", path: path, body: `{"captured_amount":1000.0}`, status: 400, code: "BAD_VALUE", field: "captured_amount"},
		{name: "fraction", path: path, body: `{"captured_amount":999.9}`, status: 400, code: "BAD_VALUE", field: "captured_amount"},
		{name: "negative", path: path, body: `{"captured_amount":-1}`, status: 400, code: "BAD_VALUE", field: "captured_amount"},
		{name: "negative zero", path: path, body: `{"captured_amount":-0}`, status: 400, code: "BAD_VALUE", field: "captured_amount"},
		{name: "zero", path: path, body: `{"captured_amount":0}`, status: 400, code: "BAD_VALUE", field: "captured_amount"},
		{name: "above the PSP maximum", path: path, body: `{"captured_amount":200000001}`, status: 400, code: "BAD_VALUE", field: "captured_amount"},
		{name: "int64 overflow", path: path, body: `{"captured_amount":9223372036854775808}`, status: 400, code: "BAD_VALUE", field: "captured_amount"},
		{name: "wraps to a small amount", path: path, body: `{"captured_amount":18446744073709552616}`, status: 400, code: "BAD_VALUE", field: "captured_amount"},
		{name: "leading zero", path: path, body: `{"captured_amount":0500}`, status: 400, code: "BAD_VALUE", field: "captured_amount"},
		{name: "leading plus", path: path, body: `{"captured_amount":+500}`, status: 400, code: "BAD_VALUE", field: "captured_amount"},
		{name: "null", path: path, body: `{"captured_amount":null}`, status: 400, code: "BAD_VALUE", field: "captured_amount"},
		{name: "boolean", path: path, body: `{"captured_amount":true}`, status: 400, code: "BAD_VALUE", field: "captured_amount"},
		{name: "array", path: path, body: `{"captured_amount":[500]}`, status: 400, code: "BAD_VALUE", field: "captured_amount"},
		{name: "missing", path: path, body: `{"description":"shipped"}`, status: 400, code: "BAD_VALUE", field: "captured_amount"},
		{name: "duplicate captured_amount", path: path, body: `{"captured_amount":1,"captured_amount":5000}`, status: 400, code: "BAD_VALUE", field: "captured_amount"},
		{name: "duplicate spelled with an escape", path: path, body: `{"captured_amount":1,"captured\u005famount":5000}`, status: 400, code: "BAD_VALUE", field: "captured_amount"},
		{name: "case variant beside the real one", path: path, body: `{"captured_amount":1,"Captured_Amount":5000}`, status: 400, code: "BAD_VALUE", field: "captured_amount"},
		{name: "camel case capturedAmount", path: path, body: `{"captured_amount":1,"capturedAmount":5000}`, status: 400, code: "BAD_VALUE", field: "captured_amount"},
		{name: "trailing second object", path: path, body: `{"captured_amount":1}{"captured_amount":5000}`, status: 400, code: "BAD_VALUE", field: "after the JSON object"},
		{name: "order_lines total mismatch", path: path, body: `{"captured_amount":100,"order_lines":[{"name":"a","quantity":1,"unit_price":5000,"total_amount":5000}]}`, status: 400, code: "BAD_VALUE", field: "order_lines"},
		{name: "order line amount as string", path: path, body: `{"captured_amount":100,"order_lines":[{"name":"a","total_amount":"100"}]}`, status: 400, code: "BAD_VALUE", field: "order_lines[0].total_amount"},
		{name: "order_lines not an array", path: path, body: `{"captured_amount":100,"order_lines":{"total_amount":100}}`, status: 400, code: "BAD_VALUE", field: "order_lines"},
		{name: "shipping_info not an array", path: path, body: `{"captured_amount":100,"shipping_info":{"tracking_number":"1"}}`, status: 400, code: "BAD_VALUE", field: "shipping_info"},
		// The ledger follows the authorized amount, so an update must be
		// read exactly too; a refund is held to the same grammar.
		{name: "update: duplicate order_amount", method: "PATCH", path: "/ordermanagement/v1/orders/" + id + "/authorization", body: `{"order_amount":1000,"order_amount":100000}`, status: 400, code: "BAD_VALUE", field: "order_amount"},
		{name: "update: order_amount as string", method: "PATCH", path: "/ordermanagement/v1/orders/" + id + "/authorization", body: `{"order_amount":"100000"}`, status: 400, code: "BAD_VALUE", field: "order_amount"},
		{name: "update: order_lines total mismatch", method: "PATCH", path: "/ordermanagement/v1/orders/" + id + "/authorization", body: `{"order_amount":1000,"order_lines":[{"total_amount":100000}]}`, status: 400, code: "BAD_VALUE", field: "order_lines"},
		{name: "refund: amount with exponent", path: "/ordermanagement/v1/orders/" + id + "/refunds", body: `{"refunded_amount":1e2}`, status: 400, code: "BAD_VALUE", field: "refunded_amount"},
		{name: "release: trailing data", path: "/ordermanagement/v1/orders/" + id + "/release-remaining-authorization", body: `{}{}`, status: 400, code: "BAD_VALUE", field: "after the JSON object"},
		// Unambiguous, and over the remaining amount: refused by the ledger.
		{name: "over the authorized amount", path: path, body: `{"captured_amount":1001}`, status: 403, code: "CAPTURE_NOT_ALLOWED", field: "captured_amount 1001"},
		{name: "order id in upper case", path: "/ordermanagement/v1/orders/" + strings.ToUpper(id) + "/captures", body: `{"captured_amount":1001}`, status: 403, code: "CAPTURE_NOT_ALLOWED", field: "captured_amount 1001"},
	}
}

// Paths: no spelling a lenient router could map to a guarded operation
// bypasses classification. Each row is an over-capture (or a refused
// auto-capture) that would reach the PSP if the gateway did not see it.
func TestHazardPaths(t *testing.T) {
	g := newGateway(t, exampleRules, "")
	runHazards(t, g, asMerchant("shoeshop"), pathHazards(t, g), klarnaError)
}

// pathHazards are the Klarna hazard rows of paths and methods, on an order
// of shoeshop's it creates through g.
func pathHazards(t *testing.T, g *gateway) []hazard {
	t.Helper()
	id := g.createOrder("shoeshop", 1000, false)
	for i := 0; shortUUID(id) == id; i++ {
		// The PSP reads the shortened spelling of an id as that order:
		// find an order whose id has one (one in four has).
		if i == 100 {
			t.Fatal("no order id with a leading zero in a group")
		}
		id = g.createOrder("shoeshop", 1000, false)
	}
	over := `{"captured_amount":5000}`
	auto := createBody(`,"auto_capture":true`)
	om := "/ordermanagement/v1/orders/"

	rows := []hazard{
		{name: "trailing slash", path: om + id + "/captures/", body: over},
		{name: "double slash inside", path: om + "/" + id + "/captures", body: over},
		{name: "double slash first", path: "/" + om + id + "/captures", body: over},
		{name: "dot segment", path: "/ordermanagement/v1/./orders/" + id + "/captures", body: over},
		{name: "dot-dot segment", path: om + "x/../" + id + "/captures", body: over},
		{name: "dot-dot from outside the prefix", path: "/static/../ordermanagement/v1/orders/" + id + "/captures", body: over},
		{name: "matrix parameter", path: om + id + "/captures;jsessionid=x", body: over},
		{name: "matrix parameter on the id", path: om + id + ";v=1/captures", body: over},
		{name: "matrix parameter on the prefix", path: "/ordermanagement;x=1/v1/orders/" + id + "/captures", body: over},
		{name: "percent-encoded letter", path: om + id + "/%63aptures", body: over},
		{name: "percent-encoded prefix letter", path: "/%6Frdermanagement/v1/orders/" + id + "/captures", body: over},
		{name: "double percent-encoding", path: "/%256Frdermanagement/v1/orders/" + id + "/captures", body: over},
		{name: "encoded slash", path: om + id + "%2Fcaptures", body: over},
		{name: "encoded slashes throughout", path: "/ordermanagement%2Fv1%2Forders%2F" + id + "%2Fcaptures", body: over},
		{name: "encoded space", path: om + id + "/captures%20", body: over},
		{name: "upper-case segment", path: om + id + "/CAPTURES", body: over},
		{name: "upper-case prefix", path: "/OrderManagement/v1/orders/" + id + "/captures", body: over},
		{name: "upper-case version", path: "/ordermanagement/V1/orders/" + id + "/captures", body: over},
		{name: "json suffix", path: om + id + "/captures.json", body: over},
		{name: "suffix on the prefix", path: "/ordermanagement.json/v1/orders/" + id + "/captures", body: over},
		{name: "fragment", path: om + id + "/captures#x", body: over},
		{name: "raw non-ASCII byte", path: om + id + "/captures\xc2\xa0", body: over},
		{name: "trailing dot segment", path: om + id + "/captures/.", body: over},
		{name: "backslashes", path: "/ordermanagement\\v1\\orders\\" + id + "\\captures", body: over},
		{name: "prefix with a Unicode case fold", path: "/payment%C5%BF/v1/authorizations/" + randToken() + "/order", body: auto},
		{name: "create order: trailing slash", path: "/payments/v1/authorizations/" + randToken() + "/order/", body: auto},
		{name: "create order: upper case", path: "/payments/v1/authorizations/" + randToken() + "/ORDER", body: auto},
		{name: "create order: matrix parameter", path: "/payments/v1/authorizations/" + randToken() + "/order;a=b", body: auto},
		{name: "checkout: trailing slash", path: "/checkout/v3/orders/", body: createBody(`,"options":{"auto_capture":true}`)},
		{name: "checkout: json suffix", path: "/checkout/v3/orders.json", body: createBody(`,"options":{"auto_capture":true}`)},
		// Order ids a Java PSP reads as a UUID, or that are no UUID at all.
		{name: "order id with shortened groups", path: om + shortUUID(id) + "/captures", body: over},
		{name: "order id with a group one digit short", path: om + id[:9] + id[10:] + "/captures", body: over},
		{name: "order id with a leading zero added", path: om + "0" + id + "/captures", body: over},
		{name: "order id without dashes", path: om + strings.ReplaceAll(id, "-", "") + "/captures", body: over},
		{name: "order id with a suffix", path: om + id + "-1/captures", body: over},
		{name: "order id not a UUID", path: om + "order_42/captures", body: over},
		{name: "order read with shortened groups", method: "GET", path: om + shortUUID(id)},
		{name: "update with shortened groups", method: "PATCH", path: om + shortUUID(id) + "/authorization", body: `{"order_amount":100000}`},
		{name: "release with shortened groups", path: om + shortUUID(id) + "/release-remaining-authorization"},
	}
	for i := range rows {
		rows[i].status, rows[i].code, rows[i].field = 400, "BAD_VALUE", "path"
	}
	rows = append(rows,
		hazard{name: "lower-case method", method: "post", path: om + id + "/captures", body: over, status: 400, code: "BAD_VALUE", field: "method"},
		hazard{name: "mixed-case method", method: "Post", path: om + id + "/captures", body: over, status: 400, code: "BAD_VALUE", field: "method"},
		hazard{name: "lower-case method on create order", method: "post", path: "/payments/v1/authorizations/" + randToken() + "/order", body: auto, status: 400, code: "BAD_VALUE", field: "method"},
		hazard{name: "lower-case PATCH", method: "patch", path: om + id + "/authorization", body: `{"order_amount":100000}`, status: 400, code: "BAD_VALUE", field: "method"},
		// Canonical spellings are classified, whatever form the target takes.
		hazard{name: "absolute-form target", path: fmt.Sprintf("http://localhost:%d%s%s/captures", testHTTPPort, om, id), body: over, status: 403, code: "CAPTURE_NOT_ALLOWED", field: "captured_amount 5000"},
		hazard{name: "query string", path: om + id + "/captures?captured_amount=1", body: over, status: 403, code: "CAPTURE_NOT_ALLOWED", field: "captured_amount 5000"},
	)
	return rows
}

// shortUUID spells a UUID with the leading zeros of each group dropped, as
// Java's UUID.fromString still reads it (a-0-0-0-b).
func shortUUID(id string) string {
	groups := strings.Split(id, "-")
	for i, g := range groups {
		if g = strings.TrimLeft(g, "0"); g == "" {
			g = "0"
		}
		groups[i] = g
	}
	return strings.Join(groups, "-")
}

// Headers that decide identity, idempotency, the operation or how the body
// is read must be unambiguous. Each row is a capture the ledger would allow,
// so only the header can be the reason for the refusal.
func TestHazardHeaders(t *testing.T) {
	g := newGateway(t, exampleRules, "")
	runHazards(t, g, asMerchant("shoeshop"), headerHazards(g.createOrder("shoeshop", 1000, false)), klarnaError)
}

// headerHazards are the Klarna hazard rows of headers, each on a capture
// of 100 the ledger would allow from id, an order of shoeshop's of 1000.
func headerHazards(id string) []hazard {
	path := "/ordermanagement/v1/orders/" + id + "/captures"
	ok := `{"captured_amount":100}`
	const key = "Klarna-Idempotency-Key"
	return []hazard{
		{name: "two Authorization headers", path: path, body: ok, hdr: []string{"Authorization", basicAuth("shoeshop"), "Authorization", basicAuth("digitalshop")}, status: 400, code: "BAD_VALUE", field: "Authorization"},
		{name: "the same Authorization twice", path: path, body: ok, hdr: []string{"Authorization", basicAuth("shoeshop"), "Authorization", basicAuth("shoeshop")}, status: 400, code: "BAD_VALUE", field: "Authorization"},
		{name: "Authorization not base64", path: path, body: ok, hdr: []string{"Authorization", "Basic !!!"}, status: 400, code: "BAD_VALUE", field: "Authorization"},
		{name: "Authorization base64 without padding", path: path, body: ok, hdr: []string{"Authorization", strings.TrimRight(basicAuth("shoeshop1"), "=")}, status: 400, code: "BAD_VALUE", field: "Authorization"},
		{name: "Authorization of another scheme", path: path, body: ok, hdr: []string{"Authorization", "Bearer shoeshop"}, status: 400, code: "BAD_VALUE", field: "Authorization"},
		{name: "Authorization with two credentials", path: path, body: ok, hdr: []string{"Authorization", basicAuth("shoeshop") + ", " + basicAuth("digitalshop")}, status: 400, code: "BAD_VALUE", field: "Authorization"},
		{name: "Authorization with an empty user", path: path, body: ok, hdr: []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(":secret"))}, status: 400, code: "BAD_VALUE", field: "Authorization"},
		{name: "Authorization with a control character", path: path, body: ok, hdr: []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("shoe\x00shop:secret"))}, status: 400, code: "BAD_VALUE", field: "Authorization"},
		{name: "two idempotency keys", path: path, body: ok, hdr: []string{key, "a", key, "b"}, status: 400, code: "BAD_VALUE", field: key},
		{name: "two idempotency keys in any case", path: path, body: ok, hdr: []string{key, "a", "klarna-idempotency-key", "b"}, status: 400, code: "BAD_VALUE", field: key},
		{name: "empty idempotency key", path: path, body: ok, hdr: []string{key, ""}, status: 400, code: "BAD_VALUE", field: key},
		{name: "over-long idempotency key", path: path, body: ok, hdr: []string{key, strings.Repeat("k", 256)}, status: 400, code: "BAD_VALUE", field: key},
		{name: "tab in the idempotency key", path: path, body: ok, hdr: []string{key, "a\tb"}, status: 400, code: "BAD_VALUE", field: key},
		{name: "non-ASCII idempotency key", path: path, body: ok, hdr: []string{key, "cl\xc3\xa9"}, status: 400, code: "BAD_VALUE", field: key},
		{name: "method override", path: path, body: ok, hdr: []string{"X-HTTP-Method-Override", "PATCH"}, status: 400, code: "BAD_VALUE", field: "X-HTTP-Method-Override"},
		{name: "X-HTTP-Method", path: path, body: ok, hdr: []string{"X-HTTP-Method", "DELETE"}, status: 400, code: "BAD_VALUE", field: "X-HTTP-Method"},
		{name: "X-Method-Override", path: path, body: ok, hdr: []string{"X-Method-Override", "PUT"}, status: 400, code: "BAD_VALUE", field: "X-Method-Override"},
		{name: "method override on a non-guarded path", path: "/payments/v1/sessions", body: `{"purchase_country":"SE"}`, hdr: []string{"X-HTTP-Method-Override", "PATCH"}, status: 400, code: "BAD_VALUE", field: "X-HTTP-Method-Override"},
		{name: "method override on a read", method: "GET", path: "/ordermanagement/v1/orders/" + id, hdr: []string{"X-HTTP-Method-Override", "POST"}, status: 400, code: "BAD_VALUE", field: "X-HTTP-Method-Override"},
		{name: "method override outside the PSP's prefixes", method: "GET", path: "/settlements/v1/payouts", hdr: []string{"X-HTTP-Method", "POST"}, status: 400, code: "BAD_VALUE", field: "X-HTTP-Method"},
		{name: "gzip body", path: path, body: ok, hdr: []string{"Content-Encoding", "gzip"}, status: 415, code: "UNSUPPORTED_MEDIA_TYPE", field: "Content-Encoding"},
		{name: "br body", path: path, body: ok, hdr: []string{"Content-Encoding", "br"}, status: 415, code: "UNSUPPORTED_MEDIA_TYPE", field: "Content-Encoding"},
		{name: "identity then gzip", path: path, body: ok, hdr: []string{"Content-Encoding", "identity, gzip"}, status: 415, code: "UNSUPPORTED_MEDIA_TYPE", field: "Content-Encoding"},
		{name: "two encodings headers", path: path, body: ok, hdr: []string{"Content-Encoding", "identity", "Content-Encoding", "deflate"}, status: 415, code: "UNSUPPORTED_MEDIA_TYPE", field: "Content-Encoding"},
		{name: "gzip create order", path: "/payments/v1/authorizations/" + randToken() + "/order", body: createBody(`,"auto_capture":true`), hdr: []string{"Content-Encoding", "gzip"}, status: 415, code: "UNSUPPORTED_MEDIA_TYPE", field: "Content-Encoding"},
		{name: "text/plain", path: path, body: ok, hdr: []string{"Content-Type", "text/plain"}, status: 415, code: "UNSUPPORTED_MEDIA_TYPE", field: "Content-Type"},
		{name: "no Content-Type", path: path, body: ok, omit: []string{"Content-Type"}, status: 415, code: "UNSUPPORTED_MEDIA_TYPE", field: "Content-Type"},
		{name: "multipart", path: path, body: "--b\r\nContent-Disposition: form-data; name=\"captured_amount\"\r\n\r\n5000\r\n--b--\r\n", hdr: []string{"Content-Type", "multipart/form-data; boundary=b"}, status: 415, code: "UNSUPPORTED_MEDIA_TYPE", field: "Content-Type"},
		{name: "form encoded", path: path, body: "captured_amount=5000", hdr: []string{"Content-Type", "application/x-www-form-urlencoded"}, status: 415, code: "UNSUPPORTED_MEDIA_TYPE", field: "Content-Type"},
		{name: "another charset", path: path, body: ok, hdr: []string{"Content-Type", "application/json; charset=utf-16"}, status: 415, code: "UNSUPPORTED_MEDIA_TYPE", field: "Content-Type"},
		{name: "two Content-Type headers", path: path, body: ok, hdr: []string{"Content-Type", "application/json", "Content-Type", "text/plain"}, status: 415, code: "UNSUPPORTED_MEDIA_TYPE", field: "Content-Type"},
		{name: "JSON-like media type", path: path, body: ok, hdr: []string{"Content-Type", "application/json-patch+json"}, status: 415, code: "UNSUPPORTED_MEDIA_TYPE", field: "Content-Type"},
	}
}

// A CGI-style PSP reads X_API_Key or Klarna.Idempotency.Key as the
// hyphenated header. Caddy drops such aliases unless the operator allows
// them, and then drops the hyphenated spelling instead; the gateway refuses
// the alias rather than see no header where the PSP reads one.
func TestHazardHeaderAliases(t *testing.T) {
	g := newGatewayGlobal(t, exampleRules, "", `servers {
			expected_underscore_headers Klarna_Idempotency_Key X_HTTP_Method_Override
			expected_dot_headers Klarna.Idempotency.Key
		}`)
	id := g.createOrder("shoeshop", 1000, false)
	path := "/ordermanagement/v1/orders/" + id + "/captures"
	ok := `{"captured_amount":100}`
	const key = "Klarna-Idempotency-Key"
	runHazards(t, g, asMerchant("shoeshop"), []hazard{
		{name: "idempotency key with underscores", path: path, body: ok, hdr: []string{"Klarna_Idempotency_Key", "a"}, status: 400, code: "BAD_VALUE", field: key},
		{name: "idempotency key beside its underscore alias", path: path, body: ok, hdr: []string{key, "a", "Klarna_Idempotency_Key", "b"}, status: 400, code: "BAD_VALUE", field: key},
		{name: "idempotency key with dots", path: path, body: ok, hdr: []string{"Klarna.Idempotency.Key", "a"}, status: 400, code: "BAD_VALUE", field: key},
		{name: "method override with underscores", path: path, body: ok, hdr: []string{"X_HTTP_Method_Override", "PATCH"}, status: 400, code: "BAD_VALUE", field: "X-HTTP-Method-Override"},
		{name: "method override with underscores on a non-guarded path", path: "/payments/v1/sessions", body: `{}`, hdr: []string{"x_http_method_override", "PATCH"}, status: 400, code: "BAD_VALUE", field: "X-HTTP-Method-Override"},
	}, klarnaError)

	hg := newGatewayGlobal(t, exampleRules, "psp hellgate", `servers {
			expected_underscore_headers X_API_Key
		}`)
	runHazards(t, hg, []string{"X_API_Key", "hg_test_key_1"}, []hazard{
		{name: "API key with underscores", path: "/payments/one-off", body: `{"amount":1000,"currency_code":"EUR","reference":"o","source":{"type":"card"}}`,
			status: 400, code: "BAD_VALUE", field: "X-API-Key"},
	}, hellgateError)
}

// Hellgate: the same hazards in its dialect and its error format.
func TestHazardHellgate(t *testing.T) {
	g := newGateway(t, exampleRules, "psp hellgate")
	const apiKey = "hg_test_key_1"
	id := g.hgPayment(apiKey, 1000)
	path := "/payments/" + id + "/capture"
	ok := `{"amount":100,"currency_code":"EUR","reference":"c"}`
	create := func(amount, currency string) string {
		return `{"amount":` + amount + `,"currency_code":` + currency + `,"reference":"o","source":{"type":"card"}}`
	}

	rows := []hazard{
		{name: "X-API-Key repeated", path: path, body: ok, hdr: []string{"X-API-Key", apiKey, "X-API-Key", "hg_other_key"}, status: 400, code: "BAD_VALUE", field: "X-API-Key"},
		{name: "X-API-Key repeated in another case", path: path, body: ok, hdr: []string{"X-API-Key", apiKey, "x-api-key", apiKey}, status: 400, code: "BAD_VALUE", field: "X-API-Key"},
		{name: "two idempotency keys", path: path, body: ok, hdr: []string{"X-Idempotency-Key", "a", "x-idempotency-key", "b"}, status: 400, code: "BAD_VALUE", field: "X-Idempotency-Key"},
		{name: "capture amount as string", path: path, body: `{"amount":"100","reference":"c"}`, status: 400, code: "BAD_VALUE", field: "amount"},
		{name: "capture amount with fraction", path: path, body: `{"amount":100.0,"reference":"c"}`, status: 400, code: "BAD_VALUE", field: "amount"},
		{name: "capture amount null", path: path, body: `{"amount":null,"reference":"c"}`, status: 400, code: "BAD_VALUE", field: "amount"},
		{name: "duplicate capture amount", path: path, body: `{"amount":100,"amount":5000,"reference":"c"}`, status: 400, code: "BAD_VALUE", field: "amount"},
		{name: "capture Amount case variant", path: path, body: `{"Amount":5000,"reference":"c"}`, status: 400, code: "BAD_VALUE", field: "amount"},
		{name: "currency_code as number", path: path, body: `{"amount":100,"currency_code":978,"reference":"c"}`, status: 400, code: "BAD_VALUE", field: "currency_code"},
		{name: "currency_code as array", path: path, body: `{"amount":100,"currency_code":["EUR"],"reference":"c"}`, status: 400, code: "BAD_VALUE", field: "currency_code"},
		{name: "currency_code in lower case", path: path, body: `{"amount":100,"currency_code":"eur","reference":"c"}`, status: 400, code: "BAD_VALUE", field: "currency_code"},
		{name: "duplicate currency_code", path: path, body: `{"amount":100,"currency_code":"EUR","currency_code":"SEK","reference":"c"}`, status: 400, code: "BAD_VALUE", field: "currency_code"},
		{name: "reference as number", path: path, body: `{"amount":100,"reference":7}`, status: 400, code: "BAD_VALUE", field: "reference"},
		{name: "trailing data", path: path, body: `{"amount":100,"reference":"c"}{"amount":5000}`, status: 400, code: "BAD_VALUE", field: "after the JSON object"},
		{name: "create: amount as string", path: "/payments/one-off", body: create(`"1000"`, `"EUR"`), status: 400, code: "BAD_VALUE", field: "amount"},
		{name: "create: amount zero", path: "/payments/one-off", body: create(`0`, `"EUR"`), status: 400, code: "BAD_VALUE", field: "amount"},
		{name: "create: currency_code as number", path: "/payments/one-off", body: create(`1000`, `978`), status: 400, code: "BAD_VALUE", field: "currency_code"},
		{name: "create: currency_code missing", path: "/payments/one-off", body: `{"amount":1000,"reference":"o"}`, status: 400, code: "BAD_VALUE", field: "currency_code"},
		{name: "trailing slash", path: path + "/", body: ok, status: 400, code: "BAD_VALUE", field: "path"},
		{name: "upper-case segment", path: "/payments/" + id + "/Capture", body: ok, status: 400, code: "BAD_VALUE", field: "path"},
		{name: "encoded slash", path: "/payments/" + id + "%2Fcapture", body: ok, status: 400, code: "BAD_VALUE", field: "path"},
		{name: "create: suffix", path: "/payments/one-off.json", body: create(`1000`, `"EUR"`), status: 400, code: "BAD_VALUE", field: "path"},
		{name: "lower-case method", method: "post", path: path, body: ok, status: 400, code: "BAD_VALUE", field: "method"},
		{name: "method override", path: path, body: ok, hdr: []string{"X-HTTP-Method-Override", "DELETE"}, status: 400, code: "BAD_VALUE", field: "X-HTTP-Method-Override"},
		{name: "gzip body", path: path, body: ok, hdr: []string{"Content-Encoding", "gzip"}, status: 415, code: "UNSUPPORTED_MEDIA_TYPE", field: "Content-Encoding"},
		{name: "text/plain", path: path, body: ok, hdr: []string{"Content-Type", "text/plain"}, status: 415, code: "UNSUPPORTED_MEDIA_TYPE", field: "Content-Type"},
		{name: "over the authorized amount", path: path, body: `{"amount":1001,"reference":"c"}`, status: 403, code: "CAPTURE_NOT_ALLOWED", field: "amount 1001"},
	}
	runHazards(t, g, []string{"X-API-Key", apiKey}, rows, hellgateError)
}

// Positive controls: bodies with unusual but unambiguous formatting reach
// the PSP byte for byte, so the strict reading costs a well-behaved
// integration nothing.
func TestHazardUnusualFormattingIsForwarded(t *testing.T) {
	g := newGateway(t, exampleRules, "")
	lastBody := func(op string) string {
		t.Helper()
		reqs := g.sim.Requests()
		for i := len(reqs) - 1; i >= 0; i-- {
			if reqs[i].Operation == op {
				return string(reqs[i].Body)
			}
		}
		t.Fatalf("the PSP received no %s", op)
		return ""
	}

	// Tabs, CRLF, members in another order, Unicode written raw and as
	// escapes (a surrogate pair included), an escaped name, and an EMD.
	create := "\t{\r\n  \"order_lines\" : [ {\"total_amount\":1000 , \"name\":\"E-bok \u2013 \u00c5\u00e4\u00f6 \U0001F4DA\", \"type\":\"digital\",\"quantity\":1,\"unit_price\":1000} ] ,\r\n" +
		`  "order_amount":1000, "purchase_currency" :"SEK","purchase_country":"SE", "merchant_reference1":"\u00e5\ud83d\udcda\/\"q\"",` + "\n" +
		`  "auto\u005fcapture" : true` + emd(`"{\"voucher\": [ {\"voucher_name\": \"B\u00f6cker\"} ]}"`) + " }\n\n"
	before := g.sim.Stats().Total
	resp, body := g.raw(rawRequest{method: "POST", target: "/payments/v1/authorizations/" + randToken() + "/order", body: create,
		auth: asMerchant("digitalshop"), hdr: []string{"Content-Type", "application/json; charset=UTF-8"}})
	if resp.StatusCode != 200 {
		t.Fatalf("create order: %d %s", resp.StatusCode, body)
	}
	if got := lastBody("klarna.create_order"); got != create {
		t.Fatalf("the PSP received %q; want the bytes sent, %q", got, create)
	}
	autoCaptured := false
	for _, o := range g.sim.Stats().Orders {
		autoCaptured = autoCaptured || o.Merchant == "digitalshop" && o.AutoCapture
	}
	if !autoCaptured {
		t.Fatal("the PSP has no auto-captured order for digitalshop")
	}

	// A capture with identity encoding, a lower-case auth scheme, and its
	// members in any order.
	id := g.createOrder("shoeshop", 1000, false)
	capture := "{ \"description\" : \"Skor \u2013 r\u00f6da\",\n\t\"order_lines\":[{\"total_amount\":400,\"name\":\"\\u00e4\"}], \"captured_amount\"\t:\t400 }"
	resp, body = g.raw(rawRequest{method: "POST", target: "/ordermanagement/v1/orders/" + id + "/captures", body: capture,
		auth: []string{"Authorization", "basic " + strings.TrimPrefix(basicAuth("shoeshop"), "Basic ")}, hdr: []string{"Content-Encoding", "identity"}})
	if resp.StatusCode != 201 {
		t.Fatalf("capture: %d %s", resp.StatusCode, body)
	}
	if got := lastBody("klarna.capture"); got != capture {
		t.Fatalf("the PSP received %q; want the bytes sent, %q", got, capture)
	}

	// A chunked body is read once and forwarded as the same bytes.
	chunked := `{"captured_amount": 100}`
	resp, body = g.raw(rawRequest{method: "POST", target: "/ordermanagement/v1/orders/" + id + "/captures",
		body: fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(chunked), chunked), auth: asMerchant("shoeshop"),
		hdr: []string{"Transfer-Encoding", "chunked"}, omit: []string{"Content-Length"}})
	if resp.StatusCode != 201 {
		t.Fatalf("chunked capture: %d %s", resp.StatusCode, body)
	}
	if got := lastBody("klarna.capture"); got != chunked {
		t.Fatalf("the PSP received %q; want %q", got, chunked)
	}

	st := g.sim.Stats()
	if n := st.Total - before; n != 4 {
		t.Fatalf("the PSP received %d requests, want 4 (two create orders, two captures)", n)
	}
	if o := st.Orders[id]; o.CapturedAmount != 500 {
		t.Fatalf("the PSP captured %d, want 500", o.CapturedAmount)
	}
}

// Control characters other than tab in a header never reach the gateway:
// Caddy's HTTP server refuses the request first. Either way the PSP sees
// nothing.
func TestHazardServerRefusesControlCharacters(t *testing.T) {
	g := newGateway(t, exampleRules, "")
	id := g.createOrder("shoeshop", 1000, false)
	before := g.sim.Stats().Total
	for _, v := range []string{"a\x01b", "a\x7fb", "a\x00b"} {
		resp, body := g.raw(rawRequest{method: "POST", target: "/ordermanagement/v1/orders/" + id + "/captures",
			body: `{"captured_amount":100}`, auth: asMerchant("shoeshop"), hdr: []string{"Klarna-Idempotency-Key", v}})
		if resp.StatusCode != 400 {
			t.Errorf("key %q: status %d, want 400: %s", v, resp.StatusCode, body)
		}
	}
	if after := g.sim.Stats().Total; after != before {
		t.Fatalf("the PSP received %d requests", after-before)
	}
}
