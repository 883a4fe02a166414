package ledger

import (
	"crypto/rand"
	"encoding/hex"
)

// tokenLen is the length of a fencing token: 128 random bits in hex.
const tokenLen = 32

// newToken returns a fresh fencing token. crypto/rand does not fail on the
// platforms Go supports (it aborts the program instead).
func newToken() string {
	var b [tokenLen / 2]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
