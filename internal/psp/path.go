package psp

import (
	"encoding/hex"
	"strings"
	"unicode"
)

// maxIDLen bounds an order, payment or token id in a path.
const maxIDLen = 128

// pattern is one guarded operation: a method and the path's segments, in
// which "" stands for the order (or token) id.
type pattern struct {
	method string
	segs   []string
	op     Operation
	hasID  bool // the id segment is the order id (false for a create-order token)
	uuid   bool // the order id must be a UUID (Klarna)
	// oneTime: the id segment of a create is a token used for one purchase
	// only (Klarna's authorization token), which Route.Token carries. A
	// customer token names a customer across purchases and is not carried.
	oneTime bool
}

// router classifies requests for one PSP. Paths whose first segment is a
// guarded prefix must be canonical; everything else is not guarded.
type router struct {
	prefixes []string // guarded first segments, lower case
	patterns []pattern
}

func (rt *router) classify(method, rawPath string) (Route, error) {
	first, ok := plainFirstSegment(rawPath)
	if !ok {
		first = lenientFirstSegment(rawPath)
	}
	prefix := ""
	for _, p := range rt.prefixes {
		if strings.EqualFold(first, p) {
			prefix = p
			break
		}
	}
	if prefix == "" {
		return Route{}, nil
	}
	if reason := nonCanonical(rawPath, prefix); reason != "" {
		return Route{}, BadValue("path", "the request path under /%s/ is not in canonical form: %s; send guarded paths exactly as documented", prefix, reason)
	}

	n := strings.Count(rawPath, "/")
	for i := range rt.patterns {
		p := &rt.patterns[i]
		if len(p.segs) != n {
			continue
		}
		seg, exact, ok := p.match(rawPath)
		if !ok {
			continue
		}
		if !exact {
			return Route{}, BadValue("path", "the request path under /%s/ is not in canonical form: a segment differs from the documented path only by letter case", prefix)
		}
		if method != p.method {
			if !upperLetters(method) {
				e := BadValue("method", "the method %q must be upper case for this path", method)
				e.Log = "the method must be upper case for this path"
				return Route{}, e
			}
			continue
		}
		if p.hasID {
			id := normalizeID(seg)
			if p.uuid && !isUUID(id) {
				return Route{}, BadValue("path", "the order id in the path must be a UUID written 8-4-4-4-12 in hexadecimal digits, such as f3392f8b-6116-4073-ab96-e330819e2c07")
			}
			return Route{Op: p.op, OrderID: id}, nil
		}
		if p.oneTime {
			return Route{Op: p.op, Token: seg}, nil
		}
		return Route{Op: p.op}, nil
	}
	return Route{}, nil
}

// match matches a canonical path against the pattern: ok when every literal
// segment matches at least case-insensitively, exact when all match
// exactly. seg is the path's id segment.
func (p *pattern) match(path string) (seg string, exact, ok bool) {
	exact = true
	rest := path[1:]
	for _, lit := range p.segs {
		s, r, _ := strings.Cut(rest, "/")
		rest = r
		if lit == "" {
			seg = s
			continue
		}
		if s == lit {
			continue
		}
		if !strings.EqualFold(s, lit) {
			return "", false, false
		}
		exact = false
	}
	return seg, exact, true
}

// nonCanonical says what keeps a path under a guarded prefix from being in
// canonical form, or "" if it is canonical: "/" + segments of
// [A-Za-z0-9_-]{1,128} joined by "/", starting with the prefix in lower case.
func nonCanonical(path, prefix string) string {
	if path == "" || path[0] != '/' {
		return "it does not start with '/'"
	}
	rest := path[1:]
	for i := 0; ; i++ {
		seg, r, more := strings.Cut(rest, "/")
		switch {
		case seg == "" && !more && i > 0:
			return "a trailing slash"
		case seg == "":
			return "an empty segment (//)"
		case seg == "." || seg == "..":
			return "a '.' or '..' segment"
		case len(seg) > maxIDLen:
			return "a segment longer than 128 characters"
		}
		for j := 0; j < len(seg); j++ {
			switch c := seg[j]; {
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
			case c == '%':
				return "percent-encoded characters"
			case c == ';':
				return "a ';' (matrix parameters)"
			case c == '.':
				return "a '.' (such as a .json suffix)"
			default:
				return "characters other than letters, digits, '-' and '_' in a segment"
			}
		}
		if i == 0 && seg != prefix {
			return "the first segment must be /" + prefix + "/ in lower case"
		}
		if !more {
			return ""
		}
		rest = r
	}
}

