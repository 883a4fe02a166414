package idempotency

import "github.com/redis/go-redis/v9"

// A key's record is one Redis string:
//
//	in flight: 'F' fingerprint(32 bytes) token(32 hex digits)
//	completed: 'R' fingerprint(32 bytes) result (the layout of encoding.go)
//
// An in-flight record expires after Config.InFlightTTL, a completed one
// after Config.TTL. Every script touches one record and nothing else.
//
// Each script runs atomically; "now" is the server's clock (TIME), so
// gateways with skewed clocks agree. Scripts reply with the Outcome values.

// beginScript claims KEYS[1] with the in-flight record ARGV[1] for ARGV[2]
// milliseconds, or reports the record already there. A record equal to
// ARGV[1] holds this very token: the reply of an earlier run was lost and
// the client ran the script again, so the claim is still ours.
var beginScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0} end
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then return {0} end
if string.sub(v, 2, 33) ~= string.sub(ARGV[1], 2, 33) then return {3} end
if string.sub(v, 1, 1) == 'F' then return {2} end
return {1, string.sub(v, 34)}
`)

// completeScript replaces the in-flight record of KEYS[1] held by token
// ARGV[1] with the result ARGV[2] for ARGV[3] milliseconds. It replies 1,
// or 0 when the token does not hold the key.
var completeScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 1, 1) ~= 'F' or string.sub(v, 34) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], 'R' .. string.sub(v, 2, 33) .. ARGV[2], 'PX', ARGV[3])
return 1
`)

// abandonScript deletes the in-flight record of KEYS[1] held by token
// ARGV[1]. It replies 1, or 0 when the token does not hold the key.
var abandonScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 1, 1) ~= 'F' or string.sub(v, 34) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)
