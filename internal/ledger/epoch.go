package ledger

import (
	"strconv"
	"strings"
	"sync"
)

// A Redis failover can promote a replica that lacks the primary's last
// writes: reservations of captures already on their way to the PSP, and
// order changes already forwarded. The Redis store fences such a loss by
// the primary's replication ID, which Redis gives a new value whenever a
// server becomes a primary (a promotion, or a restart without its data).
// Each order's hash records the ID it was last written under; one key per
// Cluster hash slot (epochKey) records the ID the slot's primary has now and
// when a script first saw it. An order last written under another ID may
// lack writes: it is unverified until read from the PSP. And every decision
// in the slot waits out the fence, from when the new ID was first seen for
// as long as a capture sent before the failover can still be on its way to
// the PSP, so that the read shows every capture the lost writes had allowed.
// See the README, "Failover".

// clusterSlots is the number of Redis Cluster hash slots.
const clusterSlots = 16384

// crc16 is the CRC-16/XMODEM checksum Redis Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// clusterSlot is the Redis Cluster hash slot of a key whose hash tag is tag.
func clusterSlot(tag string) int { return int(crc16(tag) % clusterSlots) }

// keySlot is the Redis Cluster hash slot of key: that of its hash tag, the
// part between its first '{' and the next '}' when not empty, or of the
// whole key.
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return clusterSlot(key)
}

// slotTags holds, for every hash slot, a short hash tag that maps to it:
// the epoch key of a slot carries it, so that it lives beside the orders of
// the slot and one script can touch both.
var slotTags = sync.OnceValue(func() *[clusterSlots]string {
	var tags [clusterSlots]string
	for i, left := 0, clusterSlots; left > 0; i++ {
		tag := strconv.FormatInt(int64(i), 36)
		if s := clusterSlot(tag); tags[s] == "" {
			tags[s] = tag
			left--
		}
	}
	return &tags
})

// epochTag is the hash tag of the epoch key of the slot of orderTag.
func epochTag(orderTag string) string { return slotTags()[clusterSlot(orderTag)] }
