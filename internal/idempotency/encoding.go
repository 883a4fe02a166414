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
// Both stores use the same layout:
//
//	result = status header-count header* body
//	header = string value-count string*
//	string = length bytes
//
// status is two bytes, big endian; counts and lengths are unsigned varints;
// the body is everything after the last header.

// errCorrupt reports a stored result that does not parse.
var errCorrupt = errors.New("corrupt stored result")

// appendResult appends the encoding of r to dst. It refuses a status that an
// http.ResponseWriter would reject, so a replay can never panic.
func appendResult(dst []byte, r Result) ([]byte, error) {
	if r.Status < 100 || r.Status > 999 {
		return dst, fmt.Errorf("idempotency: result status %d is not a valid HTTP status", r.Status)
	}
	dst = slices.Grow(dst, encodedLen(r))
	dst = binary.BigEndian.AppendUint16(dst, uint16(r.Status))
	dst = binary.AppendUvarint(dst, uint64(len(r.Header)))
	for name, values := range r.Header {
		dst = appendString(dst, name)
		dst = binary.AppendUvarint(dst, uint64(len(values)))
		for _, v := range values {
			dst = appendString(dst, v)
		}
	}
	return append(dst, r.Body...), nil
}

// encodedLen returns the length of r's encoding.
func encodedLen(r Result) int {
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

// parseResult decodes an encoded result. Header names and values share the
// memory of s (strings are immutable); the body is a copy the caller owns.
func parseResult(s string) (Result, error) { return parseWith(s, false) }

// parseWith decodes a result. The Redis encoding spells header names out;
// the memory one (compact) abbreviates common ones. A flag rather than a
// function picks the reader, so the parser stays on the stack.
func parseWith(s string, compact bool) (Result, error) {
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
		var k string
		if compact {
			k = p.name()
		} else {
			k = p.string()
		}
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

func (p *parser) string() string {
	n := p.uvarint()
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
