package guard

import (
	"crypto/rand"
	"encoding/hex"
)

// newCorrelationID makes the gateway's own correlation id, for refusals and
// for decision log lines of requests the PSP answered without one: a random
// (version 4) UUID.
func newCorrelationID() string {
	var b [36]byte
	return string(appendCorrelationID(b[:0]))
}

// appendCorrelationID appends the text of a new correlation id to b.
func appendCorrelationID(b []byte) []byte {
	var id [16]byte
	// crypto/rand.Read never returns an error; it crashes the program if
	// the system's random source fails.
	_, _ = rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 9562 variant
	b = hex.AppendEncode(b, id[:4])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[4:6])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[6:8])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[8:10])
	b = append(b, '-')
	return hex.AppendEncode(b, id[10:])
}
