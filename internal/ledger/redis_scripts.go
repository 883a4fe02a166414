package ledger

import (
	"fmt"

	"github.com/pspguard/pspguard/internal/psp"
	"github.com/redis/go-redis/v9"
)

// The Redis store changes an order only inside one of these scripts, so
// every change is atomic across gateway instances.
//
// An order is one hash. Order facts: a (amount), cur, cap (captured), rel
// (released), st (psp.OrderState), sc (single capture, 1 or 0), exs and exn
// (the expiry's whole and fractional seconds since the epoch, floored;
// absent when unknown). Counters: res (reserved), pen (pending), unc
// (uncertain), n (captures). One field per reservation: r:<token> =
// <p|u>:<amount>:<since>:<tag>, p for pending and u for uncertain, since
// the gateway's clock (Unix milliseconds) when it was made or adopted. A
// reservation pending for longer than the lease counts as uncertain; one
// written without a time (<p|u>:<amount>:<tag>, before leases) counts as
// made at time 0. ps is no later than the since of every pending
// reservation (absent: 0), so that a capture can tell that none has lapsed
// without reading them.
//
// An order change in flight (Hold) is one field c:<token> =
// <p|u>:<limit>:<since>:<kind>, the same shape, counted in pen and unc
// but not in res; chg counts them and lim is the lowest of their limits
// (absent when there are none). uv is 1 while the order is unverified.
// The version is inc, a random incarnation set when the hash is made, and
// v, a counter every change but a reservation bumps: a hash dropped and
// made again never repeats a version.
//
// ep is the replication ID of the primary the order was last written on
// (epoch.go).
//
// Every order script takes KEYS = {order, epoch key of the order's slot},
// ARGV[1] = the order TTL in milliseconds and, last, the failover fence in
// milliseconds, and touches no other key: on Redis Cluster each runs on its
// order's slot.
//
// Lua numbers are doubles: amounts are bounded by maxAmount so that they and
// their sums stay exact, and numbers are written back with %d, never with
// tostring (which keeps 14 digits).

