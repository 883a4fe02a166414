package idempotency

import "github.com/redis/go-redis/v9"

// A key's record is one Redis string:
//
//	in flight: 'F' fingerprint(32 bytes) token(32 hex digits)
//	completed: 'R' fingerprint(32 bytes) result (the layout of encoding.go)
//
// An in-flight record expires after Options.InFlightTTL, a completed one
// after Options.TTL, by the server's clock. Each script runs atomically and
// touches one record; the ledger's scripts that claim or complete a keyed
// capture with its reservation touch the record and the order's hash,
// which share a slot. Scripts reply with the Outcome values.

// LuaClaim defines idemClaim(k, rec, ttl): it claims the record k with the
// in-flight record rec for ttl milliseconds, or reports the record already
// there, as a reply of {outcome} or {Replay, result}. A record equal to rec
// holds this very token: the reply of an earlier run was lost and the
// client ran the script again, so the claim is still ours. Other packages'
// scripts include it to claim a key together with their own change (see
// ClaimArgs and ParseClaim).
const LuaClaim = `
local function idemClaim(k, rec, ttl)
  if redis.call('SET', k, rec, 'NX', 'PX', ttl) then return {0} end
  local v = redis.call('GET', k)
  if v == rec then return {0} end
  if string.sub(v, 2, 33) ~= string.sub(rec, 2, 33) then return {3} end
  if string.sub(v, 1, 1) == 'F' then return {2} end
  return {1, string.sub(v, 34)}
end
`

// LuaFinish defines idemComplete(k, token, result, ttl), which replaces the
// in-flight record of k held by token with result for ttl milliseconds,
// and idemAbandon(k, token), which deletes it. Both return 1, or 0 when
// the token does not hold the key.
const LuaFinish = `
local function idemHeld(k, token)
  local v = redis.call('GET', k)
  if not v or string.sub(v, 1, 1) ~= 'F' or string.sub(v, 34) ~= token then return nil end
  return v
end

local function idemComplete(k, token, result, ttl)
  local v = idemHeld(k, token)
  if not v then return 0 end
  redis.call('SET', k, 'R' .. string.sub(v, 2, 33) .. result, 'PX', ttl)
  return 1
end

local function idemAbandon(k, token)
  if not idemHeld(k, token) then return 0 end
  redis.call('DEL', k)
  return 1
end
`

// beginScript claims KEYS[1] with the in-flight record ARGV[1] for ARGV[2]
// milliseconds.
var beginScript = redis.NewScript(LuaClaim + `return idemClaim(KEYS[1], ARGV[1], ARGV[2])`)

// completeScript replaces the in-flight record of KEYS[1] held by token
// ARGV[1] with the result ARGV[2] for ARGV[3] milliseconds. It replies 1,
// or 0 when the token does not hold the key.
var completeScript = redis.NewScript(LuaFinish + `return idemComplete(KEYS[1], ARGV[1], ARGV[2], ARGV[3])`)

// abandonScript deletes the in-flight record of KEYS[1] held by token
// ARGV[1]. It replies 1, or 0 when the token does not hold the key.
var abandonScript = redis.NewScript(LuaFinish + `return idemAbandon(KEYS[1], ARGV[1])`)
