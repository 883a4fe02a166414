package ledgertest

import (
	"math"
	"regexp"
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/psp"
)

var tokenPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// uncertain leaves a reservation of amount with tag whose outcome is unknown.
func uncertain(t *testing.T, s ledger.Store, k ledger.Key, amount int64, tag string) ledger.Reservation {
	t.Helper()
	res := mustReserve(t, s, k, amount, tag)
	settle(t, "MarkUncertain", s.MarkUncertain, res, nil)
	return res
}

func inState(o psp.Order, st psp.OrderState) psp.Order {
	o.State = st
	return o
}

func testReserveOutcomes(t *testing.T, open opener) {
	type setup func(t *testing.T, s ledger.Store, k ledger.Key)
	order := func(o psp.Order) setup {
		return func(t *testing.T, s ledger.Store, k ledger.Key) { learn(t, s, k, o) }
	}
	expiring := func(at time.Time) setup {
		o := authorized(1000)
		o.ExpiresAt = at
		return order(o)
	}
	withReservation := func(o psp.Order, amount int64) setup {
		return func(t *testing.T, s ledger.Store, k ledger.Key) {
			learn(t, s, k, o)
			mustReserve(t, s, k, amount, "")
		}
	}
	// withUncertain leaves a pending and an uncertain reservation on an
	// authorized order, then learns o (which keeps them).
	withUncertain := func(o psp.Order, amount int64, tag string) setup {
		return func(t *testing.T, s ledger.Store, k ledger.Key) {
			learn(t, s, k, inState(o, psp.StateAuthorized))
			mustReserve(t, s, k, 50, "other")
			uncertain(t, s, k, amount, tag)
			learn(t, s, k, o)
		}
	}
	partly := func(o psp.Order, captured, released int64) psp.Order {
		o.Captured, o.Released = captured, released
		return o
	}

	tests := []struct {
		name   string
		setup  setup
		amount int64
		tag    string
		want   ledger.Outcome
	}{
		{"unknown order", nil, 100, "", ledger.NotFound},
		{"part of the amount", order(authorized(1000)), 400, "", ledger.Reserved},
		{"the whole amount", order(authorized(1000)), 1000, "t", ledger.Reserved},
		{"one more than the amount", order(authorized(1000)), 1001, "", ledger.Exceeds},
		{"zero", order(authorized(1000)), 0, "", ledger.Exceeds},
		{"negative", order(authorized(1000)), -1, "", ledger.Exceeds},
		{"more than any order", order(authorized(1000)), math.MaxInt64, "", ledger.Exceeds},
		{"what captures and releases left", order(partly(authorized(1000), 300, 200)), 500, "", ledger.Reserved},
		{"beyond what captures and releases left", order(partly(authorized(1000), 300, 200)), 501, "", ledger.Exceeds},
		{"captured and released beyond the amount", order(partly(authorized(1000), 900, 900)), 1, "", ledger.Exceeds},
		{"what reservations in flight left", withReservation(authorized(1000), 600), 400, "", ledger.Reserved},
		{"beyond what reservations in flight left", withReservation(authorized(1000), 600), 401, "", ledger.Exceeds},

		{"retry of an uncertain capture", withUncertain(authorized(1000), 100, "a"), 100, "a", ledger.Adopted},
		{"another request while uncertain", withUncertain(authorized(1000), 100, "a"), 100, "b", ledger.NeedsReconcile},
		{"untagged request while uncertain", withUncertain(authorized(1000), 100, "a"), 100, "", ledger.NeedsReconcile},
		{"same tag, other amount", withUncertain(authorized(1000), 100, "a"), 99, "a", ledger.NeedsReconcile},
		{"untagged uncertain capture is never adopted", withUncertain(authorized(1000), 100, ""), 100, "", ledger.NeedsReconcile},
		{"retry adopts before the state is checked", withUncertain(inState(authorized(1000), psp.StateCancelled), 100, "a"), 100, "a", ledger.Adopted},
		{"uncertain blocks before the state is checked", withUncertain(inState(authorized(1000), psp.StateCancelled), 100, "a"), 100, "b", ledger.NeedsReconcile},

		{"captured", order(inState(authorized(1000), psp.StateCaptured)), 100, "", ledger.NotCapturable},
		{"cancelled", order(inState(authorized(1000), psp.StateCancelled)), 100, "", ledger.NotCapturable},
		{"expired state", order(inState(authorized(1000), psp.StateExpired)), 100, "", ledger.NotCapturable},
		{"closed", order(inState(authorized(1000), psp.StateClosed)), 100, "", ledger.NotCapturable},
		{"pending", order(inState(authorized(1000), psp.StatePending)), 100, "", ledger.NotCapturable},
		{"cancelled, whatever the amount", order(inState(authorized(1000), psp.StateCancelled)), 5000, "", ledger.NotCapturable},

		{"capture window closes at ExpiresAt", expiring(t0), 100, "", ledger.NotCapturable},
		{"capture window closed", expiring(t0.Add(-time.Hour)), 100, "", ledger.NotCapturable},
		{"last nanosecond of the capture window", expiring(t0.Add(time.Nanosecond)), 100, "", ledger.Reserved},
		{"unknown capture window", expiring(time.Time{}), 100, "", ledger.Reserved},

		{"single capture", order(hellgate(1000)), 1000, "", ledger.Reserved},
		{"single capture, partial", order(hellgate(1000)), 600, "", ledger.Reserved},
		{"single capture beyond the amount", order(hellgate(1000)), 1001, "", ledger.Exceeds},
		{"single capture, captured", order(inState(hellgate(1000), psp.StateCaptured)), 100, "", ledger.AlreadyCaptured},
		{"single capture, cancelled", order(inState(hellgate(1000), psp.StateCancelled)), 100, "", ledger.NotCapturable},
		{"single capture with a captured amount", order(partly(hellgate(1000), 100, 0)), 100, "", ledger.AlreadyCaptured},
		{"single capture with a capture in flight", withReservation(hellgate(1000), 100), 100, "", ledger.AlreadyCaptured},
		{"single capture in flight, beyond the amount", withReservation(hellgate(1000), 100), 5000, "", ledger.AlreadyCaptured},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := start(t, open)
			k := key("order-1")
			if tt.setup != nil {
				tt.setup(t, s, k)
			}
			before, held, err := s.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			before = utc(before)

			d := reserve(t, s, k, tt.amount, tt.tag)
			if d.Outcome != tt.want {
				t.Fatalf("Reserve(%d, %q) = %v; want %v", tt.amount, tt.tag, d.Outcome, tt.want)
			}
			if d.Entry != before {
				t.Errorf("Decision.Entry = %+v; want the entry before deciding %+v", d.Entry, before)
			}

			want := before
			switch tt.want {
			case ledger.Reserved, ledger.Adopted:
				r := d.Reservation
				if r.Key != k || r.Amount != tt.amount || !tokenPattern.MatchString(r.Token) {
					t.Errorf("Reservation = %+v; want key %v, amount %d and a 128-bit hex token", r, k, tt.amount)
				}
				want.Pending++
				if tt.want == ledger.Reserved {
					want.Reserved += tt.amount
				} else {
					want.Uncertain--
				}
			default:
				if d.Reservation != (ledger.Reservation{}) {
					t.Errorf("Reservation = %+v; want none", d.Reservation)
				}
			}
			if !held {
				absent(t, s, k)
				return
			}
			wantEntry(t, get(t, s, k), want)
		})
	}
}

