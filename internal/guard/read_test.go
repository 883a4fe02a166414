package guard

import (
	"bytes"
	"net/http"
	"testing"
)

// BenchmarkReadBody reads a guarded request's body within max_body into a
// pooled buffer, as the guard does once per guarded request.
func BenchmarkReadBody(b *testing.B) {
	g := &Guard{maxBody: 1 << 20}
	body := []byte(`{
  "purchase_country": "SE",
  "purchase_currency": "SEK",
  "locale": "sv-SE",
  "order_amount": 10000,
  "order_tax_amount": 0,
  "auto_capture": true,
  "order_lines": [{"type": "digital", "reference": "ebook-1", "name": "E-book", "quantity": 1,
    "unit_price": 10000, "tax_rate": 0, "total_amount": 10000, "total_tax_amount": 0}]
}`)
	rb := &rewindBody{}
	r, err := http.NewRequest("POST", "http://localhost:8080/payments/v1/authorizations/b4bd3423-24e3-4a1a-a3ad-3d03c6ab8a43/order", rb)
	if err != nil {
		b.Fatal(err)
	}
	r.ContentLength = int64(len(body))
	x := &exchange{}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		rb.Reset(body)
		buf, err := g.readBody(r, x)
		if err != nil || buf.Len() != len(body) {
			b.Fatalf("read %d bytes of %d: %v", buf.Len(), len(body), err)
		}
		putBuffer(buf)
	}
}

// rewindBody is a request body that can be read again after Reset.
type rewindBody struct{ bytes.Reader }

func (*rewindBody) Close() error { return nil }
