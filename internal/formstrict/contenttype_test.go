package formstrict

import (
	"strings"
	"testing"
)

func TestCheckContentType(t *testing.T) {
	for _, ok := range []string{
		"application/x-www-form-urlencoded",
		"application/x-www-form-urlencoded; charset=utf-8",
		"Application/X-WWW-Form-Urlencoded;charset=\"UTF-8\"",
	} {
		if msg := CheckContentType(ok); msg != "" {
			t.Errorf("%q refused: %s", ok, msg)
		}
	}
	for v, want := range map[string]string{
		"application/x-www-form-urlencoded; charset=iso-8859-1":            "charset must be utf-8",
		"application/x-www-form-urlencoded; charset=utf-16":                "charset must be utf-8",
		"application/x-www-form-urlencoded; charset=utf-8; x=1":            "no parameter but charset",
		"application/x-www-form-urlencoded; charset=utf-8; charset=latin1": "must be application/x-www-form-urlencoded",
		"application/json":    "must be application/x-www-form-urlencoded",
		"multipart/form-data": "must be application/x-www-form-urlencoded",
		"":                    "must be application/x-www-form-urlencoded",
	} {
		if got := CheckContentType(v); !strings.Contains(got, want) || got == "" {
			t.Errorf("CheckContentType(%q) = %q, want it to say %q", v, got, want)
		}
	}
}
