package idempotency

import (
	"encoding/binary"
	"fmt"
)

// The memory store keeps results in the layout of encoding.go with one
// change: a header name is a number n, and n below len(knownHeaders) stands
// for knownHeaders[n] while a larger n is followed by a literal name of
// n-len(knownHeaders) bytes. The names a PSP answer carries then take one
// byte each, which over a million cached results is worth about 15 MiB.
// (Redis keeps the plain layout: its keys are shared between versions.)
var knownHeaders = [...]string{
	"Capture-Id", "Content-Type", "Klarna-Correlation-Id", "Location",
	"Order-Id", "Refund-Id", "X-Correlation-Id",
}

// appendCompact appends the memory store's encoding of r to dst. Like
// appendResult it refuses a status a replay could not write.
func appendCompact(dst []byte, r Result) ([]byte, error) {
	if r.Status < 100 || r.Status > 999 {
		return dst, fmt.Errorf("idempotency: result status %d is not a valid HTTP status", r.Status)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(r.Status))
	dst = binary.AppendUvarint(dst, uint64(len(r.Header)))
	for name, values := range r.Header {
		dst = appendName(dst, name)
		dst = binary.AppendUvarint(dst, uint64(len(values)))
		for _, v := range values {
			dst = appendString(dst, v)
		}
	}
	return append(dst, r.Body...), nil
}

func appendName(dst []byte, name string) []byte {
	for i, k := range knownHeaders {
		if k == name {
			return append(dst, byte(i))
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(knownHeaders)+len(name)))
	return append(dst, name...)
}

// parseCompact decodes what appendCompact wrote. Header names and values
// share the memory of s; the body is a copy the caller owns.
func parseCompact(s string) (Result, error) { return parseWith(s, true) }

func (p *parser) name() string {
	n := p.uvarint()
	if n < uint64(len(knownHeaders)) {
		return knownHeaders[n]
	}
	n -= uint64(len(knownHeaders))
	if n > uint64(len(p.s)) {
		p.bad = true
		return ""
	}
	v := p.s[:n]
	p.s = p.s[n:]
	return v
}
