package psp

import "testing"

func BenchmarkClassify(b *testing.B) {
	for _, bm := range []struct{ name, method, path string }{
		{"capture", "POST", "/ordermanagement/v1/orders/" + orderID + "/captures"},
		{"create_order", "POST", "/payments/v1/authorizations/b4bd3423-24e3-4a1a-a3ad-3d03c6ab8a43/order"},
		{"not_guarded", "GET", "/settlements/v1/payouts/12345"},
		{"refused", "POST", "/%6Frdermanagement/v1/orders/" + orderID + "/captures/"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			k := Klarna()
			b.ReportAllocs()
			for b.Loop() {
				_, _ = k.Classify(bm.method, bm.path)
			}
		})
	}
}

func BenchmarkParseRequest(b *testing.B) {
	for _, bm := range []struct {
		name  string
		route Route
		file  string
	}{
		{"capture", captureRoute, "klarna_capture.json"},
		{"create_order", createRoute, "klarna_create_order.json"},
		{"checkout_order_emd", checkoutRoute, "klarna_checkout_order.json"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			body := readTestdata(b, bm.file)
			k := Klarna()
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := k.ParseRequest(bm.route, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
