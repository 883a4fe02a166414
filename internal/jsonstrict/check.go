// Package jsonstrict reads request bodies the way pspguard must: strictly,
// so that the gateway sees exactly what the PSP will see. A lenient JSON
// reader upstream (last duplicate member wins, case-insensitive member names,
// trailing data ignored, lone surrogates replaced) could read a different
// value than the one the gateway checked; every such ambiguity is refused
// here instead.
//
// Check validates a body in one pass and returns a fingerprint of its
// canonical form. The typed getters (Root, Value) then read policy fields
// from a checked body exactly: only the literals true and false are
// booleans, only plain integer literals are integers.
package jsonstrict

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
	"slices"
	"sync"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of objects and arrays Check accepts; the
// top-level object is depth 1.
const MaxDepth = 64

// Fingerprint identifies a document's content: SHA-256 of its canonical
// form, so whitespace, member order and the spelling of string escapes do
// not change it, while any change of a name or value does.
type Fingerprint = [32]byte

// Check validates data as exactly one JSON object (RFC 8259, UTF-8, no byte
// order mark, nothing after it but whitespace), with no duplicate member
// names and no member names that differ only by letter case in any object,
// no lone UTF-16 surrogate escapes, and at most MaxDepth levels of nesting.
// It returns the fingerprint of the canonical form: members sorted by name
// (case-folded first, then as written), strings unescaped and re-encoded one
// way, numbers as written, no whitespace. A refused document is reported as
// an *Error.
func Check(data []byte) (Fingerprint, error) {
	s := scanners.Get().(*scanner)
	defer s.release()
	s.data, s.canonical = data, true
	if err := s.document(); err != nil {
		return Fingerprint{}, err
	}
	return sha256.Sum256(s.out), nil
}

// Valid validates data as Check does, without computing the fingerprint:
// for documents that are read but never compared, such as a PSP's answers.
func Valid(data []byte) error {
	s := scanners.Get().(*scanner)
	defer s.release()
	s.data, s.canonical = data, false
	return s.document()
}

// scanner is the reusable state of one Check: the canonical output and the
// stacks of open containers and their members.
type scanner struct {
	data []byte
	// canonical: the canonical form is wanted (Check), so members are put
	// in order; Valid only needs duplicate names found.
	canonical bool
	pos       int
	out       []byte   // canonical form written so far
	names     []byte   // unescaped names of the members of the open objects, each followed by its folded form
	mems      []member // members of the open objects
	hashes    []uint64 // for Valid, the hash of each of mems' case-folded names (nameHash)
	frames    []frame  // open containers, for error paths
	tmp       []byte   // scratch for reordering members
}

// member is one member of an open object.
type member struct {
	nameStart, nameEnd int // unescaped name in scanner.names
	foldEnd            int // the name case-folded follows it in scanner.names, up to foldEnd
	start, end         int // `"name":value` in scanner.out, without the separating comma
	offset             int // input offset of the name, for errors
}

// frame is one open container: an array with the index of its current
// element, or an object with the name of its current member.
type frame struct {
	array              bool
	index              int
	nameStart, nameEnd int
}

var scanners = sync.Pool{New: func() any { return new(scanner) }}

// maxPooled bounds the buffers kept for reuse, so one large body does not pin
// its memory.
const maxPooled = 64 << 10

func (s *scanner) release() {
	if cap(s.out) > maxPooled || cap(s.tmp) > maxPooled || cap(s.names) > maxPooled || cap(s.mems) > maxPooled/64 {
		return
	}
	s.data, s.pos = nil, 0
	s.out, s.names, s.tmp = s.out[:0], s.names[:0], s.tmp[:0]
	s.mems, s.hashes, s.frames = s.mems[:0], s.hashes[:0], s.frames[:0]
	scanners.Put(s)
}

