package rules

import (
	"errors"
	"testing"
)

func TestProblemString(t *testing.T) {
	for _, tt := range []struct {
		p    Problem
		want string
	}{
		{Problem{File: "rules.yaml", Line: 12, Field: "merchants.shoeshop.category", Message: `unknown category "x"`},
			`rules.yaml:12: merchants.shoeshop.category: unknown category "x"`},
		{Problem{File: "rules.yaml", Line: 3, Message: "invalid YAML: did not find expected key"},
			"rules.yaml:3: invalid YAML: did not find expected key"},
		{Problem{File: "rules.yaml", Message: "the file is empty"},
			"rules.yaml: the file is empty"},
	} {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestProblemsError(t *testing.T) {
	_, err := Parse("r.yaml", []byte("version: 1\nbogus: 1\ndefault_category: nowhere\n"))
	var ps *Problems
	if !errors.As(err, &ps) {
		t.Fatalf("err = %v (%T), want *Problems", err, err)
	}
	want := "r.yaml:2: bogus: unknown key (known here: version, auto_capture, categories, merchants, default_category)\n" +
		`r.yaml:3: default_category: unknown category "nowhere" (known: in_store, digital_products, vouchers, services_events, fulfilment_24h, physical_goods, unknown)`
	if got := err.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
}
