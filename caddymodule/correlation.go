package caddymodule

import (
	"crypto/rand"
	"encoding/hex"
)

// newCorrelationID makes the gateway's own correlation id, for refusals and
// for decision log lines of requests the PSP answered without one: a random
// (version 4) UUID. The random bytes come from the system's random source
// into a stack buffer, and the text is the one allocation.
func newCorrelationID() string {
	var id [16]byte
	// crypto/rand.Read never returns an error; it crashes the program if
	// the system's random source fails.
	_, _ = rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 9562 variant
	var s [36]byte
	hex.Encode(s[0:8], id[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], id[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], id[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], id[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], id[10:16])
	return string(s[:])
}
