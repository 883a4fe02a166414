package ledger

import (
	"context"
	"fmt"

	"github.com/pspguard/pspguard/internal/idempotency"
	"github.com/pspguard/pspguard/internal/stores"
	"github.com/redis/go-redis/v9"
)

// A keyed capture's scripts: KEYS = {order, idempotency record, epoch key},
// which share the order's slot (the record's key carries the order's Slot),
// and the failover fence last in ARGV.
//
// scriptClaimReserve: ARGV[1..8] as the reserve script's, then the
// in-flight record and its TTL (idempotency.Redis.ClaimArgs). Replies
// with idemClaim's reply, or, when the claim is Started, {0, the reserve
// script's reply}.
var scriptClaimReserve = redis.NewScript(luaPrelude + luaDecide + idempotency.LuaClaim + `
local function reserve()
` + luaReserveBody + `
end
local c = idemClaim(KEYS[2], ARGV[9], ARGV[10])
if c[1] ~= 0 then return c end
return {0, reserve()}
`)

// settleFinishScript runs a settlement script (ARGV[1], ARGV[2]: TTL and
// token), then completes the claim of the token ARGV[3] with the result
// ARGV[5] for ARGV[6] milliseconds if ARGV[4] is 'c', or abandons it.
// Replies {settled, finished}, each 1 or 0 (token not held).
func settleFinishScript(body string) *redis.Script {
	return redis.NewScript(luaPrelude + idempotency.LuaFinish + `
local function settle()
` + body + `
end
local held = settle()
local done
if ARGV[4] == 'c' then
  done = idemComplete(KEYS[2], ARGV[3], ARGV[5], ARGV[6])
else
  done = idemAbandon(KEYS[2], ARGV[3])
end
return {held, done}
`)
}

var settleFinishScripts = map[*redis.Script]*redis.Script{
	scriptCommit:           settleFinishScript(luaCommit),
	scriptRelease:          settleFinishScript(luaRelease),
	scriptMarkUncertain:    settleFinishScript(luaMarkUncertain),
	scriptCommitChange:     settleFinishScript(luaCommitChange),
	scriptReleaseChange:    settleFinishScript(luaReleaseChange),
	scriptMarkChangeUnsure: settleFinishScript(luaMarkChangeUncertain),
}

type redisKeyed struct {
	r    *Redis
	idem *idempotency.Redis
}

func (r *Redis) keyed(i *idempotency.Redis) Keyed { return redisKeyed{r, i} }

// ClaimReserve implements Keyed.
func (k redisKeyed) ClaimReserve(ctx context.Context, key Key, req ReserveRequest, ik idempotency.Key, fp [32]byte) (idempotency.Claim, Decision, error) {
	if err := k.idem.Closed(); err != nil {
		return idempotency.Claim{}, Decision{}, err
	}
	claimToken, token := stores.NewToken(), stores.NewToken()
	rk, rec, ttl := k.idem.ClaimArgs(ik, fp, claimToken)
	now := unixNano(k.r.now())
	sec, nsec := splitNano(now)
	reply, err := scriptClaimReserve.Run(ctx, k.r.client, []string{k.r.orderKey(key), rk, k.r.epochKey(key)},
		k.r.ttl, sec, nsec, clampRequest(req.Amount), req.Tag, token, floorDiv(now, 1e6), k.r.lease, rec, ttl, k.r.fence).Slice()
	if err != nil {
		return idempotency.Claim{}, Decision{}, unavailable(err)
	}
	if len(reply) != 2 || reply[0] != int64(0) {
		c, err := idempotency.ParseClaim(reply, claimToken)
		return c, Decision{}, err
	}
	v, _ := reply[1].(string)
	d, err := parseDecision(v)
	if err != nil {
		return idempotency.Claim{}, Decision{}, unavailable(err)
	}
	if d.Outcome == Reserved || d.Outcome == Adopted {
		d.Reservation = Reservation{Key: key, Token: token, Amount: req.Amount}
		k.r.held.add(k.r.orderKey(key), d.Reservation)
	}
	return idempotency.Claim{Outcome: idempotency.Started, Token: claimToken}, d, nil
}

// SettleFinish implements Keyed.
func (k redisKeyed) SettleFinish(ctx context.Context, res Reservation, s Settlement, ik idempotency.Key, token string, result *idempotency.Result) (error, error) {
	if res.Token == "" || k.idem.Closed() != nil {
		// Nothing to settle, or a cache closed by a reload: the ledger
		// settles all the same, and the cache reports itself.
		return sequence{k.r, k.idem}.SettleFinish(ctx, res, s, ik, token, result)
	}
	script := scriptMarkUncertain
	switch s {
	case SettleCommit:
		script = scriptCommit
	case SettleRelease:
		script = scriptRelease
	}
	if res.change {
		script = map[*redis.Script]*redis.Script{scriptCommit: scriptCommitChange,
			scriptRelease: scriptReleaseChange, scriptMarkUncertain: scriptMarkChangeUnsure}[script]
	}
	finish, enc, ttl := "a", []byte(nil), int64(0)
	var encErr error
	if result != nil {
		// A result that cannot be stored is abandoned: a retry runs again.
		if enc, ttl, encErr = k.idem.CompleteArgs(*result); encErr == nil {
			finish = "c"
		}
	}
	v, err := settleFinishScripts[script].Run(ctx, k.r.client, []string{k.r.orderKey(res.Key), k.idem.Key(ik), k.r.epochKey(res.Key)},
		k.r.ttl, res.Token, token, finish, enc, ttl, k.r.fence).Int64Slice()
	if err == nil && len(v) != 2 {
		err = fmt.Errorf("unexpected settle reply %v", v)
	}
	k.r.held.settled(res, err == nil && (v[0] == 0 || s != SettleUncertain))
	if err != nil {
		return unavailable(err), fmt.Errorf("%w: %w", idempotency.ErrUnavailable, err)
	}
	var serr, ferr error
	if v[0] == 0 {
		serr = ErrNotHeld
	}
	switch {
	case encErr != nil:
		ferr = encErr
	case v[1] == 0:
		ferr = idempotency.ErrNotHeld
	}
	return serr, ferr
}
