// Package formstrict parses application/x-www-form-urlencoded bodies with
// bracket nesting (metadata[k]=v, payment_method_types[]=card,
// payment_method_options[card][capture_method]=manual) strictly: it
// accepts a body only when every lenient reader of the format, such as
// Rack's parse_nested_query (which Stripe's API is built on), reads the
// same value for every key as the gateway checks.
//
// Refused: a repeated key that is not an array key (k[]), a path that is a
// value in one field and a hash or an array in another (a=1&a[b]=2,
// a[b]=1&a[b][]=2), a malformed bracket path (a[, a]b, a[b]c, [a], a[][b],
// an empty key or segment), brackets, '&', '=' or ';' written as percent
// escapes in a key, ';' anywhere (older Rack splits fields on it), a field
// without '=', an empty field, spaces, non-ASCII or control bytes in the
// raw body, invalid percent escapes, and decoded text that is not UTF-8 or
// holds NUL or other control characters. '+' and %20 both mean a space, as
// in every reader.
//
// Errors name the key (or the field's position when the key itself is what
// is wrong), never a value.
package formstrict

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxDepth bounds the number of bracket segments of a key. Rack refuses
// keys nested deeper than 32 (its param_depth_limit); Stripe's parameters
// nest at most four deep.
const MaxDepth = 16

// Field is one key=value pair of a parsed form. Its offsets point into the
// form's decoded text; read it through Form.
type Field struct {
	k0, k1, v0, v1 uint32
}

// Form is a parsed form: the decoded fields, sorted by key path (segment
// by segment, keeping the body's order among equal array keys).
type Form struct {
	text   string
	fields []Field
}

// Error is a refused form body. Key is the decoded key at fault when it is
// known and well formed, else "". Msg names the key or the field's
// position and never includes a value.
type Error struct {
	Key string
	Msg string

	// logMsg is Msg with every key segment not registered with
	// RegisterNames shown as "*".
	logMsg string
}

func (e *Error) Error() string { return e.Msg }

// LogMessage is the message with the key segments nobody registered
// (RegisterNames) shown as "*": a key is the sender's text and may be
// anything (metadata[jane@example.com]), so a log names only the keys it
// knows.
func (e *Error) LogMessage() string {
	if e.logMsg != "" {
		return e.logMsg
	}
	return e.Msg
}

// keyError makes an error whose message shows keys through show: quoted
// in Msg, with unregistered segments as "*" in the log message.
func keyError(key string, msg func(show func(string) string) string) *Error {
	return &Error{Key: key, Msg: msg(quoteKey), logMsg: msg(logKey)}
}

// knownNames are the key segments that logs may show.
var knownNames = map[string]bool{}

// RegisterNames adds key segments that LogMessage may show: the names of
// the parameters a program reads, which are its own text, not the
// sender's. Call it from an init function only.
func RegisterNames(names ...string) {
	for _, n := range names {
		knownNames[n] = true
	}
}

// logKey shows a checked key with every unregistered segment as "*".
func logKey(key string) string {
	var b strings.Builder
	for i, d := 0, 0; i < len(key); d++ {
		seg, next := nextSeg(key, i)
		if !knownNames[seg] && seg != "" {
			seg = "*"
		}
		if d > 0 {
			b.WriteByte('[')
		}
		b.WriteString(seg)
		if d > 0 {
			b.WriteByte(']')
		}
		i = next
	}
	return strconv.Quote(b.String())
}

// Len is the number of fields.
func (f Form) Len() int { return len(f.fields) }

// Key is the decoded key of field i, such as "metadata[order]".
func (f Form) Key(i int) string { fd := f.fields[i]; return f.text[fd.k0:fd.k1] }

// Value is the decoded value of field i.
func (f Form) Value(i int) string { fd := f.fields[i]; return f.text[fd.v0:fd.v1] }

