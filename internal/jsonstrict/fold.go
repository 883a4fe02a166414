package jsonstrict

import (
	"unicode"
	"unicode/utf8"
)

// foldRune maps r to one representative of every rune that a
// case-insensitive matcher could take for it. It is deliberately broader
// than simple case folding: Java's String.equalsIgnoreCase compares both the
// upper- and the lower-case mapping, so 'ı' (dotless i) matches "I", and
// toLowerCase maps 'K' (Kelvin sign) to "k". Going through ToUpper and
// ToLower first and then taking the smallest rune of the simple-folding
// orbit puts all of these in one class.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' {
			return r - ('a' - 'A') // the smallest rune of every ASCII letter's orbit is its upper case
		}
		return r
	}
	r = unicode.ToLower(unicode.ToUpper(r))
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < least {
			least = f
		}
	}
	return least
}

// appendFolded appends name with every rune replaced by foldRune's
// representative. Comparing folded names byte by byte orders them by their
// folded runes (UTF-8 keeps code point order), and names that differ only by
// letter case have equal folded forms.
func appendFolded(dst, name []byte) []byte {
	for i := 0; i < len(name); {
		if c := name[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(name[i:])
		dst = utf8.AppendRune(dst, foldRune(r))
		i += n
	}
	return dst
}

// looseEqual reports whether two names are the same when letter case and the
// word separators '_' and '-' are ignored: auto_capture, AUTO_CAPTURE,
// autoCapture and auto-capture are all one name to a loose binder.
func looseEqual(a, b string) bool {
	for {
		a, b = skipSeparators(a), skipSeparators(b)
		if a == "" || b == "" {
			return a == b
		}
		if ca, cb := a[0], b[0]; ca < utf8.RuneSelf && cb < utf8.RuneSelf {
			if ca != cb && foldRune(rune(ca)) != foldRune(rune(cb)) {
				return false
			}
			a, b = a[1:], b[1:]
			continue
		}
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb && foldRune(ra) != foldRune(rb) {
			return false
		}
		a, b = a[na:], b[nb:]
	}
}

func skipSeparators(s string) string {
	for s != "" && (s[0] == '_' || s[0] == '-') {
		s = s[1:]
	}
	return s
}

// FoldEqual reports whether a and b are equal to a case-insensitive
// matcher, by the same broad notion of letter case that Check uses for
// member names (so "physical", "PHYSICAL" and "physıcal" are equal).
func FoldEqual(a, b string) bool {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb && foldRune(ra) != foldRune(rb) {
			return false
		}
		a, b = a[na:], b[nb:]
	}
	return a == b
}