func (s *scanner) document() error {
	if len(s.data) >= 3 && s.data[0] == 0xEF && s.data[1] == 0xBB && s.data[2] == 0xBF {
		return newError(0, "the body starts with a UTF-8 byte order mark; send the JSON object without it")
	}
	s.space()
	if s.pos == len(s.data) {
		return newError(s.pos, "the body is empty; expected a JSON object")
	}
	if s.data[s.pos] != '{' {
		return newError(s.pos, "the body must be a JSON object, found "+startDescription(s.data[s.pos]))
	}
	if err := s.object(1); err != nil {
		return err
	}
	s.space()
	if s.pos != len(s.data) {
		return newError(s.pos, "unexpected data after the JSON object: "+describeByte(s.data[s.pos]))
	}
	return nil
}

func (s *scanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) value(depth int) error {
	if s.pos == len(s.data) {
		return s.errorf("unexpected end of the body where a value was expected in %s")
	}
	switch c := s.data[s.pos]; c {
	case '{':
		return s.object(depth + 1)
	case '[':
		return s.array(depth + 1)
	case '"':
		return s.str(false)
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		if c == '-' || '0' <= c && c <= '9' {
			return s.number()
		}
		return s.errorf("invalid value in %s: " + valueHint(c))
	}
}

func (s *scanner) object(depth int) error {
	if depth > MaxDepth {
		return s.errorf("too deeply nested in %s: at most 64 levels of objects and arrays are allowed")
	}
	s.pos++ // '{'
	objStart := len(s.out)
	s.out = append(s.out, '{')
	memBase, nameBase := len(s.mems), len(s.names)
	s.frames = append(s.frames, frame{nameStart: nameBase, nameEnd: nameBase})
	fr := len(s.frames) - 1
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		s.out = append(s.out, '}')
		s.frames = s.frames[:fr]
		return nil
	}
	for {
		if s.pos == len(s.data) {
			return s.errorIn(fr, "unexpected end of the body in %s: the object is not closed")
		}
		if c := s.data[s.pos]; c != '"' {
			if c == '}' && len(s.mems) > memBase {
				return s.errorf("trailing comma after %s")
			}
			return s.errorIn(fr, "expected a member name in double quotes in %s, found "+describeByte(c))
		}
		m := member{start: len(s.out), offset: s.pos, nameStart: len(s.names)}
		if err := s.str(true); err != nil {
			return err
		}
		m.nameEnd = len(s.names)
		s.names = appendFolded(s.names, s.names[m.nameStart:m.nameEnd])
		m.foldEnd = len(s.names)
		s.frames[fr].nameStart, s.frames[fr].nameEnd = m.nameStart, m.nameEnd
		s.space()
		if s.pos == len(s.data) || s.data[s.pos] != ':' {
			return s.errorf("expected ':' after the member name of %s")
		}
		s.pos++
		s.out = append(s.out, ':')
		s.space()
		if err := s.value(depth); err != nil {
			return err
		}
		m.end = len(s.out)
		s.mems = append(s.mems, m)
		if !s.canonical {
			s.hashes = append(s.hashes, nameHash(s.names[m.nameEnd:m.foldEnd]))
		}
		s.space()
		if s.pos == len(s.data) {
			return s.errorIn(fr, "unexpected end of the body in %s: the object is not closed")
		}
		c := s.data[s.pos]
		s.pos++
		if c == '}' {
			break
		}
		if c != ',' {
			s.pos--
			return s.errorf("expected ',' or '}' after %s, found " + describeByte(c))
		}
		s.out = append(s.out, ',')
		s.space()
	}
	if err := s.sortMembers(objStart, memBase, fr); err != nil {
		return err
	}
	s.out = append(s.out, '}')
	s.mems, s.names, s.frames = s.mems[:memBase], s.names[:nameBase], s.frames[:fr]
	if !s.canonical {
		s.hashes = s.hashes[:memBase]
	}
	return nil
}

