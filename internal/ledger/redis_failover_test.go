package ledger_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/psp"
	"github.com/pspguard/pspguard/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// A replica promoted after its primary died lacks the primary's last
// writes: here the reservation of a capture already on its way to the
// PSP. The promoted server has a new replication ID; the store must not
// decide on the order before a read of the PSP begun after the fence,
// by when that capture has landed and shows.
//
// A replication ID is 40 random hex digits, and one in sixteen begins with
// a zero; the test runs with the lost primary's ID beginning with a zero
// and with one that does not.
func TestRedisFailoverFence(t *testing.T) {
	for _, cluster := range []bool{false, true} {
		for _, zero := range []bool{false, true} {
			name := "cluster=" + strconv.FormatBool(cluster) + "/id_begins_with_0=" + strconv.FormatBool(zero)
			t.Run(name, func(t *testing.T) { testFailoverFence(t, cluster, zero) })
		}
	}
}

func testFailoverFence(t *testing.T, cluster, zero bool) {
	ctx := context.Background()
	primary := redistest.Server(t, "--repl-diskless-sync-delay", "0")
	replica := redistest.Server(t, "--replicaof", "127.0.0.1", strconv.Itoa(primary.Port), "--enable-debug-command", "yes")
	pc, rc := primary.Client(), replica.Client()
	// The fence cannot lapse while the test runs, however slow the
	// machine: its end is brought forward with PassFence, never waited for.
	const fence = time.Hour
	opts := ledger.Options{Prefix: "failover", Fence: fence, Cluster: cluster}
	before := ledger.NewRedis(pc, opts)

	k := ledger.Key{PSP: "klarna", Merchant: "M1", OrderID: "o-1"}
	order := psp.Order{Amount: 1000, Currency: "SEK", State: psp.StateAuthorized}
	if err := before.Learn(ctx, k, order, true); err != nil {
		t.Fatal(err)
	}
	d, err := before.Reserve(ctx, k, ledger.ReserveRequest{Amount: 300})
	if err != nil || d.Outcome != ledger.Reserved {
		t.Fatalf("Reserve(300) = %v, %v", d.Outcome, err)
	}
	if err := before.Commit(ctx, d.Reservation); err != nil {
		t.Fatal(err)
	}
	waitReplicated(t, pc, rc)

	// The replica falls behind; the primary takes a reservation of 500 for
	// a capture it forwards, then dies.
	replica.Stop()
	if n, err := pc.ClientKillByFilter(ctx, "TYPE", "replica").Result(); err != nil || n != 1 {
		t.Fatalf("closing the replication link: %d, %v", n, err)
	}
	if d, err := before.Reserve(ctx, k, ledger.ReserveRequest{Amount: 500}); err != nil || d.Outcome != ledger.Reserved {
		t.Fatalf("Reserve(500) = %v, %v", d.Outcome, err)
	}
	primary.Kill()
	replica.Continue()
	// The replica's ID, that of the primary it followed, becomes its
	// second ID when it is promoted.
	setReplID(t, rc, zero)
	if err := rc.ReplicaOf(ctx, "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}

	after := ledger.NewRedis(rc, opts)
	if d, err := after.Reserve(ctx, k, ledger.ReserveRequest{Amount: 700}); err != nil || d.Outcome != ledger.NeedsReconcile {
		t.Fatalf("Reserve(700) on the promoted replica = %v, %v; want needs_reconcile (it lacks the 500)", d.Outcome, err)
	}
	if d, err := after.Hold(ctx, k, ledger.Change{Kind: ledger.ChangeRelease}); err != nil || d.Outcome != ledger.NeedsReconcile {
		t.Fatalf("Hold(release) in the fence = %v, %v; want needs_reconcile", d.Outcome, err)
	}
	// A read in the fence may miss the capture on its way: it verifies
	// nothing, whatever it says.
	tok, err := after.BeginRead(ctx, k)
	if err != nil || tok.Fence() <= 0 || tok.Fence() > fence {
		t.Fatalf("BeginRead in the fence: fence %v, %v; want (0, %v]", tok.Fence(), err, fence)
	}
	early := order
	early.Captured = 300
	if fresh, err := after.Reconcile(ctx, k, early, tok); err != nil || fresh {
		t.Fatalf("Reconcile of a read begun in the fence = %v, %v; want stale", fresh, err)
	}
	if d, err := after.Reserve(ctx, k, ledger.ReserveRequest{Amount: 700}); err != nil || d.Outcome != ledger.NeedsReconcile {
		t.Fatalf("Reserve(700) after a read in the fence = %v, %v; want needs_reconcile", d.Outcome, err)
	}
	// An order never written (on a Cluster, in a slot never written) is
	// learned no earlier either.
	k2 := ledger.Key{PSP: "klarna", Merchant: "M1", OrderID: "o-2"}
	if tok, err := after.BeginRead(ctx, k2); err != nil || tok.Fence() <= 0 {
		t.Fatalf("BeginRead of a new order in the fence: fence %v, %v; want > 0", tok.Fence(), err)
	}

	// After the fence, the capture has landed and the read shows it.
	if err := ledger.PassFence(ctx, rc, after, k); err != nil {
		t.Fatal(err)
	}
	if tok, err = after.BeginRead(ctx, k); err != nil || tok.Fence() != 0 {
		t.Fatalf("BeginRead after the fence: fence %v, %v; want none", tok.Fence(), err)
	}
	landed := order
	landed.Captured = 800
	if fresh, err := after.Reconcile(ctx, k, landed, tok); err != nil || !fresh {
		t.Fatalf("Reconcile after the fence = %v, %v; want fresh", fresh, err)
	}
	if d, err := after.Reserve(ctx, k, ledger.ReserveRequest{Amount: 201}); err != nil || d.Outcome != ledger.Exceeds {
		t.Fatalf("Reserve(201) of the 200 left = %v, %v; want exceeds", d.Outcome, err)
	}
	if d, err := after.Reserve(ctx, k, ledger.ReserveRequest{Amount: 200}); err != nil || d.Outcome != ledger.Reserved {
		t.Fatalf("Reserve(200) of the 200 left = %v, %v; want reserved", d.Outcome, err)
	}
}

// A store that has never been written to has no primary to have lost:
// no fence.
func TestRedisNoFenceOnAFreshStore(t *testing.T) {
	s := ledger.NewRedis(redistest.Server(t).Client(), ledger.Options{Prefix: "fresh", Fence: time.Hour})
	tok, err := s.BeginRead(context.Background(), ledger.Key{PSP: "klarna", Merchant: "M1", OrderID: "o-1"})
	if err != nil || tok.Fence() != 0 {
		t.Fatalf("BeginRead on a fresh store: fence %v, %v; want none", tok.Fence(), err)
	}
}

// setReplID gives the server c a new replication ID until its first digit
// is a zero, or is not, as zero says.
func setReplID(t *testing.T, c *redis.Client, zero bool) {
	t.Helper()
	ctx := context.Background()
	for range 1000 {
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		if (strings.Contains(info, "\r\nmaster_replid:0")) == zero {
			return
		}
		if err := c.Do(ctx, "DEBUG", "CHANGE-REPL-ID").Err(); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("no replication ID with the first digit wanted in 1000 tries")
}

// waitReplicated waits until the replica has every write of the primary.
func waitReplicated(t *testing.T, primary, replica *redis.Client) {
	t.Helper()
	ctx := context.Background()
	offset := func(c *redis.Client, field string) string {
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			return ""
		}
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, field+":"); ok {
				return v
			}
		}
		return ""
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, r := offset(primary, "master_repl_offset"), offset(replica, "slave_repl_offset")
		if p != "" && p == r && offset(replica, "master_link_status") == "up" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica did not catch up: primary at %q, replica at %q", p, r)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
