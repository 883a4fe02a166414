package guard

import (
	"crypto/rand"

	"github.com/google/uuid"
)

// newCorrelationID makes the gateway's own correlation id, for refusals and
// for decision log lines of requests the PSP answered without one: a random
// (version 4) UUID, whose text is the one allocation.
func newCorrelationID() string {
	var id uuid.UUID
	// crypto/rand.Read never returns an error; it crashes the program if
	// the system's random source fails.
	_, _ = rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 9562 variant
	return id.String()
}