// sortMembers puts the members of the object that starts at out[objStart]
// in canonical order, refusing duplicate and case-variant names, which the
// canonical order places next to each other.
func (s *scanner) sortMembers(objStart, memBase, fr int) error {
	ms := s.mems[memBase:]
	if len(ms) < 2 {
		return nil
	}
	if !s.canonical && len(ms) <= maxPairwise && !foldedTwice(s.hashes[memBase:]) {
		// No order wanted and no duplicate: nothing to sort.
		return nil
	}
	name := func(m member) []byte { return s.names[m.nameStart:m.nameEnd] }
	folded := func(m member) []byte { return s.names[m.nameEnd:m.foldEnd] }
	cmp := func(a, b member) int {
		if c := bytes.Compare(folded(a), folded(b)); c != 0 {
			return c
		}
		return bytes.Compare(name(a), name(b))
	}
	sorted := slices.IsSortedFunc(ms, cmp)
	if !sorted {
		slices.SortFunc(ms, cmp)
	}
	for i := 1; i < len(ms); i++ {
		if !bytes.Equal(folded(ms[i-1]), folded(ms[i])) {
			continue
		}
		a, b := name(ms[i-1]), name(ms[i])
		later := ms[i]
		if ms[i-1].offset > later.offset {
			later = ms[i-1]
		}
		cpath := string(s.pathOf(s.frames[:fr], nil))
		container, logContainer := JSONPath(cpath), JSONPath(logPath(cpath))
		s.frames[fr].nameStart, s.frames[fr].nameEnd = later.nameStart, later.nameEnd
		path := string(s.pathOf(s.frames[:fr+1], nil))
		if string(a) == string(b) {
			return &Error{Offset: later.offset, Path: path,
				Msg:    "duplicate member " + quoteName(b) + " in " + container,
				logMsg: "duplicate member " + logName(b) + " in " + logContainer}
		}
		const caseMsg = " differ only by letter case; a PSP matching names case-insensitively could read either"
		return &Error{Offset: later.offset, Path: path,
			Msg:    "member names " + quoteName(a) + " and " + quoteName(b) + " in " + container + caseMsg,
			logMsg: "member names " + logName(a) + " and " + logName(b) + " in " + logContainer + caseMsg}
	}
	if sorted || !s.canonical {
		return nil
	}
	s.tmp = s.tmp[:0]
	for i, m := range ms {
		if i > 0 {
			s.tmp = append(s.tmp, ',')
		}
		s.tmp = append(s.tmp, s.out[m.start:m.end]...)
	}
	s.out = append(s.out[:objStart+1], s.tmp...)
	return nil
}

// maxPairwise is the most members an object may have for Valid to look
// for duplicate names by comparing every pair rather than by sorting.
const maxPairwise = 32

// foldedTwice reports whether two members of an object may have the same
// case-folded name: whether two of their hashes are equal.
func foldedTwice(hashes []uint64) bool {
	for i := 1; i < len(hashes); i++ {
		for _, h := range hashes[:i] {
			if h == hashes[i] {
				return true
			}
		}
	}
	return false
}

// nameHash is a quick hash of a member name: its length, and its first
// and last eight bytes (all of a shorter name). Names that differ only in
// between hash alike, and are compared by sorting.
func nameHash(b []byte) uint64 {
	n := len(b)
	if n < 8 {
		var w [8]byte
		copy(w[:], b)
		return uint64(n)<<56 ^ binary.LittleEndian.Uint64(w[:])
	}
	return uint64(n)<<56 ^ binary.LittleEndian.Uint64(b) ^ bits.RotateLeft64(binary.LittleEndian.Uint64(b[n-8:]), 29)
}

func (s *scanner) array(depth int) error {
	if depth > MaxDepth {
		return s.errorf("too deeply nested in %s: at most 64 levels of objects and arrays are allowed")
	}
	s.pos++ // '['
	s.out = append(s.out, '[')
	s.frames = append(s.frames, frame{array: true})
	fr := len(s.frames) - 1
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		s.out = append(s.out, ']')
		s.frames = s.frames[:fr]
		return nil
	}
	for {
		if s.pos < len(s.data) && s.data[s.pos] == ']' {
			return s.errorIn(fr, "trailing comma before ']' in %s")
		}
		if err := s.value(depth); err != nil {
			return err
		}
		s.space()
		if s.pos == len(s.data) {
			return s.errorIn(fr, "unexpected end of the body in %s: the array is not closed")
		}
		c := s.data[s.pos]
		s.pos++
		if c == ']' {
			break
		}
		if c != ',' {
			s.pos--
			return s.errorf("expected ',' or ']' after %s, found " + describeByte(c))
		}
		s.out = append(s.out, ',')
		s.frames[fr].index++
		s.space()
	}
	s.out = append(s.out, ']')
	s.frames = s.frames[:fr]
	return nil
}