// Get returns the value of a scalar key written canonically (decoded, with
// its brackets: "payment_method_options[card][capture_method]").
// Parse guarantees a scalar key occurs at most once.
func (f Form) Get(key string) (value string, ok bool) {
	i, ok := f.find(key)
	if !ok {
		return "", false
	}
	return f.Value(i), true
}

// Has reports whether any field has the key.
func (f Form) Has(key string) bool {
	_, ok := f.find(key)
	return ok
}

// Values calls fn with each value of an array key ("expand[]"), in the
// body's order.
func (f Form) Values(key string, fn func(value string)) {
	i, ok := f.find(key)
	for ; ok && i < len(f.fields) && f.Key(i) == key; i++ {
		fn(f.Value(i))
	}
}

// find returns the first field with key: a binary search over the sorted
// fields.
func (f Form) find(key string) (int, bool) {
	i, ok := slices.BinarySearchFunc(f.fields, key, func(fd Field, k string) int {
		return comparePaths(f.text[fd.k0:fd.k1], k)
	})
	return i, ok
}

// Fingerprint identifies the form's content independent of its spelling
// (field order except among the values of one array key, percent escapes,
// '+' for space): two bodies every reader reads alike have the same
// fingerprint.
func (f Form) Fingerprint() [32]byte {
	// A typical form's canonical encoding fits a buffer on the stack and
	// is hashed in one call; a larger one goes through a streaming hash.
	var buf [1024]byte
	b := buf[:0]
	for i := range f.fields {
		for _, s := range [2]string{f.Key(i), f.Value(i)} {
			if len(b)+8+len(s) > len(buf) {
				return f.fingerprintLarge()
			}
			b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
			b = append(b, s...)
		}
	}
	return sha256.Sum256(b)
}

