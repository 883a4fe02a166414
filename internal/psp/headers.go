package psp

import (
	"mime"
	"net/http"
	"strings"
)

// maxIdempotencyKey is the longest idempotency key accepted (Stripe's limit;
// a UUID is 36).
const maxIdempotencyKey = 255

// methodOverrideHeaders make some servers and frameworks treat a request as
// another method than the one it was sent with.
var methodOverrideHeaders = [...]string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"}

// CheckHeaders checks the headers of a guarded request: no method override,
// at most one well-formed idempotency key, and, for a request with a body,
// exactly one Content-Type of mediaType (the dialect's MediaType), in
// UTF-8 if it names a charset, and no Content-Encoding but identity. A
// lenient PSP could read anything else differently from the gateway.
func CheckHeaders(h http.Header, idempotencyHeader, mediaType string, hasBody bool) *Error {
	if e := MethodOverride(h); e != nil {
		return e
	}
	if e := checkIdempotencyKey(h, idempotencyHeader); e != nil {
		return e
	}
	if !hasBody {
		return nil
	}
	if e := checkContentEncoding(h, mediaType); e != nil {
		return e
	}
	return checkContentType(h, mediaType)
}

// MethodOverride refuses a request that carries a method-override header:
// a PSP honouring it would perform another operation than the one the
// gateway classified.
//
// Names are compared ignoring case and with '_' and '.' read as '-':
// CGI-style servers turn X-HTTP-Method-Override, X_HTTP_METHOD_OVERRIDE
// and X.HTTP.Method.Override into the same variable.
func MethodOverride(h http.Header) *Error {
	for name := range h {
		for _, o := range methodOverrideHeaders {
			if sameHeaderName(name, o) {
				return BadValue(o, "the %s header is not allowed: send the request with its real method", o)
			}
		}
	}
	return nil
}

// headerAlias returns the name of a header in h that is spelled like name
// but with '_' or '.' for '-', such as X_API_Key for X-API-Key. A CGI-style
// PSP reads the alias as name. Caddy drops such headers unless the operator
// allows them (expected_underscore_headers, expected_dot_headers), and then
// drops the hyphenated spelling instead: the gateway would see no header
// where the PSP reads one.
func headerAlias(h http.Header, name string) (string, bool) {
	for k := range h {
		if strings.ContainsAny(k, "_.") && sameHeaderName(k, name) {
			return k, true
		}
	}
	return "", false
}

// aliasError refuses a header sent under an alias of name.
func aliasError(name, alias string) *Error {
	return BadValue(name, "the %s header must be spelled %s, not %s", name, name, alias)
}

// sameHeaderName compares header names as a CGI-style server does: ASCII
// letters in any case, and '_' and '.' read as '-'.
func sameHeaderName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if dashFold(a[i]) != dashFold(b[i]) {
			return false
		}
	}
	return true
}

func dashFold(c byte) byte {
	switch {
	case c == '_' || c == '.':
		return '-'
	case 'a' <= c && c <= 'z':
		return c - ('a' - 'A')
	}
	return c
}

func checkIdempotencyKey(h http.Header, name string) *Error {
	if alias, ok := headerAlias(h, name); ok {
		return aliasError(name, alias)
	}
	vals := h.Values(name)
	switch len(vals) {
	case 0:
		return nil
	case 1:
	default:
		return BadValue(name, "the %s header must be sent once", name)
	}
	key := vals[0]
	switch {
	case key == "":
		return BadValue(name, "the %s header is empty", name)
	case len(key) > maxIdempotencyKey:
		return BadValue(name, "the %s header is longer than %d characters", name, maxIdempotencyKey)
	case !visibleASCII(key):
		return BadValue(name, "the %s header must be printable ASCII, without control characters", name)
	}
	return nil
}

func checkContentEncoding(h http.Header, mediaType string) *Error {
	for _, v := range h.Values("Content-Encoding") {
		for _, coding := range strings.Split(v, ",") {
			if !strings.EqualFold(strings.TrimSpace(coding), "identity") {
				e := unsupportedMedia("Content-Encoding", "the request body must not be encoded (Content-Encoding %q): send it as plain %s", v, mediaName(mediaType))
				e.Log = "the request body must not be encoded: send it as plain " + mediaName(mediaType)
				return e
			}
		}
	}
	return nil
}

// mediaName is how messages name a media type: JSON, or the type itself.
func mediaName(mediaType string) string {
	if mediaType == "application/json" {
		return "JSON"
	}
	return mediaType
}

func checkContentType(h http.Header, mediaType string) *Error {
	vals := h.Values("Content-Type")
	switch len(vals) {
	case 0:
		// A request that declares an empty body has nothing to interpret.
		if h.Get("Content-Length") == "0" {
			return nil
		}
		return unsupportedMedia("Content-Type", "the Content-Type header is required: send %s", mediaType)
	case 1:
	default:
		return unsupportedMedia("Content-Type", "the Content-Type header must be sent once")
	}
	// The spellings clients send, accepted without a parse (and without
	// building a string).
	if v := vals[0]; strings.HasPrefix(v, mediaType) {
		switch v[len(mediaType):] {
		case "", "; charset=utf-8", "; charset=UTF-8":
			return nil
		}
	}
	mt, params, err := mime.ParseMediaType(vals[0])
	if err != nil || mt != mediaType {
		return unsupportedMedia("Content-Type", "the Content-Type must be %s", mediaType)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return unsupportedMedia("Content-Type", "the Content-Type charset must be utf-8")
	}
	return nil
}

func unsupportedMedia(field, format string, args ...any) *Error {
	e := BadValue(field, format, args...)
	e.Status, e.Code = http.StatusUnsupportedMediaType, CodeUnsupportedMediaType
	return e
}
