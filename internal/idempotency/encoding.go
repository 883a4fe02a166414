package idempotency

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/http"
	"slices"
)

// A Result is stored as one compact byte string rather than as an
// http.Header map per entry: a million cached captures must fit in memory.
// Both stores use one layout:
//
//	result = status header-count header* body
//	header = name value-count string*
//	name   = n, then n-len(names) bytes if n >= len(names)
//	string = length bytes
//
// status is two bytes, big endian; counts, lengths and n are unsigned
// varints; the body is everything after the last header. A layout is that
// encoding with a table of header names: a name n below len(names) stands
// for names[n], a larger n is followed by a literal name of n-len(names)
// bytes. With no table, a name is spelled out like any string.
type layout []string

var (
	// redisLayout spells every name out: a Redis record is read by every
	// gateway on the server, whatever version it runs, so no table may
	// change what a record means.
	redisLayout layout
	// memoryLayout names the headers a PSP answer carries with one byte
	// each, which over a million cached results is worth about 15 MiB.
	// Results in memory live no longer than the process that wrote them,
	// so the table may change from one version to the next.
	memoryLayout = layout{
		"Capture-Id", "Content-Type", "Klarna-Correlation-Id", "Location",
		"Order-Id", "Refund-Id", "X-Correlation-Id",
	}
)

// errCorrupt reports a stored result that does not parse.
var errCorrupt = errors.New("corrupt stored result")

// append appends the encoding of r to dst. It refuses a status that an
// http.ResponseWriter would reject, so a replay can never panic.
func (l layout) append(dst []byte, r Result) ([]byte, error) {
	if r.Status < 100 || r.Status > 999 {
		return dst, fmt.Errorf("idempotency: result status %d is not a valid HTTP status", r.Status)
	}
	dst = slices.Grow(dst, plainLen(r))
	dst = binary.BigEndian.AppendUint16(dst, uint16(r.Status))
	dst = binary.AppendUvarint(dst, uint64(len(r.Header)))
	for name, values := range r.Header {
		dst = l.appendName(dst, name)
		dst = binary.AppendUvarint(dst, uint64(len(values)))
		for _, v := range values {
			dst = appendString(dst, v)
		}
	}
	return append(dst, r.Body...), nil
}

func (l layout) appendName(dst []byte, name string) []byte {
	for i, k := range l {
		if k == name {
			return binary.AppendUvarint(dst, uint64(i))
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(l)+len(name)))
	return append(dst, name...)
}

// plainLen returns the length of r's encoding without a table of names,
// the most any layout takes.
func plainLen(r Result) int {
	n := 2 + uvarintLen(len(r.Header)) + len(r.Body)
	for name, values := range r.Header {
		n += uvarintLen(len(name)) + len(name) + uvarintLen(len(values))
		for _, v := range values {
			n += uvarintLen(len(v)) + len(v)
		}
	}
	return n
}

func uvarintLen(n int) int { return (bits.Len64(uint64(n)|1) + 6) / 7 }

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// parse decodes an encoded result. Header names and values share the
// memory of s (strings are immutable); the body is a copy the caller owns.
func (l layout) parse(s string) (Result, error) {
	if len(s) < 2 {
		return Result{}, errCorrupt
	}
	p := parser{s: s[2:]}
	r := Result{Status: int(s[0])<<8 | int(s[1])}
	n := p.count()
	r.Header = make(http.Header, n)
	// The values of all headers share one array (one value per header is
	// the rule); each header's slice is capped at its own values, so
	// appending to one never writes into the next.
	values := make([]string, 0, n)
	for range n {
		k := p.name(l)
		start := len(values)
		for range p.count() {
			values = append(values, p.string())
		}
		if p.bad {
			break
		}
		r.Header[k] = values[start:len(values):len(values)]
	}
	if p.bad || r.Status < 100 || r.Status > 999 {
		return Result{}, errCorrupt
	}
	if p.s != "" {
		r.Body = []byte(p.s)
	}
	return r, nil
}

// parser consumes an encoded result; after the first error every read
// returns zero values and bad stays set.
type parser struct {
	s   string
	bad bool
}

// count reads a count. Each counted item takes at least one byte, so a
// count beyond the remaining length is corrupt, which bounds allocations.
func (p *parser) count() int {
	n := p.uvarint()
	if n > uint64(len(p.s)) {
		p.bad = true
		return 0
	}
	return int(n)
}

// name reads a header name of layout l.
func (p *parser) name(l layout) string {
	n := p.uvarint()
	if n < uint64(len(l)) {
		return l[n]
	}
	return p.bytes(n - uint64(len(l)))
}

func (p *parser) string() string { return p.bytes(p.uvarint()) }

// bytes reads n bytes.
func (p *parser) bytes(n uint64) string {
	if n > uint64(len(p.s)) {
		p.bad = true
		return ""
	}
	v := p.s[:n]
	p.s = p.s[n:]
	return v
}

func (p *parser) uvarint() uint64 {
	var x uint64
	for i := 0; i < binary.MaxVarintLen64 && i < len(p.s); i++ {
		b := p.s[i]
		if i == binary.MaxVarintLen64-1 && b > 1 {
			break // overflows 64 bits
		}
		x |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			p.s = p.s[i+1:]
			return x
		}
	}
	p.bad = true
	p.s = ""
	return 0
}
