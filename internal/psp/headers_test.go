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
		if e := CheckHeaders(h, "Klarna-Idempotency-Key", true); e != nil {
			t.Errorf("CheckHeaders(%v) = %v", h, e)
		}
	}
	// A read carries no body: its media headers are not looked at.
	if e := CheckHeaders(http.Header{"Content-Type": {"text/plain"}, "Content-Encoding": {"gzip"}}, "Klarna-Idempotency-Key", false); e != nil {
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
			e := CheckHeaders(tt.h, "Klarna-Idempotency-Key", tt.hasBody)
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
	e := CheckHeaders(h, Hellgate().IdempotencyHeader(), false)
	if e == nil {
		t.Fatal("repeated key accepted")
	}
	assertBadValue(t, e, "X-Idempotency-Key", "must be sent once")
}