func testExpiryFollowsTheClock(t *testing.T, open opener) {
	s, c := start(t, open)
	k := key("order-1")
	o := authorized(1000)
	// Within the lease, so that the reservations below stay pending.
	o.ExpiresAt = t0.Add(Lease / 2)
	learn(t, s, k, o)

	res := mustReserve(t, s, k, 100, "")
	c.Set(o.ExpiresAt.Add(-time.Nanosecond))
	mustReserve(t, s, k, 100, "")
	c.Set(o.ExpiresAt)
	wantOutcome(t, s, k, 100, "", ledger.NotCapturable)

	// A capture decided inside the window still settles after it.
	settle(t, "Commit", s.Commit, res, nil)
	if e := get(t, s, k); e.Captured != 100 {
		t.Fatalf("Captured = %d after committing 100", e.Captured)
	}
}

// testSingleCapture follows a Hellgate payment: one capture, partial or not.
func testSingleCapture(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := ledger.Key{PSP: "hellgate", Merchant: "m-1", OrderID: "pay_1"}
	o := hellgate(1000)
	learn(t, s, k, o)

	first := mustReserve(t, s, k, 600, "k1")
	wantOutcome(t, s, k, 100, "k2", ledger.AlreadyCaptured)
	settle(t, "Release", s.Release, first, nil)

	// Refused by the PSP: the payment can still be captured once.
	second := mustReserve(t, s, k, 600, "k3")
	settle(t, "Commit", s.Commit, second, nil)
	want := o
	want.Captured = 600
	want.State = psp.StateCaptured
	wantEntry(t, get(t, s, k), entry(want, 0, 0, 0, 1))
	wantOutcome(t, s, k, 400, "k4", ledger.AlreadyCaptured)

	// The PSP may report the payment as still authorized and uncaptured
	// while its capture is processed: the gateway's own capture counts.
	reconcile(t, s, k, o)
	wantOutcome(t, s, k, 400, "k4", ledger.AlreadyCaptured)
}
