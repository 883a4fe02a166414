package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pspguard/pspguard/internal/psp"
	"github.com/pspguard/pspguard/internal/stores"
	"github.com/redis/go-redis/v9"
)

// Redis is a Store in Redis, shared by every gateway instance that uses the
// same server (or Cluster) and prefix. Each order is one hash, changed only
// by Lua scripts (redis_scripts.go) that touch that hash alone, so every
// decision is atomic across instances and every script runs on the one
// Cluster slot of its order.
type Redis struct {
	client redis.Cmdable
	prefix string
	ttl    string // OrderTTL in milliseconds, as the scripts take it
	lease  int64  // Lease in milliseconds
	fence  int64  // Fence in milliseconds
	epoch  string // the epoch key, or empty on a Cluster: one per slot
	now    func() time.Time
	held   heldSet
}

// NewRedis returns a store on client. The caller keeps ownership of the
// client: Close does not close it.
func NewRedis(client redis.Cmdable, opts Options) *Redis {
	if opts.Now == nil {
		opts.Now = newServerClock(client, time.Now).now
	}
	opts = opts.withDefaults()
	r := &Redis{
		client: client,
		prefix: stores.Prefix(opts.Prefix, "ledger"),
		// An order outlives the lease of any reservation on it.
		ttl:   strconv.FormatInt(max(opts.OrderTTL.Milliseconds(), opts.Lease.Milliseconds(), 1), 10),
		lease: max(opts.Lease.Milliseconds(), 1),
		fence: max(opts.Fence.Milliseconds(), 1),
		now:   opts.Now,
		held:  heldSet{pending: map[string]heldField{}, uncertain: map[string]heldField{}},
	}
	if !opts.Cluster {
		r.epoch = r.prefix + "epoch"
	}
	return r
}

// keyEscaper keeps ':' out of the PSP and merchant components, so that the
// order id, the last component, is the only one that may contain it and no
// two orders share a key.
var keyEscaper = strings.NewReplacer("%", "%25", ":", "%3A")

// Slot is the order's Redis Cluster hash tag: 16 hex digits of a SHA-256
// of the PSP, the merchant and the order id. Every key of the order, and
// the idempotency record of every keyed request on it, carries it in
// braces, so one script can touch them all; different orders land on
// different slots, and so on every master of a Cluster.
func (k Key) Slot() string {
	var buf [192]byte
	b := append(append(append(buf[:0], k.PSP...), 0), k.Merchant...)
	s := sha256.Sum256(append(append(b, 0), k.OrderID...))
	return hex.EncodeToString(s[:8])
}

// orderKey is {prefix}:v2:ledger:{slot}:{psp}:{merchant}:{orderID}, the
// slot in braces.
func (r *Redis) orderKey(k Key) string {
	return r.prefix + "{" + k.Slot() + "}:" + keyEscaper.Replace(k.PSP) + ":" + keyEscaper.Replace(k.Merchant) + ":" + k.OrderID
}

// epochKey is the key of the failover fence of k's order: on a Cluster
// {prefix}:v2:ledger:epoch:{tag}, tag a hash tag of the order's slot;
// otherwise {prefix}:v2:ledger:epoch.
func (r *Redis) epochKey(k Key) string {
	if r.epoch != "" {
		return r.epoch
	}
	return r.prefix + "epoch:{" + epochTag(k.Slot()) + "}"
}

// keys are an order script's keys: the order's and its slot's epoch key.
func (r *Redis) keys(k Key) []string {
	return []string{r.orderKey(k), r.epochKey(k)}
}

