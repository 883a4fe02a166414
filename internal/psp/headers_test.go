package psp

import (
	"net/http"
	"strings"
	"testing"
)

func TestCheckHeadersAccepts(t *testing.T) {
	for _, h := range []http.Header{
		{"Content-Type": {"application/json"}},
		{"Content-Type": {"application/json; charset=utf-8"}},
		{"Content-Type": {"application/json; charset=UTF-8"}},
		{"Content-Type": {`application/json;charset="utf-8"`}},
		{"Content-Type": {"Application/JSON"}},
		{"Content-Type": {"application/json"}, "Klarna-Idempotency-Key": {"9f1c7c52-5a4b-4b53-9b67-5fd5a1e3f7c1"}},
		{"Content-Type": {"application/json"}, "Klarna-Idempotency-Key": {"a,b"}},
		{"Content-Type": {"application/json"}, "Klarna-Idempotency-Key": {strings.Repeat("k", 255)}},
		{"Content-Type": {"application/json"}, "Content-Encoding": {"identity"}},
		{"Content-Type": {"application/json"}, "Content-Encoding": {"Identity"}},
		{"Content-Length": {"0"}}, // an empty body needs no Content-Type
	} {
		if _, e := CheckHeaders(h, Klarna(), true); e != nil {
			t.Errorf("CheckHeaders(%v) = %v", h, e)
		}
	}
	// A read carries no body: its media headers are not looked at.
	if _, e := CheckHeaders(http.Header{"Content-Type": {"text/plain"}, "Content-Encoding": {"gzip"}}, Klarna(), false); e != nil {
		t.Errorf("read: %v", e)
	}
}

func TestCheckHeadersRefuses(t *testing.T) {
	tests := []struct {
		name    string
		h       http.Header
		hasBody bool
		status  int
		code    string
		field   string
		msg     string
	}{
		{"method override", http.Header{"X-Http-Method-Override": {"PATCH"}}, false,
			400, CodeBadValue, "X-HTTP-Method-Override", "is not allowed"},
		{"X-HTTP-Method", http.Header{"X-Http-Method": {"DELETE"}}, true,
			400, CodeBadValue, "X-HTTP-Method", "is not allowed"},
		{"X-Method-Override", http.Header{"X-Method-Override": {"PUT"}}, true,
			400, CodeBadValue, "X-Method-Override", "is not allowed"},
		{"override with underscores", http.Header{"X_http_method_override": {"PUT"}}, true,
			400, CodeBadValue, "X-HTTP-Method-Override", "is not allowed"},
		{"override with dots", http.Header{"X.http.method.override": {"PUT"}}, true,
			400, CodeBadValue, "X-HTTP-Method-Override", "is not allowed"},
		{"empty override", http.Header{"X-Http-Method-Override": {""}}, true,
			400, CodeBadValue, "X-HTTP-Method-Override", "is not allowed"},
		{"repeated idempotency key", http.Header{"Content-Type": {"application/json"}, "Klarna-Idempotency-Key": {"a", "b"}}, true,
			400, CodeBadValue, "Klarna-Idempotency-Key", "must be sent once"},
		{"repeated identical idempotency key", http.Header{"Klarna-Idempotency-Key": {"a", "a"}}, false,
			400, CodeBadValue, "Klarna-Idempotency-Key", "must be sent once"},
		{"idempotency key with underscores", http.Header{"Klarna_idempotency_key": {"a"}}, false,
			400, CodeBadValue, "Klarna-Idempotency-Key", "must be spelled Klarna-Idempotency-Key, not Klarna_idempotency_key"},
		{"idempotency key beside an alias", http.Header{"Klarna-Idempotency-Key": {"a"}, "Klarna.idempotency.key": {"b"}}, false,
			400, CodeBadValue, "Klarna-Idempotency-Key", "must be spelled Klarna-Idempotency-Key"},
		{"empty idempotency key", http.Header{"Klarna-Idempotency-Key": {""}}, false,
			400, CodeBadValue, "Klarna-Idempotency-Key", "is empty"},
		{"long idempotency key", http.Header{"Klarna-Idempotency-Key": {strings.Repeat("k", 256)}}, false,
			400, CodeBadValue, "Klarna-Idempotency-Key", "longer than 255"},
		{"control character in idempotency key", http.Header{"Klarna-Idempotency-Key": {"a\tb"}}, false,
			400, CodeBadValue, "Klarna-Idempotency-Key", "printable ASCII"},
		{"non-ASCII idempotency key", http.Header{"Klarna-Idempotency-Key": {"cl\xe9"}}, false,
			400, CodeBadValue, "Klarna-Idempotency-Key", "printable ASCII"},
		{"gzip", http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}}, true,
			415, CodeUnsupportedMediaType, "Content-Encoding", "must not be encoded"},
		{"identity then gzip", http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"identity", "gzip"}}, true,
			415, CodeUnsupportedMediaType, "Content-Encoding", "must not be encoded"},
		{"identity, gzip", http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"identity, gzip"}}, true,
			415, CodeUnsupportedMediaType, "Content-Encoding", "must not be encoded"},
		{"empty encoding", http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {""}}, true,
			415, CodeUnsupportedMediaType, "Content-Encoding", "must not be encoded"},
		{"text/plain", http.Header{"Content-Type": {"text/plain"}}, true,
			415, CodeUnsupportedMediaType, "Content-Type", "must be application/json"},
		{"form", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, true,
			415, CodeUnsupportedMediaType, "Content-Type", "must be application/json"},
		{"json suffix type", http.Header{"Content-Type": {"application/merge-patch+json"}}, true,
			415, CodeUnsupportedMediaType, "Content-Type", "must be application/json"},
		{"missing", http.Header{}, true,
			415, CodeUnsupportedMediaType, "Content-Type", "is required"},
		{"missing with a body", http.Header{"Content-Length": {"12"}}, true,
			415, CodeUnsupportedMediaType, "Content-Type", "is required"},
		{"twice", http.Header{"Content-Type": {"application/json", "application/json"}}, true,
			415, CodeUnsupportedMediaType, "Content-Type", "must be sent once"},
		{"two types in one", http.Header{"Content-Type": {"application/json, text/plain"}}, true,
			415, CodeUnsupportedMediaType, "Content-Type", "must be application/json"},
		{"latin-1", http.Header{"Content-Type": {"application/json; charset=iso-8859-1"}}, true,
			415, CodeUnsupportedMediaType, "Content-Type", "charset must be utf-8"},
		{"utf-16", http.Header{"Content-Type": {"application/json; charset=utf-16"}}, true,
			415, CodeUnsupportedMediaType, "Content-Type", "charset must be utf-8"},
		{"charset twice", http.Header{"Content-Type": {"application/json; charset=utf-8; charset=utf-16"}}, true,
			415, CodeUnsupportedMediaType, "Content-Type", "must be application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, e := CheckHeaders(tt.h, Klarna(), tt.hasBody)
			if e == nil {
				t.Fatal("accepted")
			}
			assertError(t, e, tt.status, tt.code, tt.field, tt.msg)
		})
	}
}