// plainFirstSegment returns the first segment of a path made only of
// letters, digits, '-', '_' and '/', with a non-empty first segment: such a
// path means the same to every router, up to letter case. ok is false for
// any other path.
func plainFirstSegment(path string) (first string, ok bool) {
	if len(path) < 2 || path[0] != '/' || path[1] == '/' {
		return "", false
	}
	end := 0
	for i := 1; i < len(path); i++ {
		switch c := path[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		case c == '/':
			if end == 0 {
				end = i
			}
		default:
			return "", false
		}
	}
	if end == 0 {
		end = len(path)
	}
	return path[1:end], true
}

// lenientFirstSegment is the first segment a lenient router would see in a
// path: percent-decoded (repeatedly, for servers that decode twice), '\' read
// as '/', ';' parameters and anything after a '.' in a segment dropped,
// spaces trimmed, letter case folded, and "", "." and ".." segments
// resolved.
func lenientFirstSegment(path string) string {
	for i := 0; i < 4 && strings.IndexByte(path, '%') >= 0; i++ {
		d := percentDecode(path)
		if d == path {
			break
		}
		path = d
	}
	path = strings.ReplaceAll(path, `\`, "/")
	var segs []string
	for _, seg := range strings.Split(path, "/") {
		seg, _, _ = strings.Cut(seg, ";")
		seg = strings.TrimFunc(seg, blank)
		switch seg {
		case "", ".":
			continue
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
			continue
		}
		segs = append(segs, seg)
	}
	if len(segs) == 0 {
		return ""
	}
	first, _, _ := strings.Cut(segs[0], ".")
	return strings.Map(foldCase, strings.TrimFunc(first, blank))
}

// blank reports whether a lenient router might trim r from a segment.
func blank(r rune) bool { return unicode.IsSpace(r) || r == 0 }

// foldCase maps a rune to the lower case of its upper case, so that runes a
// Java case-insensitive comparison takes for ASCII letters ('ſ', 'ı', the
// Kelvin sign) become those letters.
func foldCase(r rune) rune { return unicode.ToLower(unicode.ToUpper(r)) }

// percentDecode decodes every valid %XX escape and leaves the rest as is.
func percentDecode(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		var d [1]byte
		if s[i] == '%' {
			if n, _ := hex.Decode(d[:], []byte(s[i+1:min(i+3, len(s))])); n == 1 {
				if b == nil {
					b = append(make([]byte, 0, len(s)), s[:i]...)
				}
				b = append(b, d[0])
				i += 2
				continue
			}
		}
		if b != nil {
			b = append(b, s[i])
		}
	}
	if b == nil {
		return s
	}
	return string(b)
}

// upperLetters reports whether a method is spelled in upper-case letters
// only, as every method a PSP route knows is.
func upperLetters(method string) bool {
	if method == "" {
		return false
	}
	for i := 0; i < len(method); i++ {
		if c := method[i]; c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// normalizeID lower-cases an id shaped like a UUID: a PSP that parses it as
// a UUID reads upper- and lower-case hex digits alike, so both spellings
// must key the same order.
func normalizeID(id string) string {
	if len(id) != 36 {
		return id
	}
	upper := false
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return id
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		case 'A' <= c && c <= 'F':
			upper = true
		default:
			return id
		}
	}
	if !upper {
		return id
	}
	return strings.ToLower(id)
}

// isUUID reports whether id is a UUID in canonical lower-case form
// (8-4-4-4-12 hexadecimal digits). Klarna's order ids are such UUIDs and
// Klarna refuses any other id. A PSP binding the id with Java's
// UUID.fromString would also read shortened groups (a-0-0-0-b) or, in some
// versions, overlong ones as some UUID; which one is not ours to guess, so
// such spellings are refused rather than given a ledger entry of their own.
// uuidOrEmpty is id if it is a UUID in canonical lower-case form, else "".
func uuidOrEmpty(id string) string {
	if isUUID(id) {
		return id
	}
	return ""
}

func isUUID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		default:
			return false
		}
	}
	return true
}

// validID reports whether id is a well-formed id segment: 1 to 128 of
// [A-Za-z0-9_-].
func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}