func (s *scanner) literal(lit string) error {
	if len(s.data)-s.pos < len(lit) || string(s.data[s.pos:s.pos+len(lit)]) != lit {
		return s.errorf("invalid value in %s: " + valueHint(s.data[s.pos]))
	}
	s.pos += len(lit)
	s.out = append(s.out, lit...)
	return nil
}

// number checks the RFC 8259 number grammar and copies the literal as
// written.
func (s *scanner) number() error {
	start := s.pos
	d := s.data
	if d[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(d) && d[s.pos] == '0':
		s.pos++
		if s.pos < len(d) && isDigit(d[s.pos]) {
			return s.errorf("number with a leading zero in %s")
		}
	case s.pos < len(d) && isDigit(d[s.pos]):
		s.digits()
	default:
		return s.errorf("invalid number in %s: expected a digit")
	}
	if s.pos < len(d) && d[s.pos] == '.' {
		s.pos++
		if s.pos == len(d) || !isDigit(d[s.pos]) {
			return s.errorf("invalid number in %s: expected a digit after the decimal point")
		}
		s.digits()
	}
	if s.pos < len(d) && (d[s.pos] == 'e' || d[s.pos] == 'E') {
		s.pos++
		if s.pos < len(d) && (d[s.pos] == '+' || d[s.pos] == '-') {
			s.pos++
		}
		if s.pos == len(d) || !isDigit(d[s.pos]) {
			return s.errorf("invalid number in %s: expected a digit in the exponent")
		}
		s.digits()
	}
	if s.canonical {
		s.out = append(s.out, d[start:s.pos]...)
	}
	return nil
}