// luaPrelude holds the constants and helpers every order script shares. The
// constants come from the Go declarations, so the two cannot drift apart.
var luaPrelude = fmt.Sprintf(`
local RESERVED, ADOPTED, NOT_FOUND, NEEDS_RECONCILE, EXCEEDS, NOT_CAPTURABLE, ALREADY_CAPTURED = %d, %d, %d, %d, %d, %d, %d
local AUTHORIZED, CAPTURED, CANCELLED = %d, %d, %d
local CHANGE_AMOUNT, CHANGE_RELEASE = %d, %d
local MAX_CAPTURES, MAX_AMOUNT = 2147483647, %d
local key = KEYS[1]

local function int(x)
  return string.format('%%d', x)
end

-- The failover fence (epoch.go). KEYS ends with the epoch key of the
-- order's slot, ARGV with the fence in milliseconds. replid is the
-- replication ID of the primary running the script; fenceLeft is how long
-- decisions in the slot still wait for captures sent before the slot's
-- primary last changed to reach the PSP (0 when they need not).
local replid, fenceLeft = '', 0
do
  local info = redis.call('INFO', 'replication')
  replid = string.match(info, 'master_replid:(%%x+)') or ''
  -- A primary that was a replica keeps the ID of the primary it followed
  -- as its second ID; one that never was has zeros. (An ID may itself
  -- begin with a zero: only one of zeros alone means none.)
  local id2 = string.match(info, 'master_replid2:(%%x+)') or ''
  local promoted = string.find(id2, '[1-9a-f]') ~= nil
  local epochKey, fence = KEYS[#KEYS], tonumber(ARGV[#ARGV])
  local t = redis.call('TIME')
  local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local e = redis.call('HMGET', epochKey, 'id', 'since')
  local since = tonumber(e[2] or '0')
  if e[1] ~= replid then
    -- The epoch key was written under another primary, or, on a promoted
    -- replica, may have been: this primary may lack that one's last
    -- writes. A store that never had another primary has nothing to lose.
    since = 0
    if e[1] or promoted then since = nowMs end
    redis.call('HSET', epochKey, 'id', replid, 'since', int(since))
  end
  if since > 0 and nowMs < since + fence then fenceLeft = since + fence - nowMs end
end

local function num(v)
  if v then return tonumber(v) end
  return 0
end

-- load returns the order as a table of numbers, the raw HGETALL reply, and
-- the hash as a table of strings; nil if the order is not held.
local function load()
  local f = redis.call('HGETALL', key)
  if #f == 0 then return nil, f, nil end
  local h = {}
  for i = 1, #f, 2 do h[f[i]] = f[i + 1] end
  local o = {
    a = num(h.a), cap = num(h.cap), rel = num(h.rel), st = num(h.st), sc = h.sc == '1',
    exs = h.exs and tonumber(h.exs), exn = num(h.exn),
    res = num(h.res), pen = num(h.pen), unc = num(h.unc), n = num(h.n),
    uv = h.uv == '1', chg = num(h.chg), cur = h.cur or '',
  }
  return o, f, h
end

local function parseReservation(v)
  local status, amount, since, tag = string.match(v, '^([pu]):(%%d+):(%%-?%%d+):(.*)$')
  if status then return status, tonumber(amount), tonumber(since), tag end
  -- Written before reservations had a lease (no time): its lease is over.
  status, amount, tag = string.match(v, '^([pu]):(%%d+):(.*)$')
  return status, tonumber(amount), 0, tag
end

local function reservation(status, amount, since, tag)
  return status .. ':' .. int(amount) .. ':' .. int(since) .. ':' .. tag
end

-- touch refreshes the order's expiry. The TTL is longer than the lease, so
-- an order with a reservation in flight outlives it; a reservation whose
-- gateway died does not keep its order forever.
local function touch()
  redis.call('PEXPIRE', key, ARGV[1])
end

local function held(field)
  local p = string.sub(field, 1, 2)
  return p == 'r:' or p == 'c:'
end

-- bump gives the order a version it has not had.
local function bump()
  redis.call('HINCRBY', key, 'v', 1)
end

-- create makes the hash of an order, unverified if uv, in incarnation inc.
local function create(inc, uv)
  redis.call('HSET', key, 'res', 0, 'pen', 0, 'unc', 0, 'n', 0, 'inc', inc, 'ep', replid)
  if uv then redis.call('HSET', key, 'uv', '1') end
end

-- An order last written under another primary may lack writes that one
-- took: it is unverified until the PSP's account is read, and a read begun
-- before is stale.
if redis.call('EXISTS', key) == 1 and redis.call('HGET', key, 'ep') ~= replid then
  redis.call('HSET', key, 'uv', '1', 'ep', replid)
  bump()
end

-- placeholder makes the hash of an order nothing is known of.
local function placeholder(inc)
  create(inc, true)
  redis.call('HSET', key, 'a', int(MAX_AMOUNT), 'cur', '', 'cap', 0, 'rel', 0, 'st', AUTHORIZED, 'sc', '0')
end

-- setLimit recomputes lim from the order changes in flight.
local function setLimit()
  local f = redis.call('HGETALL', key)
  local lim
  for i = 1, #f, 2 do
    if string.sub(f[i], 1, 2) == 'c:' then
      local _, l = parseReservation(f[i + 1])
      if not lim or l < lim then lim = l end
    end
  end
  if lim then redis.call('HSET', key, 'lim', int(lim)) else redis.call('HDEL', key, 'lim') end
end

-- meetFacts is meet (rule.go): it restricts the order facts of o (from
-- load) by those in ARGV[2..9] (see setFacts); a currency disagreement
-- makes the order unverified.
local function meetFacts(o)
  local a, cap, rel, st = math.min(o.a, tonumber(ARGV[2])), math.max(o.cap, tonumber(ARGV[4]) - o.res),
    math.max(o.rel, tonumber(ARGV[5])), o.st
  if st == AUTHORIZED then st = tonumber(ARGV[6]) end
  local sc = '0'
  if o.sc or ARGV[7] == '1' then sc = '1' end
  redis.call('HSET', key, 'a', int(a), 'cap', int(cap), 'rel', int(rel), 'st', int(st), 'sc', sc)
  if ARGV[8] ~= '' then
    local s, n = tonumber(ARGV[8]), tonumber(ARGV[9])
    if not o.exs or s < o.exs or (s == o.exs and n < o.exn) then
      redis.call('HSET', key, 'exs', ARGV[8], 'exn', ARGV[9])
    end
  end
  if o.cur == '' then
    redis.call('HSET', key, 'cur', ARGV[3])
  elseif ARGV[3] ~= '' and ARGV[3] ~= o.cur then
    redis.call('HSET', key, 'uv', '1')
  end
end

-- setFacts writes the order facts from ARGV[2..9]: amount, currency,
-- captured, released, state, single capture, expiry seconds and nanoseconds.
local function setFacts()
  redis.call('HSET', key, 'a', ARGV[2], 'cur', ARGV[3], 'cap', ARGV[4], 'rel', ARGV[5], 'st', ARGV[6], 'sc', ARGV[7])
  if ARGV[8] == '' then
    redis.call('HDEL', key, 'exs', 'exn')
  else
    redis.call('HSET', key, 'exs', ARGV[8], 'exn', ARGV[9])
  end
end
`,
	Reserved, Adopted, NotFound, NeedsReconcile, Exceeds, NotCapturable, AlreadyCaptured,
	psp.StateAuthorized, psp.StateCaptured, psp.StateCancelled,
	ChangeAmount, ChangeRelease, int64(maxAmount))

