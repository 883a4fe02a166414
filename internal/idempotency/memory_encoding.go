package idempotency

import (
	"encoding/binary"
	"fmt"
	"net/http"
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
// share the memory of s; the body is a copy the caller owns. It is the
// memory store's replay path, so the values of all headers share one
// array: each header's slice is capped at its own values, so appending to
// one never writes into the next.
func parseCompact(s string) (Result, error) {
	if len(s) < 2 {
		return Result{}, errCorrupt
	}
	r := Result{Status: int(s[0])<<8 | int(s[1])}
	p := parser{s: s[2:]}
	n := p.count()
	r.Header = make(http.Header, n)
	values := make([]string, 0, n) // one value per header is the rule
	for range n {
		k := p.name()
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
