package caddymodule

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync/atomic"
)

// The gateway's own correlation ids, for refusals and for decision log
// lines of requests the PSP answered without one. An id is 128 bits in the
// textual form of a UUID: 64 random bits drawn when the process starts,
// then a counter. Ids are unique within a process by the counter and
// across processes by the random half, and making one costs a counter
// increment instead of a read from the system's random source.
var (
	correlationPrefix = func() (p [8]byte) {
		// crypto/rand.Read never returns an error; it crashes the program
		// if the system's random source fails.
		_, _ = rand.Read(p[:])
		return p
	}()
	correlationSeq atomic.Uint64
)

func newCorrelationID() string {
	var id [16]byte
	copy(id[:8], correlationPrefix[:])
	binary.BigEndian.PutUint64(id[8:], correlationSeq.Add(1))
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