// luaDecide is decide (rule.go) in Lua.
const luaDecide = `
local function available(o)
  local a = o.a
  if o.chg > 0 and o.lim < a then a = o.lim end
  local remaining = a - o.cap - o.rel
  if remaining < 0 then remaining = 0 end
  local a = remaining - o.res
  if a < 0 then return 0 end
  return a
end

local function decide(o, adoptable, amount, tag, nows, nowns)
  if o.unc > 0 then
    if adoptable and tag ~= '' then return ADOPTED end
    return NEEDS_RECONCILE
  end
  if o.uv then return NEEDS_RECONCILE end
  if o.st ~= AUTHORIZED then
    if o.sc and o.st == CAPTURED then return ALREADY_CAPTURED end
    return NOT_CAPTURABLE
  end
  if o.exs and (nows > o.exs or (nows == o.exs and nowns >= o.exn)) then
    return NOT_CAPTURABLE
  end
  if o.sc and (o.cap > 0 or o.n > 0 or o.pen + o.unc > 0) then
    return ALREADY_CAPTURED
  end
  if amount <= 0 or amount > available(o) then return EXCEEDS end
  return RESERVED
end
`

// ARGV: ttl, now seconds, now nanoseconds, amount, tag, token, now in
// milliseconds, lease in milliseconds.
//
// The common case reads the order's fields by name and nothing else: no
// reservation is uncertain, and none pending has outlived its lease, which
// ps (the time of the oldest pending reservation, or earlier) tells without
// reading them. Otherwise every reservation is read: to count the lapsed
// ones as uncertain, to find one a retry may adopt, and to set ps exactly.
//
// Returns the outcome and the order as it was before the change (its
// lapsed reservations counted as uncertain), in one string: outcome, a, cur,
// cap, rel, st, sc, exs, exn, res, pen, unc, n, uv, chg, lim, separated by
// commas; only the outcome when the order is not held.
const luaReserve = luaDecide + luaReserveBody

