package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/pspguard/pspguard/internal/pspsim"
)

// A create-order retried with its key after the gateway lost its state (a
// restart of a gateway on the memory store; data loss in Redis) reaches
// the PSP, which answers with the first answer, order id and all. The order
// was captured in full meanwhile: the ledger must not learn it afresh as an
// order with nothing captured.
func TestCreateOrderReplayedAfterLostState(t *testing.T) {
	for _, store := range []string{"memory", "redis"} {
		t.Run(store, func(t *testing.T) {
			c := newSoundCluster(t, store, 1)
			g := c.gw[0]
			create := func() answer {
				return do(t, "POST", g.base+"/payments/v1/authorizations/tok-replayed/order", historyMerchant, "create-once",
					orderBody(10000, false))
			}
			first := create()
			var created struct {
				OrderID string `json:"order_id"`
			}
			if first.status != http.StatusOK || json.Unmarshal(first.body, &created) != nil {
				t.Fatalf("create-order: %d %s", first.status, first.body)
			}
			captureOf := func(amount int64) answer {
				return do(t, "POST", g.base+"/ordermanagement/v1/orders/"+created.OrderID+"/captures", historyMerchant, "",
					fmt.Sprintf(`{"captured_amount":%d}`, amount))
			}
			if a := captureOf(10000); a.status != http.StatusCreated {
				t.Fatalf("capturing the whole order: %d %s", a.status, a.body)
			}

			c.loseState(store)
			again := create()
			if again.status != http.StatusOK || string(again.body) != string(first.body) {
				t.Fatalf("create-order retried with its key: %d %s, want the PSP's first answer %s", again.status, again.body, first.body)
			}
			if a := captureOf(10000); a.status == http.StatusCreated {
				t.Errorf("capture of the whole order again: %d %s, want a refusal", a.status, a.body)
			}
			var books pspsim.Books
			resp, err := client.Get(c.sim + "/_sim/books")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if err := json.NewDecoder(resp.Body).Decode(&books); err != nil {
				t.Fatal(err)
			}
			if o := books.Orders[created.OrderID]; o.CapturedAmount != 10000 || len(books.Violations) != 0 {
				t.Errorf("the PSP captured %d of 10000 (violations %+v)", o.CapturedAmount, books.Violations)
			}
		})
	}
}
