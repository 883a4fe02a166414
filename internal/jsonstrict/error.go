package jsonstrict

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Error is a body that is refused. Msg is a plain sentence for a merchant's
// developer that names where the problem is; Path is the same place as a
// member path the way the merchant wrote it ("options.auto_capture",
// "order_lines[2].total_amount"; "" for the body as a whole); Offset is the
// byte offset in the document where the problem was found (0 for the
// typed getters, which work on an already checked document).
type Error struct {
	Offset int
	Path   string
	Msg    string
}

func (e *Error) Error() string {
	if e.Offset > 0 {
		return e.Msg + " (at byte offset " + strconv.Itoa(e.Offset) + ")"
	}
	return e.Msg
}

// JSONPath renders a member path as a JSONPath expression rooted at "$", the
// way Check's messages show it: "" -> "$", "options" -> "$.options",
// `["a b"]` -> `$["a b"]`.
func JSONPath(path string) string {
	if path == "" {
		return "$"
	}
	if path[0] == '[' {
		return "$" + path
	}
	return "$." + path
}

// appendName appends a member name to a path: ".name" (or "name" at the
// start) when the name is a plain identifier, `["name"]` otherwise, so that a
// path can always be read back unambiguously.
func appendName(path []byte, name string) []byte {
	if !plainName(name) {
		path = append(path, '[')
		path = append(path, quoteName([]byte(name))...)
		return append(path, ']')
	}
	if len(path) > 0 {
		path = append(path, '.')
	}
	return append(path, name...)
}

func appendIndex(path []byte, i int) []byte {
	path = append(path, '[')
	path = strconv.AppendInt(path, int64(i), 10)
	return append(path, ']')
}

// plainName reports whether a member name can be shown bare in a path.
func plainName(name string) bool {
	if name == "" || len(name) > maxShownName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// describeByte shows an unexpected input byte in a message.
func describeByte(c byte) string {
	if c > ' ' && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("byte 0x%02X", c)
}

// maxShownName bounds how much of a member name a message shows.
const maxShownName = 64

// quoteName quotes a member name for a message, shortened when long.
func quoteName(name []byte) string {
	if len(name) <= maxShownName {
		return strconv.Quote(string(name))
	}
	cut := maxShownName
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return strconv.Quote(string(name[:cut])) + "..."
}