// luaReserveBody is the reserve script after luaDecide; a keyed capture's
// script runs it as a function (redis_keyed.go).
const luaReserveBody = `
local v = redis.call('HMGET', key, 'a', 'cur', 'cap', 'rel', 'st', 'sc', 'exs', 'exn', 'res', 'pen', 'unc', 'n', 'ps',
  'uv', 'chg', 'lim')
if not v[1] then return int(NOT_FOUND) end
local o = {
  a = tonumber(v[1]), cap = num(v[3]), rel = num(v[4]), st = num(v[5]), sc = v[6] == '1',
  exs = v[7] and tonumber(v[7]), exn = num(v[8]), res = num(v[9]), pen = num(v[10]), unc = num(v[11]), n = num(v[12]),
  uv = v[14] == '1', chg = num(v[15]), lim = num(v[16]),
}
local amount, tag, token = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local now, lease = tonumber(ARGV[7]), tonumber(ARGV[8])
local pen, unc, ps = o.pen, o.unc, num(v[13])
local adopt, adoptStatus
if unc > 0 or (pen > 0 and now - ps >= lease) then
  ps = now
  local f = redis.call('HGETALL', key)
  for i = 1, #f, 2 do
    if held(f[i]) then
      local s, a, since, t = parseReservation(f[i + 1])
      local lapsed = s == 'p' and now - since >= lease
      if s == 'p' and since < ps then ps = since end
      if lapsed then
        -- Pending past its lease: its gateway is presumed gone, the
        -- outcome unknown.
        o.pen, o.unc = o.pen - 1, o.unc + 1
      end
      if (s == 'u' or lapsed) and string.sub(f[i], 1, 2) == 'r:' and not adopt and tag ~= '' and a == amount and t == tag then
        adopt, adoptStatus = f[i], s
      end
    end
  end
elseif pen == 0 or now < ps then
  ps = now
end
local out = decide(o, adopt ~= nil, amount, tag, tonumber(ARGV[2]), tonumber(ARGV[3]))
-- The fields as stored, but for the counts of a slow path.
local reply = out .. ',' .. v[1] .. ',' .. (v[2] or '') .. ',' .. (v[3] or '') .. ',' .. (v[4] or '') .. ',' ..
  (v[5] or '') .. ',' .. (v[6] or '') .. ',' .. (v[7] or '') .. ',' .. (v[8] or '') .. ',' .. (v[9] or '') .. ',' ..
  int(o.pen) .. ',' .. int(o.unc) .. ',' .. (v[12] or '') .. ',' .. (v[14] or '') .. ',' .. (v[15] or '') .. ',' ..
  (v[16] or '')
if out == ADOPTED then
  -- A new token fences off the holder of the old one.
  if adoptStatus == 'u' then pen, unc = pen + 1, unc - 1 end
  redis.call('HDEL', key, adopt)
  redis.call('HSET', key, 'r:' .. token, reservation('p', amount, now, tag), 'pen', int(pen), 'unc', int(unc), 'ps', int(ps))
  touch()
elseif out == RESERVED then
  redis.call('HSET', key, 'r:' .. token, reservation('p', amount, now, tag), 'res', int(o.res + amount),
    'pen', int(pen + 1), 'ps', int(ps))
  touch()
end
return reply
`

// luaSettle is the start of commit, release and mark_uncertain: it reads
// the reservation of ARGV[2] (a token) with the order fields they change,
// and returns 0 if the token is not held. A reservation leaves ps as it
// is: ps may be older than the oldest pending reservation, never younger.
const luaSettle = `
local field = 'r:' .. ARGV[2]
local v = redis.call('HMGET', key, field, 'a', 'cap', 'st', 'sc', 'res', 'pen', 'unc', 'n')
if not v[1] or not v[2] then return 0 end
local s, amount, since, tag = parseReservation(v[1])
local o = {a = tonumber(v[2]), cap = num(v[3]), st = num(v[4]), sc = v[5] == '1', res = num(v[6]),
  pen = num(v[7]), unc = num(v[8]), n = num(v[9])}
local pen, unc = o.pen, o.unc
if s == 'p' then pen = pen - 1 else unc = unc - 1 end
`

// ARGV: ttl, token. Returns 1, or 0 if the token is not held.
const luaCommit = luaSettle + `
local cap = o.cap + amount
local st = o.st
if o.sc or cap >= o.a then st = CAPTURED end
redis.call('HDEL', key, field)
redis.call('HSET', key, 'cap', int(cap), 'n', int(math.min(o.n + 1, MAX_CAPTURES)), 'st', int(st),
  'res', int(o.res - amount), 'pen', int(pen), 'unc', int(unc))
bump()
touch()
return 1
`

