package rules

import (
	"testing"
)

func BenchmarkDecide(b *testing.B) {
	r := mustParse(b, policy)
	orders := []Order{
		{Merchant: "digital", AutoCapture: AutoCaptureTrue},
		{Merchant: "voucher", AutoCapture: AutoCaptureTrue, EMDKeys: []string{"customer_account_info", "voucher"}},
		{Merchant: "approved", AutoCapture: AutoCaptureTrue, PhysicalLines: true},
		{Merchant: "shoes", AutoCapture: AutoCaptureTrue},
		{Merchant: "stranger", AutoCapture: AutoCaptureFalse},
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if d := r.Decide(orders[i%len(orders)], day); d.Reason == "" {
			b.Fatal("no reason")
		}
		i++
	}
}