// fingerprintLarge is Fingerprint for a form too large for its buffer.
// The text is copied to the hash through a buffer: handing the hash the
// strings themselves would make the form escape on every path.
func (f Form) fingerprintLarge() [32]byte {
	h := sha256.New()
	var buf [1024]byte
	b := buf[:0]
	for i := range f.fields {
		for _, s := range [2]string{f.Key(i), f.Value(i)} {
			if len(b)+8 > len(buf) {
				h.Write(b)
				b = buf[:0]
			}
			b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
			for len(s) > 0 {
				if len(b) == len(buf) {
					h.Write(b)
					b = buf[:0]
				}
				k := copy(buf[len(b):], s)
				b, s = buf[:len(b)+k], s[k:]
			}
		}
	}
	h.Write(b)
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// Parse checks body and returns its fields. buf is storage for the fields
// (a caller's array keeps a typical form off the heap); it grows when the
// body has more fields. The decoded text is one allocation, which the
// returned Form's strings share.
func Parse(body []byte, buf []Field) (Form, error) {
	if len(body) > 1<<31 {
		return Form{}, &Error{Msg: "the form body is too large"}
	}
	fields := buf[:0]
	if len(body) == 0 {
		return Form{fields: fields}, nil
	}
	var text strings.Builder
	text.Grow(len(body))
	for pos, n := 0, 1; pos <= len(body); n++ {
		end := pos
		for end < len(body) && body[end] != '&' {
			end++
		}
		fd, err := parseField(body[pos:end], n, &text)
		if err != nil {
			return Form{}, err
		}
		fields = append(fields, fd)
		pos = end + 1
	}
	// The text and the fields go to helpers apart: escape analysis does
	// not tell a struct's fields apart, and an error that keeps a key
	// (a part of the text) would otherwise move the caller's buf to the
	// heap.
	s := text.String()
	slices.SortStableFunc(fields, func(a, b Field) int {
		return comparePaths(s[a.k0:a.k1], s[b.k0:b.k1])
	})
	if err := checkShape(s, fields); err != nil {
		return Form{}, err
	}
	return Form{text: s, fields: fields}, nil
}

// parseField checks the nth field (1-based) and appends its decoded key
// and value to text.
func parseField(raw []byte, n int, text *strings.Builder) (Field, error) {
	if len(raw) == 0 {
		return Field{}, &Error{Msg: "field " + strconv.Itoa(n) + " is empty (a '&' at the start or end, or '&&')"}
	}
	eq := -1
	for i, c := range raw {
		if c == '=' {
			eq = i
			break
		}
	}
	if eq < 0 {
		return Field{}, &Error{Msg: "field " + strconv.Itoa(n) + " has no '='"}
	}
	if eq == 0 {
		return Field{}, &Error{Msg: "field " + strconv.Itoa(n) + " has an empty key"}
	}
	var fd Field
	fd.k0 = uint32(text.Len())
	if msg := decode(raw[:eq], text, true); msg != "" {
		return Field{}, &Error{Msg: "the key of field " + strconv.Itoa(n) + " " + msg}
	}
	fd.k1 = uint32(text.Len())
	key := text.String()[fd.k0:fd.k1]
	if msg := checkPath(key); msg != "" {
		return Field{}, &Error{Msg: "the key of field " + strconv.Itoa(n) + " " + msg}
	}
	fd.v0 = fd.k1
	if msg := decode(raw[eq+1:], text, false); msg != "" {
		return Field{}, keyError(key, func(show func(string) string) string { return "the value of " + show(key) + " " + msg })
	}
	fd.v1 = uint32(text.Len())
	return fd, nil
}

// decode percent-decodes raw into text. The raw bytes must be printable
// ASCII without spaces and ';' (non-ASCII text is sent as escapes, which
// makes the charset matter only for them). In a key, '[' and ']' must be
// raw and '&', '=', ';', '[', ']' and '%' must not be decoded from escapes:
// a reader that decodes before or after splitting the path would read
// another path. In a value, a raw '=' is refused (readers split a field on
// the first or on every '='). The decoded text must be UTF-8 without NUL
// or control characters (tab, line feed and carriage return are allowed in
// values). It returns what is wrong, or "".
func decode(raw []byte, text *strings.Builder, key bool) string {
	start := text.Len()
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '%':
			var dec [1]byte
			if n, _ := hex.Decode(dec[:], raw[i+1:min(i+3, len(raw))]); n != 1 {
				return "has an invalid percent escape (a '%' not followed by two hexadecimal digits)"
			}
			d := dec[0]
			if key {
				switch d {
				case '[', ']', '&', '=', ';', '%':
					return "has a percent-encoded " + strconv.QuoteRune(rune(d)) + ": write brackets literally and keep '&', '=', ';' and '%' out of keys"
				}
			}
			text.WriteByte(d)
			i += 2
		case c == '+':
			text.WriteByte(' ')
		case c == ';':
			return "has a ';': fields are separated by '&' only, and a literal ';' must be sent as %3B"
		case c == ' ':
			return "has a raw space: send spaces as '+' or %20"
		case c == '=' && !key:
			return "has a raw '=': send it as %3D"
		case c < ' ' || c >= 0x7f:
			return "has a raw control or non-ASCII byte: send it percent-encoded"
		default:
			text.WriteByte(c)
		}
	}
	s := text.String()[start:]
	if !utf8.ValidString(s) {
		return "is not valid UTF-8 once percent-decoded"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0x7f || c < ' ' && (key || c != '\t' && c != '\n' && c != '\r') {
			return "holds a NUL or control character once percent-decoded"
		}
	}
	return ""
}

// checkPath checks a decoded key's bracket path: a non-empty name without
// brackets, then up to MaxDepth segments "[name]" with non-empty names
// without brackets, the last of which may be "[]" (an array). It returns
// what is wrong, or "".
func checkPath(key string) string {
	i := strings.IndexByte(key, '[')
	switch {
	case i == 0:
		return "starts with '['"
	case strings.IndexByte(key[:max(i, 0)], ']') >= 0 || i < 0 && strings.IndexByte(key, ']') >= 0:
		return "has a ']' without a '[' before it"
	case i < 0:
		return ""
	}
	for depth := 1; i < len(key); depth++ {
		if depth > MaxDepth {
			return "is nested deeper than " + strconv.Itoa(MaxDepth) + " brackets"
		}
		if key[i] != '[' {
			return "has text after a ']' that does not start a new '[...]'"
		}
		j := strings.IndexByte(key[i+1:], ']')
		if j < 0 {
			return "has a '[' without its ']'"
		}
		seg := key[i+1 : i+1+j]
		if strings.IndexByte(seg, '[') >= 0 {
			return "has a '[' inside brackets"
		}
		i += j + 2
		if seg == "" && i < len(key) {
			return "has '[]' before its end: an array is allowed only as the last segment"
		}
	}
	return ""
}

