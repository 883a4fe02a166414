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

// CheckHeaders checks the headers of a guarded request to d: no method
// override, at most one well-formed idempotency key, and, for a request
// with a body, exactly one Content-Type of d's MediaType, in UTF-8 if it
// names a charset, and no Content-Encoding but identity. A lenient PSP
// could read anything else differently from the gateway. It returns the
// idempotency key as d's syntax reads it ("" when none was sent).
func CheckHeaders(h http.Header, d Dialect, hasBody bool) (string, *Error) {
	if e := MethodOverride(h); e != nil {
		return "", e
	}
	key, e := IdempotencyKey(h, d.IdempotencyHeader(), d.IdempotencyKeySyntax())
	if e != nil {
		return "", e
	}
	if !hasBody {
		return key, nil
	}
	mediaType := d.MediaType()
	if e := checkContentEncoding(h, mediaType); e != nil {
		return "", e
	}
	if e := checkContentType(h, mediaType); e != nil {
		return "", e
	}
	return key, nil
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

// KeySyntax is how a PSP reads the value of its idempotency header.
type KeySyntax uint8

const (
	// KeyOpaque: the header's value, as sent, is the key (Klarna, Hellgate).
	KeyOpaque KeySyntax = iota
	// KeyStructured: the header is the IETF Idempotency-Key header, whose
	// value is a Structured Field string (RFC 8941, section 3.3.3): "k"
	// is the key k, with \" and \\ the only escapes. A bare value, common
	// in practice, is read as it is, so "k" and k are one key.
	KeyStructured
)

// IdempotencyKey returns the idempotency key of a request: the value of
// the header name, read in syntax; "" when none was sent. A repeated,
// aliased, empty, over-long or malformed key is an *Error (400 BAD_VALUE):
// a PSP might read it as another key than the gateway, or as none.
func IdempotencyKey(h http.Header, name string, syntax KeySyntax) (string, *Error) {
	if alias, ok := headerAlias(h, name); ok {
		return "", aliasError(name, alias)
	}
	vals := h.Values(name)
	switch len(vals) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", BadValue(name, "the %s header must be sent once", name)
	}
	key := vals[0]
	if syntax == KeyStructured && strings.HasPrefix(key, `"`) {
		var ok bool
		if key, ok = unquoteSFString(key); !ok {
			return "", BadValue(name, `the %s header must be a string in double quotes, with \" and \\ the only escapes, or a bare value`, name)
		}
	}
	switch {
	case key == "":
		return "", BadValue(name, "the %s header is empty", name)
	case len(key) > maxIdempotencyKey:
		return "", BadValue(name, "the %s header is longer than %d characters", name, maxIdempotencyKey)
	case key[0] == ' ' || key[len(key)-1] == ' ':
		// Sent bare, it would reach the PSP without them: HTTP drops the
		// spaces around a header value.
		return "", BadValue(name, "the %s header must not begin or end with a space", name)
	case !visibleASCII(key):
		return "", BadValue(name, "the %s header must be printable ASCII, without control characters", name)
	}
	return key, nil
}

// unquoteSFString reads s, which starts with a double quote, as an RFC 8941
// sf-string: printable ASCII (space included) between double quotes, where
// a backslash escapes only a double quote or a backslash. Anything after
// the closing quote, an unclosed string or another escape is not one.
func unquoteSFString(s string) (string, bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			i++
			if i == len(s) || s[i] != '"' && s[i] != '\\' {
				return "", false
			}
			b.WriteByte(s[i])
		case c == '"':
			if i != len(s)-1 {
				return "", false
			}
			return b.String(), true
		case c < ' ' || c > '~':
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	return "", false
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
