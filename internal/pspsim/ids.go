package pspsim

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// newUUID returns a random (version 4) UUID in canonical lower-case form.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// normalizeUUID returns id as a canonical lower-case UUID if it is one the
// way Java's UUID.fromString reads a UUID-typed path parameter: five groups
// of hexadecimal digits, either case, separated by '-', each group at most
// as long as in the 8-4-4-4-12 form and shorter ones read with leading
// zeros (a-0-0-0-b is 0000000a-0000-0000-0000-00000000000b).
func normalizeUUID(id string) (string, bool) {
	if len(id) > 36 {
		return "", false
	}
	groups := strings.Split(id, "-")
	if len(groups) != 5 {
		return "", false
	}
	var b strings.Builder
	b.Grow(36)
	for i, g := range groups {
		width := [5]int{8, 4, 4, 4, 12}[i]
		if g == "" || len(g) > width {
			return "", false
		}
		for j := 0; j < len(g); j++ {
			if c := g[j]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return "", false
			}
		}
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(strings.Repeat("0", width-len(g)))
		b.WriteString(strings.ToLower(g))
	}
	return b.String(), true
}