func (s *scanner) digits() {
	for s.pos < len(s.data) && isDigit(s.data[s.pos]) {
		s.pos++
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// str checks a string and writes its canonical encoding to out: the
// unescaped text with only '"', '\' and control characters escaped (the
// latter always as \u00XX). For a member name (name true) the unescaped
// text also goes to names.
func (s *scanner) str(name bool) error {
	s.pos++ // '"'
	s.out = append(s.out, '"')
	d := s.data
	for {
		// Copy the run of bytes that need no attention in one go.
		run := s.pos
		for s.pos < len(d) {
			c := d[s.pos]
			if c < ' ' || c == '"' || c == '\\' || c >= utf8.RuneSelf {
				break
			}
			s.pos++
		}
		if s.pos > run {
			if s.canonical {
				s.out = append(s.out, d[run:s.pos]...)
			}
			if name {
				s.names = append(s.names, d[run:s.pos]...)
			}
		}
		if s.pos == len(d) {
			return s.errorf("unexpected end of the body inside a string in %s")
		}
		switch c := d[s.pos]; {
		case c == '"':
			s.pos++
			s.out = append(s.out, '"')
			return nil
		case c == '\\':
			r, err := s.escape()
			if err != nil {
				return err
			}
			if s.canonical {
				s.out = appendCanonicalRune(s.out, r)
			}
			if name {
				s.names = utf8.AppendRune(s.names, r)
			}
		case c < ' ':
			return s.errorf("unescaped control character " + describeByte(c) + " in a string in %s")
		default:
			r, n := utf8.DecodeRune(d[s.pos:])
			if r == utf8.RuneError && n == 1 {
				return s.errorf("invalid UTF-8 in a string in %s")
			}
			if s.canonical {
				s.out = append(s.out, d[s.pos:s.pos+n]...)
			}
			if name {
				s.names = append(s.names, d[s.pos:s.pos+n]...)
			}
			s.pos += n
		}
	}
}

// escape decodes the escape sequence at pos, joining a UTF-16 surrogate
// pair and refusing a lone surrogate (lenient readers silently replace it
// with U+FFFD, so two different names could become one).
func (s *scanner) escape() (rune, error) {
	d := s.data
	if s.pos+1 >= len(d) {
		return 0, s.errorf("unexpected end of the body inside a string in %s")
	}
	c := d[s.pos+1]
	s.pos += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
		r, ok := hex4(d[s.pos:])
		if !ok {
			return 0, s.errorf(`invalid \u escape in a string in %s: expected four hexadecimal digits`)
		}
		s.pos += 4
		switch {
		case 0xDC00 <= r && r <= 0xDFFF:
			return 0, s.errorf(`lone UTF-16 low surrogate escape in a string in %s`)
		case 0xD800 <= r && r <= 0xDBFF:
			if s.pos+6 > len(d) || d[s.pos] != '\\' || d[s.pos+1] != 'u' {
				return 0, s.errorf(`lone UTF-16 high surrogate escape in a string in %s`)
			}
			lo, ok := hex4(d[s.pos+2:])
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return 0, s.errorf(`lone UTF-16 high surrogate escape in a string in %s`)
			}
			s.pos += 6
			return 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00), nil
		}
		return r, nil
	}
	s.pos -= 2
	seq := `'\' followed by ` + describeByte(c)
	if c > ' ' && c < 0x7f {
		seq = `\` + string(rune(c))
	}
	return 0, s.errorf("invalid escape sequence " + seq + " in a string in %s")
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

const hexDigits = "0123456789abcdef"

// appendCanonicalRune writes r the one way the canonical form spells it.
func appendCanonicalRune(b []byte, r rune) []byte {
	switch {
	case r == '"' || r == '\\':
		return append(b, '\\', byte(r))
	case r < ' ':
		return append(b, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xF])
	}
	return utf8.AppendRune(b, r)
}

// errorf reports a problem at the current position; %s in msg is replaced
// by the JSONPath of where the scanner is.
func (s *scanner) errorf(msg string) error { return s.errorIn(len(s.frames), msg) }

// errorIn is errorf with the path of the n outermost open containers: the
// container itself rather than its current member.
func (s *scanner) errorIn(n int, msg string) error {
	path := string(s.pathOf(s.frames[:n], nil))
	return &Error{Offset: s.pos, Path: path, Msg: replacePath(msg, JSONPath(path)),
		logMsg: replacePath(msg, JSONPath(logPath(path)))}
}

func replacePath(msg, path string) string {
	for i := 0; i+1 < len(msg); i++ {
		if msg[i] == '%' && msg[i+1] == 's' {
			return msg[:i] + path + msg[i+2:]
		}
	}
	return msg
}

// pathOf renders the member path of the given open containers. An object
// whose current member name is not yet known contributes nothing.
func (s *scanner) pathOf(frames []frame, b []byte) []byte {
	for _, f := range frames {
		if f.array {
			b = appendIndex(b, f.index)
		} else if f.nameEnd > f.nameStart {
			b = appendName(b, string(s.names[f.nameStart:f.nameEnd]))
		}
	}
	return b
}

// startDescription names what a document starts with when it is not an
// object.
func startDescription(c byte) string {
	switch {
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == '-' || isDigit(c):
		return "a number"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	}
	return describeByte(c)
}

// valueHint explains a byte that cannot start a JSON value, with the usual
// non-JSON spellings named.
func valueHint(c byte) string {
	switch c {
	case '\'':
		return "single-quoted strings are not JSON"
	case '/':
		return "comments are not JSON"
	case 'N', 'I', '+':
		return "NaN, Infinity and a leading '+' are not JSON numbers"
	case '.':
		return "a number must start with a digit"
	case ']', '}', ',':
		return "a value is missing before " + describeByte(c)
	case 'T', 'F':
		return "true and false are lower case in JSON"
	}
	return "unexpected " + describeByte(c)
}