// unavailable wraps a Redis failure so that errors.Is(err, ErrUnavailable).
func unavailable(err error) error {
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// Get implements Store.
func (r *Redis) Get(ctx context.Context, key Key) (Entry, bool, error) {
	h, err := r.client.HGetAll(ctx, r.orderKey(key)).Result()
	if err != nil {
		return Entry{}, false, unavailable(err)
	}
	if len(h) == 0 {
		return Entry{}, false, nil
	}
	e, err := parseEntry(h, r.nowMillis(), r.lease)
	if err != nil {
		return Entry{}, false, unavailable(err)
	}
	return e, true, nil
}

// Learn implements Store.
func (r *Redis) Learn(ctx context.Context, key Key, order psp.Order, verified bool) error {
	v := "0"
	if verified {
		v = "1"
	}
	args, err := factArgs(order)
	if err != nil {
		return err
	}
	return r.run(ctx, scriptLearn, key, append(args, v, stores.NewToken())...)
}

// BeginRead implements Store.
func (r *Redis) BeginRead(ctx context.Context, key Key) (ReadToken, error) {
	at := unixNano(r.now())
	v, err := scriptBeginRead.Run(ctx, r.client, r.keys(key), r.ttl, stores.NewToken(), r.fence).Text()
	if err != nil {
		return ReadToken{}, unavailable(err)
	}
	inc, rest, _ := strings.Cut(v, ":")
	ver, fence, _ := strings.Cut(rest, ":")
	n, err := strconv.ParseUint(ver, 10, 64)
	f, ferr := strconv.ParseInt(fence, 10, 64)
	if err != nil || ferr != nil || f < 0 {
		return ReadToken{}, unavailable(fmt.Errorf("unexpected begin-read reply %q", v))
	}
	return ReadToken{inc: inc, ver: n, at: at, fence: f}, nil
}

// Reconcile implements Store.
func (r *Redis) Reconcile(ctx context.Context, key Key, order psp.Order, tok ReadToken) (bool, error) {
	args, err := factArgs(order)
	if err != nil {
		return false, err
	}
	fresh, err := scriptReconcile.Run(ctx, r.client, r.keys(key), append(append([]any{r.ttl}, args...),
		floorDiv(tok.at, 1e6), r.lease, tok.inc, strconv.FormatUint(tok.ver, 10), stores.NewToken(), tok.fence, r.fence)...).Int64()
	if err != nil {
		return false, unavailable(err)
	}
	return fresh == 1, nil
}

// factArgs are the order facts as the scripts take them (see setFacts).
func factArgs(o psp.Order) ([]any, error) {
	if err := checkOrder(o); err != nil {
		return nil, err
	}
	exs, exn := "", ""
	if n := unixNano(o.ExpiresAt); n != 0 {
		sec, nsec := splitNano(n)
		exs, exn = strconv.FormatInt(sec, 10), strconv.FormatInt(nsec, 10)
	}
	sc := "0"
	if o.SingleCapture {
		sc = "1"
	}
	return []any{o.Amount, o.Currency, o.Captured, o.Released, int(o.State), sc, exs, exn}, nil
}

// Reserve implements Store.
func (r *Redis) Reserve(ctx context.Context, key Key, req ReserveRequest) (Decision, error) {
	token := stores.NewToken()
	now := unixNano(r.now())
	sec, nsec := splitNano(now)
	nowMs := floorDiv(now, 1e6)
	v, err := scriptReserve.Run(ctx, r.client, r.keys(key),
		r.ttl, sec, nsec, clampRequest(req.Amount), req.Tag, token, nowMs, r.lease, r.fence).Text()
	if err != nil {
		return Decision{}, unavailable(err)
	}
	d, err := parseDecision(v)
	if err != nil {
		return Decision{}, unavailable(err)
	}
	if d.Outcome == Reserved || d.Outcome == Adopted {
		// An adopted reservation has the request's amount: that is what
		// matched it.
		d.Reservation = Reservation{Key: key, Token: token, Amount: req.Amount}
		r.held.add(r.orderKey(key), d.Reservation)
	}
	return d, nil
}

// parseDecision reads the reserve script's reply: the outcome, then the
// order's fields, comma-separated (see luaReserve).
func parseDecision(reply string) (Decision, error) {
	var f [16]string
	n := 0
	for s := reply; ; n++ {
		if n == len(f) {
			return Decision{}, fmt.Errorf("unexpected reserve reply %q", reply)
		}
		i := strings.IndexByte(s, ',')
		if i < 0 {
			f[n] = s
			n++
			break
		}
		f[n], s = s[:i], s[i+1:]
	}
	var p entryParser
	out := p.int("outcome", f[0])
	if p.err != nil || out < 0 || out > int64(AlreadyCaptured) || (n != 1 && n != len(f)) {
		return Decision{}, fmt.Errorf("unexpected reserve reply %q", reply)
	}
	d := Decision{Outcome: Outcome(out)}
	if n == 1 {
		if d.Outcome != NotFound {
			return Decision{}, fmt.Errorf("unexpected reserve reply %q", reply)
		}
		return d, nil
	}
	d.Entry = Entry{
		Order: psp.Order{
			Amount:        p.int("a", f[1]),
			Currency:      f[2],
			Captured:      p.int("cap", f[3]),
			Released:      p.int("rel", f[4]),
			State:         psp.OrderState(p.int("st", f[5])),
			SingleCapture: f[6] == "1",
		},
		Reserved:   p.int("res", f[9]),
		Pending:    int(p.int("pen", f[10])),
		Uncertain:  int(p.int("unc", f[11])),
		Captures:   int(p.int("n", f[12])),
		Unverified: f[13] == "1",
		Changes:    int(p.int("chg", f[14])),
	}
	if d.Entry.Changes > 0 {
		d.Entry.Limit = p.int("lim", f[15])
	}
	if f[7] != "" {
		d.Entry.ExpiresAt = fromUnixNano(p.int("exs", f[7])*1e9 + p.int("exn", f[8]))
	}
	return d, p.err
}

// Commit implements Store.
func (r *Redis) Commit(ctx context.Context, res Reservation) error {
	return r.settle(ctx, scriptCommit, res)
}

// Release implements Store.
func (r *Redis) Release(ctx context.Context, res Reservation) error {
	return r.settle(ctx, scriptRelease, res)
}

// MarkUncertain implements Store. Marking an uncertain reservation again
// changes nothing.
func (r *Redis) MarkUncertain(ctx context.Context, res Reservation) error {
	return r.settle(ctx, scriptMarkUncertain, res)
}

func (r *Redis) settle(ctx context.Context, s *redis.Script, res Reservation) error {
	if res.Token == "" {
		return ErrNotHeld
	}
	if res.change {
		switch s {
		case scriptCommit:
			s = scriptCommitChange
		case scriptRelease:
			s = scriptReleaseChange
		default:
			s = scriptMarkChangeUnsure
		}
	}
	held, err := s.Run(ctx, r.client, r.keys(res.Key), r.ttl, res.Token, r.fence).Int64()
	// A committed or released reservation leaves the hash, as does one no
	// longer held; one marked uncertain, or not settled, stays.
	r.held.settled(res, err == nil && (held == 0 || s != scriptMarkUncertain && s != scriptMarkChangeUnsure))
	if err != nil {
		return unavailable(err)
	}
	if held == 0 {
		return ErrNotHeld
	}
	return nil
}

// Hold implements Store.
func (r *Redis) Hold(ctx context.Context, key Key, c Change) (Decision, error) {
	if c.Kind == ChangeAmount {
		if err := checkAmount("amount", c.Amount); err != nil {
			return Decision{}, err
		}
	}
	token := stores.NewToken()
	v, err := scriptHold.Run(ctx, r.client, r.keys(key), r.ttl, token, int(c.Kind), c.Amount, r.nowMillis(), r.fence).Result()
	if err != nil {
		return Decision{}, unavailable(err)
	}
	f, refused := v.([]any)
	if !refused {
		d := Decision{Outcome: Reserved, Reservation: Reservation{Key: key, Token: token, change: true}}
		r.held.add(r.orderKey(key), d.Reservation)
		return d, nil
	}
	// The order's fields, then the outcome's name.
	if len(f)%2 == 0 {
		return Decision{}, unavailable(fmt.Errorf("hold: reply without an outcome"))
	}
	var outcome Outcome
	switch name, _ := f[len(f)-1].(string); name {
	case Exceeds.String():
		outcome = Exceeds
	case Busy.String():
		outcome = Busy
	case NeedsReconcile.String():
		outcome = NeedsReconcile
	default:
		return Decision{}, unavailable(fmt.Errorf("hold: unknown outcome %q", name))
	}
	h := make(map[string]string, len(f)/2)
	for i := 0; i+1 < len(f)-1; i += 2 {
		k, _ := f[i].(string)
		h[k], _ = f[i+1].(string)
	}
	e, err := parseEntry(h, r.nowMillis(), r.lease)
	if err != nil {
		return Decision{}, unavailable(err)
	}
	return Decision{Outcome: outcome, Entry: e}, nil
}

// Forget implements Store. Reservations in flight on the order are dropped
// with it: their tokens are no longer held.
func (r *Redis) Forget(ctx context.Context, key Key) error {
	if err := r.run(ctx, scriptForget, key); err != nil {
		return err
	}
	r.held.forget(r.orderKey(key))
	return nil
}

// run runs an order script whose reply does not matter.
func (r *Redis) run(ctx context.Context, s *redis.Script, key Key, args ...any) error {
	if err := s.Run(ctx, r.client, r.keys(key), append(append([]any{r.ttl}, args...), r.fence)...).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// Stats implements Store. The orders are not counted (-1): they spread
// over the keyspace, or a Cluster's masters, and no key counts them all.
// The reservations are this process's (see heldSet).
func (r *Redis) Stats(ctx context.Context) (orders, reservations int64, err error) {
	n, err := r.held.count(ctx, r.client)
	if err != nil {
		return 0, 0, unavailable(err)
	}
	return -1, n, nil
}

// Close implements Store. The client belongs to the caller and stays open.
func (r *Redis) Close() error { return nil }

// parseEntry reads an order hash (see redis_scripts.go for its fields).
// nowMillis is the store's clock in Unix milliseconds, as reservations
// are stamped.
func (r *Redis) nowMillis() int64 { return floorDiv(unixNano(r.now()), 1e6) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// parseEntry reads an order's hash. A reservation pending for longer than
// the lease at nowMs counts as uncertain.
func parseEntry(h map[string]string, nowMs, leaseMs int64) (Entry, error) {
	var p entryParser
	e := Entry{
		Order: psp.Order{
			Amount:        p.int("a", h["a"]),
			Currency:      h["cur"],
			Captured:      p.int("cap", h["cap"]),
			Released:      p.int("rel", h["rel"]),
			State:         psp.OrderState(p.int("st", h["st"])),
			SingleCapture: h["sc"] == "1",
		},
		Reserved:   p.int("res", h["res"]),
		Pending:    int(p.int("pen", h["pen"])),
		Uncertain:  int(p.int("unc", h["unc"])),
		Captures:   int(p.int("n", h["n"])),
		Unverified: h["uv"] == "1",
		Changes:    int(p.int("chg", h["chg"])),
	}
	if e.Changes > 0 {
		e.Limit = p.int("lim", h["lim"])
	}
	if s, ok := h["exs"]; ok {
		e.ExpiresAt = fromUnixNano(p.int("exs", s)*1e9 + p.int("exn", h["exn"]))
	}
	for k, v := range h {
		if !(strings.HasPrefix(k, "r:") || strings.HasPrefix(k, "c:")) || !strings.HasPrefix(v, "p:") {
			continue
		}
		// p:<amount>:<since>:<tag>, or p:<amount>:<tag> from before leases,
		// whose lease is over (the scripts read it the same way).
		_, rest, _ := strings.Cut(v[2:], ":")
		var since int64
		if s, _, ok := strings.Cut(rest, ":"); ok {
			since, _ = strconv.ParseInt(s, 10, 64)
		}
		if nowMs-since >= leaseMs {
			e.Pending--
			e.Uncertain++
		}
	}
	return e, p.err
}

// entryParser reads integer fields, keeping the first error.
type entryParser struct{ err error }

func (p *entryParser) int(name, s string) int64 {
	if s == "" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil && p.err == nil {
		p.err = fmt.Errorf("corrupt ledger field %s: %w", name, err)
	}
	return n
}

// splitNano splits nanoseconds since the epoch into floored seconds and the
// nanoseconds past them, both exact as Lua numbers.
func splitNano(n int64) (sec, nsec int64) {
	sec, nsec = n/1e9, n%1e9
	if nsec < 0 {
		sec--
		nsec += 1e9
	}
	return sec, nsec
}

// Interface guards
var _ Store = (*Redis)(nil)