// ARGV: ttl, token. Returns 1, or 0 if the token is not held.
const luaRelease = luaSettle + `
redis.call('HDEL', key, field)
redis.call('HSET', key, 'res', int(o.res - amount), 'pen', int(pen), 'unc', int(unc))
bump()
touch()
return 1
`

// ARGV: ttl, token. Returns 1, or 0 if the token is not held. Marking an
// uncertain reservation again changes nothing.
const luaMarkUncertain = luaSettle + `
if s == 'p' then
  redis.call('HSET', key, field, reservation('u', amount, since, tag), 'pen', int(pen), 'unc', int(o.unc + 1))
end
bump()
touch()
return 1
`

// ARGV: ttl, then the order facts (see setFacts), 1 if the answer they
// come from is the request's own (verified), a fresh incarnation. An order
// already held is only restricted.
const luaLearn = `
local o = load()
if o then
  meetFacts(o)
else
  create(ARGV[11], ARGV[10] ~= '1')
  setFacts()
end
bump()
touch()
return 1
`

// ARGV: ttl, a fresh incarnation. Makes an unverified order if none is
// held and returns its version and what is left of the failover fence in
// milliseconds: inc:v:fence.
const luaBeginRead = `
if redis.call('EXISTS', key) == 0 then
  placeholder(ARGV[2])
  bump()
  touch()
end
local v = redis.call('HMGET', key, 'inc', 'v')
return (v[1] or '') .. ':' .. (v[2] or '0') .. ':' .. int(fenceLeft)
`

// ARGV: ttl, then the order facts (see setFacts), the time the read began
// and the lease in milliseconds, the version it began at (inc, v), a fresh
// incarnation, what was left of the failover fence when the read began
// (a read begun in the fence is stale: captures lost by the failover may
// not have reached the PSP yet). Returns 1 if the order did not change since (fresh): the
// facts replace the order's, which is verified, and every reservation
// uncertain or pending past its lease when the read began is dropped (the
// PSP's account includes whatever of them it applied). Otherwise only the
// meet is applied and 0 is returned.
const luaReconcile = `
local o, f, h = load()
if not o then
  -- Dropped since the read began: what the read missed is not known.
  placeholder(ARGV[14])
  setFacts()
  bump()
  touch()
  return 0
end
if (h.inc or '') ~= ARGV[12] or (h.v or '0') ~= ARGV[13] or ARGV[15] ~= '0' then
  meetFacts(o)
  bump()
  touch()
  return 0
end
local at, lease = tonumber(ARGV[10]), tonumber(ARGV[11])
local pen, unc, chg, amount = o.pen, o.unc, o.chg, 0
for i = 1, #f, 2 do
  if held(f[i]) then
    local s, a, since = parseReservation(f[i + 1])
    if s == 'u' or at - since >= lease then
      redis.call('HDEL', key, f[i])
      if s == 'u' then unc = unc - 1 else pen = pen - 1 end
      if string.sub(f[i], 1, 2) == 'r:' then amount = amount + a else chg = chg - 1 end
    end
  end
end
redis.call('HSET', key, 'res', int(o.res - amount), 'pen', int(pen), 'unc', int(unc), 'chg', int(chg))
redis.call('HDEL', key, 'uv')
if chg ~= o.chg then setLimit() end
setFacts()
bump()
touch()
return 1
`

