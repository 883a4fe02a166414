package psp

import (
	"net/http"
	"strings"
	"testing"
)

func TestIdempotencyKeyStructured(t *testing.T) {
	for _, tt := range []struct{ value, key string }{
		{`"9f1c7c52-5a4b-4b53-9b67-5fd5a1e3f7c1"`, "9f1c7c52-5a4b-4b53-9b67-5fd5a1e3f7c1"},
		{`9f1c7c52-5a4b-4b53-9b67-5fd5a1e3f7c1`, "9f1c7c52-5a4b-4b53-9b67-5fd5a1e3f7c1"},
		{`"order 17 capture"`, "order 17 capture"},
		{`"a\"b"`, `a"b`},
		{`"a\\b"`, `a\b`},
		{`a"b`, `a"b`}, // bare: read as sent
		{`a,b`, `a,b`},
		{`"` + strings.Repeat("k", 255) + `"`, strings.Repeat("k", 255)},
	} {
		key, e := IdempotencyKey(http.Header{"Idempotency-Key": {tt.value}}, "Idempotency-Key", KeyStructured)
		if e != nil || key != tt.key {
			t.Errorf("%s: key %q, %v; want %q", tt.value, key, e, tt.key)
		}
	}
}

func TestIdempotencyKeyStructuredRefuses(t *testing.T) {
	for _, tt := range []struct{ name, value, msg string }{
		{"unclosed", `"abc`, "double quotes"},
		{"quote alone", `"`, "double quotes"},
		{"text after the string", `"a"b`, "double quotes"},
		{"a list", `"a", "b"`, "double quotes"},
		{"unknown escape", `"a\nb"`, "double quotes"},
		{"escape at the end", `"a\`, "double quotes"},
		{"tab in the string", "\"a\tb\"", "double quotes"},
		{"non-ASCII in the string", "\"cl\xe9\"", "double quotes"},
		{"empty string", `""`, "is empty"},
		{"long string", `"` + strings.Repeat("k", 256) + `"`, "longer than 255"},
		{"non-ASCII bare", "cl\xe9", "printable ASCII"},
		// Forwarded bare, as the PSP must get it, it would lose them.
		{"a space first", `" abc"`, "begin or end with a space"},
		{"a space last", `"abc "`, "begin or end with a space"},
		{"a space alone", `" "`, "begin or end with a space"},
	} {
		_, e := IdempotencyKey(http.Header{"Idempotency-Key": {tt.value}}, "Idempotency-Key", KeyStructured)
		if e == nil || e.Status != http.StatusBadRequest || e.Field != "Idempotency-Key" || !strings.Contains(e.Message, tt.msg) {
			t.Errorf("%s (%q): %v, want 400 naming Idempotency-Key with %q", tt.name, tt.value, e, tt.msg)
		}
	}
}

// Klarna's and Hellgate's keys are the header's value as sent, quotes
// included: their PSPs compare the values as they are.
func TestIdempotencyKeyOpaque(t *testing.T) {
	key, e := IdempotencyKey(http.Header{"Klarna-Idempotency-Key": {`"abc"`}}, "Klarna-Idempotency-Key", KeyOpaque)
	if e != nil || key != `"abc"` {
		t.Errorf("key %q, %v", key, e)
	}
	if key, e := IdempotencyKey(http.Header{}, "Klarna-Idempotency-Key", KeyOpaque); e != nil || key != "" {
		t.Errorf("no key: %q, %v", key, e)
	}
}

// lenientKey is how a lenient server reads a quoted Idempotency-Key:
// strip the outer quotes, and let a backslash take the next byte as it is.
func lenientKey(v string) string {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return v
	}
	v = v[1 : len(v)-1]
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// quoteSF writes key as an RFC 8941 sf-string.
func quoteSF(key string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(key) + `"`
}

// Whatever the strict reading accepts, a lenient server reads as the same
// key, and the key written back as a string reads as itself: no value
// means one key to the gateway and another to the PSP's framework.
func FuzzIdempotencyKeyStructured(f *testing.F) {
	for _, s := range []string{`"abc"`, `abc`, `"a\"b"`, `"a\\b"`, `"a\b"`, `"a"b"`, `""`, `"`, `a"b`, `"a" `, `" a "`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		key, e := IdempotencyKey(http.Header{"Idempotency-Key": {v}}, "Idempotency-Key", KeyStructured)
		if e != nil {
			return
		}
		if key == "" || len(key) > maxIdempotencyKey || !visibleASCII(key) || strings.TrimSpace(key) != key {
			t.Fatalf("%q: accepted the key %q", v, key)
		}
		if strings.HasPrefix(v, `"`) {
			if got := lenientKey(v); got != key {
				t.Fatalf("%q: strict key %q, lenient key %q", v, key, got)
			}
		} else if key != v {
			t.Fatalf("bare %q read as %q", v, key)
		}
		again, e := IdempotencyKey(http.Header{"Idempotency-Key": {quoteSF(key)}}, "Idempotency-Key", KeyStructured)
		if e != nil || again != key {
			t.Fatalf("%q: key %q written as %s reads as %q, %v", v, key, quoteSF(key), again, e)
		}
	})
}