func TestCheckHeadersHellgateIdempotencyKey(t *testing.T) {
	h := http.Header{}
	h.Add("x-idempotency-key", "a")
	h.Add("X-IDEMPOTENCY-KEY", "b")
	_, e := CheckHeaders(h, Hellgate(), false)
	if e == nil {
		t.Fatal("repeated key accepted")
	}
	assertBadValue(t, e, "X-Idempotency-Key", "must be sent once")
}

// The body's media type is the dialect's: a form-encoded dialect accepts
// its own type and refuses JSON, and its messages name its type.
func TestCheckHeadersMediaType(t *testing.T) {
	const form = "application/x-www-form-urlencoded"
	for _, ct := range []string{form, form + "; charset=utf-8", form + "; charset=UTF-8", "Application/X-WWW-Form-Urlencoded"} {
		if _, e := CheckHeaders(http.Header{"Content-Type": {ct}}, Stripe(), true); e != nil {
			t.Errorf("Content-Type %q: %v", ct, e)
		}
	}
	for _, tt := range []struct {
		h   http.Header
		msg string
	}{
		{http.Header{"Content-Type": {"application/json"}}, "the Content-Type must be " + form},
		{http.Header{"Content-Type": {form + "x"}}, "the Content-Type must be " + form},
		{http.Header{"Content-Type": {form + "; charset=latin1"}}, "charset must be utf-8"},
		{http.Header{}, "the Content-Type header is required: send " + form},
		{http.Header{"Content-Type": {form}, "Content-Encoding": {"gzip"}}, "send it as plain " + form},
	} {
		_, e := CheckHeaders(tt.h, Stripe(), true)
		if e == nil {
			t.Errorf("%v accepted", tt.h)
			continue
		}
		if e.Status != http.StatusUnsupportedMediaType || !strings.Contains(e.Message, tt.msg) {
			t.Errorf("%v: %d %q, want 415 with %q", tt.h, e.Status, e.Message, tt.msg)
		}
	}
	// A JSON dialect refuses the form type.
	if _, e := CheckHeaders(http.Header{"Content-Type": {form}}, Klarna(), true); e == nil || e.Status != http.StatusUnsupportedMediaType {
		t.Errorf("JSON dialect, form body: %v", e)
	}
}
