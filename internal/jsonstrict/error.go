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

	// logMsg is Msg with every member name that was not registered with
	// RegisterNames shown as "*".
	logMsg string
}

func (e *Error) Error() string { return withOffset(e.Msg, e.Offset) }

// LogMessage is the message with the names of members nobody registered
// (RegisterNames) shown as "*": a member name is the sender's text, and
// may be anything (an email address sent as a name), so a log names only
// the members it knows.
func (e *Error) LogMessage() string { return withOffset(e.logMsg, e.Offset) }

func withOffset(msg string, offset int) string {
	if offset > 0 {
		return msg + " (at byte offset " + strconv.Itoa(offset) + ")"
	}
	return msg
}

// newError makes an error whose message is the same for the log.
func newError(offset int, msg string) *Error { return &Error{Offset: offset, Msg: msg, logMsg: msg} }

// knownNames are the member names that logs may show.
var knownNames = map[string]bool{}

// RegisterNames adds member names that LogMessage may show: the names of
// the fields a program reads, which are its own text, not the sender's.
// Call it from an init function only.
func RegisterNames(names ...string) {
	for _, n := range names {
		knownNames[n] = true
	}
}

// logPath is a path as Path renders it with every member name that is not
// registered shown as "*" (quoted names, never registered, as [*]).
func logPath(path string) string {
	var b []byte
	for i := 0; i < len(path); {
		switch c := path[i]; {
		case c == '.':
			b = append(b, '.')
			i++
		case c == '[' && i+1 < len(path) && path[i+1] == '"':
			// A quoted name: skip to its closing quote, then to ']'.
			j := i + 2
			for j < len(path) && path[j] != '"' {
				if path[j] == '\\' {
					j++
				}
				j++
			}
			for j < len(path) && path[j] != ']' {
				j++
			}
			b = append(b, "[*]"...)
			i = j + 1
		case c == '[':
			j := i
			for j < len(path) && path[j] != ']' {
				j++
			}
			b = append(b, path[i:min(j+1, len(path))]...)
			i = j + 1
		default:
			j := i
			for j < len(path) && path[j] != '.' && path[j] != '[' {
				j++
			}
			if knownNames[path[i:j]] {
				b = append(b, path[i:j]...)
			} else {
				b = append(b, '*')
			}
			i = j
		}
	}
	return string(b)
}

// logName quotes a member name for a log message: the name if registered,
// else "*".
func logName(name []byte) string {
	if knownNames[string(name)] {
		return quoteName(name)
	}
	return `"*"`
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
