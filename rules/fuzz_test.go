package rules

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// seeds adds the shipped examples, valid and broken, to a fuzz corpus.
func seeds(f *testing.F, patterns ...string) {
	for _, pattern := range patterns {
		files, err := filepath.Glob(filepath.Join(testdata, pattern))
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
}

// FuzzParse: any input yields valid rules or problems, never a panic, and
// valid rules decide every order.
func FuzzParse(f *testing.F) {
	seeds(f, "example.yaml", "broken/*.yaml")
	f.Add([]byte(policy))
	f.Add([]byte("version: 1\nmerchants:\n  a: &x\n    category: in_store\n  b: *x\n"))
	f.Add([]byte("version: 1\n---\nversion: 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse("fuzz.yaml", data)
		if err != nil {
			var ps *Problems
			if r != nil || !errors.As(err, &ps) || len(*ps) == 0 {
				t.Fatalf("Parse = %v, %v; want nil rules and problems", r, err)
			}
			return
		}
		for _, m := range []string{"a", "b", "digitalshop", "approvedshop", ""} {
			for _, ac := range []AutoCapture{AutoCaptureAbsent, AutoCaptureTrue, AutoCaptureInvalid} {
				d := r.Decide(Order{Merchant: m, AutoCapture: ac, PhysicalLines: true, EMDKeys: []string{"voucher"}}, time.Unix(0, 0))
				if d.Allowed != d.Reason.Allows() || d.Message() == "" {
					t.Fatalf("Decide = %+v", d)
				}
			}
		}
	})
}

// FuzzParseCases: any input yields cases or problems, never a panic.
func FuzzParseCases(f *testing.F) {
	seeds(f, "example_cases.yaml", "broken/cases/*.yaml")
	f.Add([]byte("cases:\n  - name: n\n    merchant: m\n    date: 2027-06-30T23:59:59Z\n    order: {auto_capture: [1], emd: {a: {}}}\n    expect: allow\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cs, err := ParseCases("fuzz.yaml", data)
		if err != nil {
			var ps *Problems
			if cs != nil || !errors.As(err, &ps) || len(*ps) == 0 {
				t.Fatalf("ParseCases = %v, %v; want nil cases and problems", cs, err)
			}
			return
		}
		for _, c := range cs {
			if c.Name == "" {
				t.Fatalf("case without a name: %+v", c)
			}
		}
	})
}