// nextSeg returns the segment of key starting at i (the name before the
// first '[' at i == 0, else the text inside the brackets at i) and the
// index of the segment after it, len(key) at the end.
func nextSeg(key string, i int) (seg string, next int) {
	if i == 0 {
		j := strings.IndexByte(key, '[')
		if j < 0 {
			return key, len(key)
		}
		return key[:j], j
	}
	j := strings.IndexByte(key[i:], ']')
	return key[i+1 : i+j], i + j + 1
}

// comparePaths orders checked keys segment by segment, a path before the
// paths below it, so that every key below a path follows it in one run.
func comparePaths(a, b string) int {
	i, j := 0, 0
	for {
		switch {
		case i >= len(a) && j >= len(b):
			return 0
		case i >= len(a):
			return -1
		case j >= len(b):
			return 1
		}
		var sa, sb string
		sa, i = nextSeg(a, i)
		sb, j = nextSeg(b, j)
		// Not strings.Compare: its assembly makes both keys escape.
		switch {
		case sa < sb:
			return -1
		case sa > sb:
			return 1
		}
	}
}

// Node kinds along a key's path.
const (
	kindHash = iota
	kindArray
	kindScalar
)

// checkShape refuses fields whose paths disagree on what a path is (a
// value, a hash or an array) and repeated scalar keys. The fields are
// sorted, so every path's keys are adjacent and checking neighbours
// suffices.
func checkShape(text string, fields []Field) error {
	for n := 1; n < len(fields); n++ {
		a, b := text[fields[n-1].k0:fields[n-1].k1], text[fields[n].k0:fields[n].k1]
		if a == b {
			if strings.HasSuffix(a, "[]") {
				continue
			}
			return keyError(a, func(show func(string) string) string {
				return show(a) + " is sent more than once; only array keys ending in [] may repeat"
			})
		}
		la, lb := pathLen(a), pathLen(b)
		i, j := 0, 0
		for d := 0; i < len(a) && j < len(b); d++ {
			var sa, sb string
			sa, i = nextSeg(a, i)
			sb, j = nextSeg(b, j)
			if sa != sb {
				break
			}
			if kind(a, d, la) != kind(b, d, lb) {
				at := a[:i]
				return keyError(b, func(show func(string) string) string {
					return show(a) + " and " + show(b) + " disagree on whether " + show(at) + " is a value, a hash or an array"
				})
			}
		}
	}
	return nil
}

// pathLen is the number of segments of a checked key.
func pathLen(key string) int {
	return 1 + strings.Count(key, "[")
}

// kind is what the path's dth segment (0-based) names in a key of n
// segments: the last names a value, or, when it is "[]", the one before
// names an array; every other segment names a hash.
func kind(key string, d, n int) int {
	array := strings.HasSuffix(key, "[]")
	switch {
	case array && d == n-2:
		return kindArray
	case array && d == n-1:
		return kindScalar // an array element
	case !array && d == n-1:
		return kindScalar
	}
	return kindHash
}

// maxShownKey bounds how much of a key a message shows.
const maxShownKey = 64

// quoteKey quotes a decoded key for a message, shortened when long.
func quoteKey(key string) string {
	if len(key) <= maxShownKey {
		return strconv.Quote(key)
	}
	cut := maxShownKey
	for cut > 0 && !utf8.RuneStart(key[cut]) {
		cut--
	}
	return strconv.Quote(key[:cut]) + "..."
}
