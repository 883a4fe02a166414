package guard

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/pspguard/pspguard/internal/credentials"
	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/psp"
)

// Credentials are trusted with refusals for a while after the PSP accepted
// them, and then verified again.
func TestKnownCredentials(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	g := &Guard{now: clock, logger: zap.NewNop(), creds: credentials.NewMemory(credentials.Options{Now: clock})}
	r := httptest.NewRequest("POST", "/ordermanagement/v1/orders/x/captures", nil)
	user := &exchange{r: r, id: psp.Identity{Merchant: "shoeshop", CredentialDigest: [32]byte{1}}, req: &psp.Request{}}
	key := &exchange{r: r, id: psp.Identity{Merchant: "key:0123456789abcdef", CredentialDigest: [32]byte{2}}, req: &psp.Request{}}
	refused := ledger.Decision{Outcome: ledger.Exceeds}
	reserved := ledger.Decision{Outcome: ledger.Reserved, Entry: ledger.Entry{Order: psp.Order{Currency: "SEK"}}}

	if !g.mustVerify(ctx, user, refused) {
		t.Fatal("unknown credentials: a refusal is told without verifying them")
	}
	if g.mustVerify(ctx, user, reserved) || g.mustVerify(ctx, key, refused) {
		t.Fatal("verifying without a refusal, or for a merchant named by its key")
	}
	mismatch := &exchange{r: r, id: user.id, req: &psp.Request{Currency: "EUR"}}
	if !g.mustVerify(ctx, mismatch, reserved) {
		t.Fatal("a currency mismatch states the order's currency without verifying")
	}
	g.vouch(user)
	if g.mustVerify(ctx, user, refused) {
		t.Fatal("vouched credentials verified again")
	}
	now = now.Add(credentials.DefaultTTL - time.Second)
	if g.mustVerify(ctx, user, refused) {
		t.Fatal("verified again before the time is up")
	}
	now = now.Add(time.Second)
	if !g.mustVerify(ctx, user, refused) {
		t.Fatal("trusted past the time")
	}
}