// ARGV: ttl, token (also the incarnation if the order is made), kind, new
// amount, now in milliseconds. Returns 1 if held; if refused, the order's hash (as HGETALL).
const luaHold = `
local o, f = load()
if not o then
  placeholder(ARGV[2])
  o = load()
end
local kind, amount, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
-- A refusal returns the order's fields and the outcome's name last.
if fenceLeft > 0 then
  -- Captures the failover lost may be on their way: no change is decided
  -- before the PSP's account read after the fence.
  f[#f + 1] = 'needs_reconcile'
  return f
end
if kind == CHANGE_AMOUNT then
  if o.uv then
    f[#f + 1] = 'needs_reconcile'
    return f
  end
  if amount < o.cap + o.res then
    f[#f + 1] = 'exceeds'
    return f
  end
  limit = amount
elseif o.res > 0 then
  f[#f + 1] = 'busy'
  return f
elseif o.uv then
  limit = 0
else
  limit = o.cap + o.rel
end
local now = tonumber(ARGV[5])
redis.call('HSET', key, 'c:' .. ARGV[2], reservation('p', limit, now, int(kind)),
  'pen', int(o.pen + 1), 'chg', int(o.chg + 1))
-- ps stays no later than the since of every pending reservation.
local ps = redis.call('HGET', key, 'ps')
if o.pen == 0 or not ps or tonumber(ps) > now then redis.call('HSET', key, 'ps', int(now)) end
if o.chg == 0 or limit < num(redis.call('HGET', key, 'lim')) then redis.call('HSET', key, 'lim', int(limit)) end
bump()
touch()
return 1
`

// luaSettleChange is the start of the settlements of an order change: it
// reads the change of ARGV[2] (a token) and drops it, or returns 0 if the
// token is not held.
const luaSettleChange = `
local field = 'c:' .. ARGV[2]
local v = redis.call('HGET', key, field)
if not v then return 0 end
local s, limit, since, kind = parseReservation(v)
kind = tonumber(kind)
local o = load()
local function drop()
  redis.call('HDEL', key, field)
  if s == 'p' then o.pen = o.pen - 1 else o.unc = o.unc - 1 end
  redis.call('HSET', key, 'pen', int(o.pen), 'unc', int(o.unc), 'chg', int(o.chg - 1))
  setLimit()
end
`

// ARGV: ttl, token. The PSP applied the change; a raised amount makes the
// order unverified.
const luaCommitChange = luaSettleChange + `
drop()
if kind == CHANGE_AMOUNT then
  if limit > o.a then redis.call('HSET', key, 'uv', '1') end
  redis.call('HSET', key, 'a', int(math.min(o.a, limit)))
elseif kind == CHANGE_RELEASE then
  redis.call('HSET', key, 'rel', int(math.max(o.rel, o.a - o.cap)))
else
  redis.call('HSET', key, 'st', CANCELLED)
end
bump()
touch()
return 1
`

// ARGV: ttl, token. The PSP refused the change.
const luaReleaseChange = luaSettleChange + `
drop()
bump()
touch()
return 1
`

// ARGV: ttl, token. The change's outcome is unknown.
const luaMarkChangeUncertain = luaSettleChange + `
if s == 'p' then
  redis.call('HSET', key, field, reservation('u', limit, since, int(kind)), 'pen', int(o.pen - 1), 'unc', int(o.unc + 1))
end
bump()
touch()
return 1
`

// Drops the order and its reservations. ARGV: ttl (unused).
const luaForget = `
redis.call('DEL', key)
return 1
`

// scripts are loaded once per process; go-redis sends EVALSHA and falls
// back to EVAL when the server does not know the script yet.
var (
	scriptReserve          = redis.NewScript(luaPrelude + luaReserve)
	scriptCommit           = redis.NewScript(luaPrelude + luaCommit)
	scriptRelease          = redis.NewScript(luaPrelude + luaRelease)
	scriptMarkUncertain    = redis.NewScript(luaPrelude + luaMarkUncertain)
	scriptLearn            = redis.NewScript(luaPrelude + luaLearn)
	scriptBeginRead        = redis.NewScript(luaPrelude + luaBeginRead)
	scriptReconcile        = redis.NewScript(luaPrelude + luaReconcile)
	scriptHold             = redis.NewScript(luaPrelude + luaHold)
	scriptCommitChange     = redis.NewScript(luaPrelude + luaCommitChange)
	scriptReleaseChange    = redis.NewScript(luaPrelude + luaReleaseChange)
	scriptMarkChangeUnsure = redis.NewScript(luaPrelude + luaMarkChangeUncertain)
	scriptForget           = redis.NewScript(luaPrelude + luaForget)
)
