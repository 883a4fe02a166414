// Package idemtest checks that an idempotency.Store behaves as the handler
// relies on. Every store runs the same suite, so the memory store and the
// Redis store cannot drift apart.
package idemtest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"maps"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/idempotency"
)

// Lifetimes of the expiry tests. Time is moved by the Factory's advance,
// never waited for.
const (
	ttl         = time.Minute
	inFlightTTL = 30 * time.Second
)

// Factory returns a new, empty store shaped by opts, and advance, which
// moves the store's time forward by d: the clock it was given in opts.Now
// and, for a store whose server expires keys by a clock of its own, the
// expiry of every key it wrote (redistest.Advance).
type Factory func(t *testing.T, opts idempotency.Options) (s idempotency.Store, advance func(d time.Duration))

// Run runs the suite against stores made by open. Run closes every store
// it opens.
func Run(t *testing.T, open Factory) {
	fresh := func(t *testing.T, opts idempotency.Options) (idempotency.Store, func(time.Duration)) {
		t.Helper()
		t.Parallel()
		s, advance := open(t, opts)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s, advance
	}
	timeless := func(test func(*testing.T, idempotency.Store)) func(*testing.T, idempotency.Store, func(time.Duration)) {
		return func(t *testing.T, s idempotency.Store, _ func(time.Duration)) { test(t, s) }
	}
	short := idempotency.Options{TTL: ttl, InFlightTTL: inFlightTTL}
	for _, tc := range []struct {
		name string
		opts idempotency.Options
		test func(*testing.T, idempotency.Store, func(time.Duration))
	}{
		{"Outcomes", idempotency.Options{}, timeless(testOutcomes)},
		{"ReplayIsExact", idempotency.Options{}, timeless(testReplayIsExact)},
		{"ReplayIsACopy", idempotency.Options{}, timeless(testReplayIsACopy)},
		{"WrongToken", idempotency.Options{}, timeless(testWrongToken)},
		{"Settled", idempotency.Options{}, timeless(testSettled)},
		{"AbandonThenBegin", idempotency.Options{}, timeless(testAbandonThenBegin)},
		{"InvalidStatus", idempotency.Options{}, timeless(testInvalidStatus)},
		{"ScopesIsolate", idempotency.Options{}, timeless(testScopesIsolate)},
		{"ResultExpires", short, testResultExpires},
		{"ClaimLapses", short, testClaimLapses},
		{"ConcurrentBegin", idempotency.Options{}, timeless(testConcurrentBegin)},
		{"Len", idempotency.Options{}, timeless(testLen)},
		{"LenAfterExpiry", short, testLenAfterExpiry},
		{"Closed", idempotency.Options{}, timeless(testClosed)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, advance := fresh(t, tc.opts)
			tc.test(t, s, advance)
		})
	}
}

// Key returns a key in the scope digested from scope.
func Key(scope, id string) idempotency.Key {
	return idempotency.Key{Scope: sha256.Sum256([]byte(scope)), ID: id}
}

// Fingerprint returns the fingerprint of a request body.
func Fingerprint(body string) [32]byte { return sha256.Sum256([]byte(body)) }

// Capture is the answer to a Klarna capture: 201, no body, two headers.
func Capture() idempotency.Result {
	return idempotency.Result{
		Status: http.StatusCreated,
		Header: http.Header{
			"Capture-Id": {"4ba29b50-be7b-44f5-a492-113e6a865e22"},
			"Location": {"https://api.playground.klarna.com/ordermanagement/v1/orders/" +
				"f3392f8b-6116-4073-ab96-e330819e2c07/captures/4ba29b50-be7b-44f5-a492-113e6a865e22"},
		},
	}
}

var (
	fpA = Fingerprint(`{"captured_amount":1000}`)
	fpB = Fingerprint(`{"captured_amount":9999}`)
)

// Begin calls s.Begin and fails the test unless the outcome is want.
func Begin(t *testing.T, s idempotency.Store, k idempotency.Key, fp [32]byte, want idempotency.Outcome) idempotency.Claim {
	t.Helper()
	c, err := s.Begin(t.Context(), k, fp)
	if err != nil {
		t.Fatalf("Begin(%q): %v", k.ID, err)
	}
	if c.Outcome != want {
		t.Fatalf("Begin(%q) = %v, want %v", k.ID, c.Outcome, want)
	}
	switch {
	case want == idempotency.Started && len(c.Token) != 32:
		t.Fatalf("Begin(%q) started with token %q, want 32 hex digits", k.ID, c.Token)
	case want != idempotency.Started && c.Token != "":
		t.Fatalf("Begin(%q) = %v with a token", k.ID, c.Outcome)
	case want == idempotency.Replay && c.Result == nil:
		t.Fatalf("Begin(%q) = replay without a result", k.ID)
	case want != idempotency.Replay && c.Result != nil:
		t.Fatalf("Begin(%q) = %v with a result", k.ID, c.Outcome)
	}
	return c
}

// Complete calls s.Complete and fails the test on an error.
func Complete(t *testing.T, s idempotency.Store, k idempotency.Key, token string, res idempotency.Result) {
	t.Helper()
	if err := s.Complete(t.Context(), k, token, res); err != nil {
		t.Fatalf("Complete(%q): %v", k.ID, err)
	}
}

// SameResult fails the test unless got carries exactly want's status,
// headers and body.
func SameResult(t *testing.T, got *idempotency.Result, want idempotency.Result) {
	t.Helper()
	if got == nil {
		t.Fatal("no result")
	}
	if got.Status != want.Status {
		t.Errorf("status = %d, want %d", got.Status, want.Status)
	}
	if len(got.Header) != len(want.Header) || !maps.EqualFunc(got.Header, want.Header, slices.Equal) {
		t.Errorf("header = %q, want %q", got.Header, want.Header)
	}
	if !bytes.Equal(got.Body, want.Body) {
		t.Errorf("body = %q, want %q", got.Body, want.Body)
	}
}

func testOutcomes(t *testing.T, s idempotency.Store) {
	k := Key("merchant", "order-1-capture-1")
	c := Begin(t, s, k, fpA, idempotency.Started)
	Begin(t, s, k, fpA, idempotency.InFlight)
	Begin(t, s, k, fpB, idempotency.Mismatch)
	Complete(t, s, k, c.Token, Capture())
	r := Begin(t, s, k, fpA, idempotency.Replay)
	SameResult(t, r.Result, Capture())
	Begin(t, s, k, fpB, idempotency.Mismatch)
	// A mismatch changes nothing: the original request still replays.
	r = Begin(t, s, k, fpA, idempotency.Replay)
	SameResult(t, r.Result, Capture())
}

func testReplayIsExact(t *testing.T, s idempotency.Store) {
	for _, tc := range []struct {
		name string
		res  idempotency.Result
	}{
		{"capture", Capture()},
		{"refused capture", idempotency.Result{
			Status: http.StatusForbidden,
			Header: http.Header{"Content-Type": {"application/json"}, "Klarna-Correlation-Id": {"6a9b1cb1-1b4c-4c4e-9b1e-0c2d0e5f7a11"}},
			Body:   []byte(`{"error_code":"CAPTURE_NOT_ALLOWED","error_messages":["Capture not allowed"],"correlation_id":"6a9b1cb1-1b4c-4c4e-9b1e-0c2d0e5f7a11"}`),
		}},
		{"no headers, no body", idempotency.Result{Status: http.StatusNoContent}},
		{"repeated header", idempotency.Result{
			Status: http.StatusOK,
			Header: http.Header{"Location": {"/a", "/b"}, "Order-Id": {""}},
			Body:   []byte("{}"),
		}},
		{"binary body", idempotency.Result{
			Status: http.StatusCreated,
			Header: http.Header{"Content-Type": {"application/octet-stream"}},
			Body:   []byte{0, 'F', 0xff, 'R', 0, 0x80, '\n'},
		}},
		{"large body", idempotency.Result{
			Status: http.StatusOK,
			Header: http.Header{"Content-Type": {"application/json"}},
			Body:   bytes.Repeat([]byte(`{"order_lines":[]},`), 4096),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := Key("merchant", tc.name)
			c := Begin(t, s, k, fpA, idempotency.Started)
			Complete(t, s, k, c.Token, tc.res)
			for range 2 {
				r := Begin(t, s, k, fpA, idempotency.Replay)
				SameResult(t, r.Result, tc.res)
			}
		})
	}
}

// testReplayIsACopy checks that neither the caller's buffers after Complete
// nor a replayed result can change what later replays answer.
func testReplayIsACopy(t *testing.T, s idempotency.Store) {
	k := Key("merchant", "copy")
	res := idempotency.Result{
		Status: http.StatusCreated,
		Header: http.Header{"Capture-Id": {"c-1"}},
		Body:   []byte("body"),
	}
	want := idempotency.Result{Status: res.Status, Header: res.Header.Clone(), Body: bytes.Clone(res.Body)}
	c := Begin(t, s, k, fpA, idempotency.Started)
	Complete(t, s, k, c.Token, res)
	res.Body[0] = 'X'
	res.Header["Capture-Id"][0] = "c-2"

	r := Begin(t, s, k, fpA, idempotency.Replay)
	SameResult(t, r.Result, want)
	r.Result.Status = 500
	r.Result.Body[0] = 'Y'
	r.Result.Header.Set("Capture-Id", "c-3")
	r.Result.Header.Set("Set-Cookie", "x")

	r = Begin(t, s, k, fpA, idempotency.Replay)
	SameResult(t, r.Result, want)
}

func testWrongToken(t *testing.T, s idempotency.Store) {
	ctx := t.Context()
	k := Key("merchant", "wrong-token")
	c := Begin(t, s, k, fpA, idempotency.Started)
	if err := s.Complete(ctx, k, "00000000000000000000000000000000", Capture()); !errors.Is(err, idempotency.ErrNotHeld) {
		t.Fatalf("Complete with a wrong token = %v, want ErrNotHeld", err)
	}
	if err := s.Abandon(ctx, k, c.Token+"0"); !errors.Is(err, idempotency.ErrNotHeld) {
		t.Fatalf("Abandon with a wrong token = %v, want ErrNotHeld", err)
	}
	// Neither touched the claim: it is still in flight and its owner can
	// complete it.
	Begin(t, s, k, fpA, idempotency.InFlight)
	Complete(t, s, k, c.Token, Capture())
	Begin(t, s, k, fpA, idempotency.Replay)

	unknown := Key("merchant", "never-begun")
	if err := s.Complete(ctx, unknown, c.Token, Capture()); !errors.Is(err, idempotency.ErrNotHeld) {
		t.Errorf("Complete of an unknown key = %v, want ErrNotHeld", err)
	}
	if err := s.Abandon(ctx, unknown, c.Token); !errors.Is(err, idempotency.ErrNotHeld) {
		t.Errorf("Abandon of an unknown key = %v, want ErrNotHeld", err)
	}
	// The token of one key holds no other key.
	other := Key("merchant", "other")
	Begin(t, s, other, fpA, idempotency.Started)
	if err := s.Complete(ctx, other, c.Token, Capture()); !errors.Is(err, idempotency.ErrNotHeld) {
		t.Errorf("Complete with another key's token = %v, want ErrNotHeld", err)
	}
}

// testSettled checks that a completed claim is settled for good: neither a
// second Complete nor an Abandon by its old owner changes the replay.
func testSettled(t *testing.T, s idempotency.Store) {
	ctx := t.Context()
	k := Key("merchant", "settled")
	c := Begin(t, s, k, fpA, idempotency.Started)
	Complete(t, s, k, c.Token, Capture())
	if err := s.Complete(ctx, k, c.Token, idempotency.Result{Status: http.StatusForbidden}); !errors.Is(err, idempotency.ErrNotHeld) {
		t.Errorf("second Complete = %v, want ErrNotHeld", err)
	}
	if err := s.Abandon(ctx, k, c.Token); !errors.Is(err, idempotency.ErrNotHeld) {
		t.Errorf("Abandon after Complete = %v, want ErrNotHeld", err)
	}
	r := Begin(t, s, k, fpA, idempotency.Replay)
	SameResult(t, r.Result, Capture())
}

func testAbandonThenBegin(t *testing.T, s idempotency.Store) {
	ctx := t.Context()
	k := Key("merchant", "abandoned")
	c := Begin(t, s, k, fpA, idempotency.Started)
	if err := s.Abandon(ctx, k, c.Token); err != nil {
		t.Fatalf("Abandon: %v", err)
	}
	if err := s.Abandon(ctx, k, c.Token); !errors.Is(err, idempotency.ErrNotHeld) {
		t.Errorf("second Abandon = %v, want ErrNotHeld", err)
	}
	// The key is free: even another request may claim it now.
	c2 := Begin(t, s, k, fpB, idempotency.Started)
	if c2.Token == c.Token {
		t.Fatalf("a new claim reused token %q", c.Token)
	}
	if err := s.Complete(ctx, k, c.Token, Capture()); !errors.Is(err, idempotency.ErrNotHeld) {
		t.Errorf("Complete with the abandoned token = %v, want ErrNotHeld", err)
	}
	Complete(t, s, k, c2.Token, Capture())
	Begin(t, s, k, fpB, idempotency.Replay)
	Begin(t, s, k, fpA, idempotency.Mismatch)
}

// testInvalidStatus checks that a result the handler could not replay is
// refused, and that the claim stays with its owner to abandon.
func testInvalidStatus(t *testing.T, s idempotency.Store) {
	ctx := t.Context()
	k := Key("merchant", "invalid-status")
	c := Begin(t, s, k, fpA, idempotency.Started)
	for _, status := range []int{0, 99, 1000} {
		err := s.Complete(ctx, k, c.Token, idempotency.Result{Status: status})
		if err == nil || errors.Is(err, idempotency.ErrNotHeld) || errors.Is(err, idempotency.ErrUnavailable) {
			t.Errorf("Complete with status %d = %v, want a refusal", status, err)
		}
	}
	Begin(t, s, k, fpA, idempotency.InFlight)
	if err := s.Abandon(ctx, k, c.Token); err != nil {
		t.Errorf("Abandon: %v", err)
	}
}

func testScopesIsolate(t *testing.T, s idempotency.Store) {
	a, b := Key("merchant-a", "same-id"), Key("merchant-b", "same-id")
	ca := Begin(t, s, a, fpA, idempotency.Started)
	cb := Begin(t, s, b, fpB, idempotency.Started)
	Complete(t, s, a, ca.Token, Capture())
	Begin(t, s, b, fpB, idempotency.InFlight)
	Begin(t, s, b, fpA, idempotency.Mismatch)
	refused := idempotency.Result{Status: http.StatusForbidden, Body: []byte(`{"error_code":"CAPTURE_NOT_ALLOWED"}`)}
	Complete(t, s, b, cb.Token, refused)
	SameResult(t, Begin(t, s, a, fpA, idempotency.Replay).Result, Capture())
	SameResult(t, Begin(t, s, b, fpB, idempotency.Replay).Result, refused)

	// Within a scope, each ID is its own key.
	c := Begin(t, s, Key("merchant-a", "other-id"), fpA, idempotency.Started)
	Complete(t, s, Key("merchant-a", "other-id"), c.Token, refused)
	SameResult(t, Begin(t, s, a, fpA, idempotency.Replay).Result, Capture())
}

func testResultExpires(t *testing.T, s idempotency.Store, advance func(time.Duration)) {
	k := Key("merchant", "expires")
	c := Begin(t, s, k, fpA, idempotency.Started)
	Complete(t, s, k, c.Token, Capture())
	Begin(t, s, k, fpA, idempotency.Replay)
	advance(ttl - time.Second)
	Begin(t, s, k, fpA, idempotency.Replay)
	advance(2 * time.Second)
	// Forgotten: the key is free, for any request.
	Begin(t, s, k, fpB, idempotency.Started)
}

func testClaimLapses(t *testing.T, s idempotency.Store, advance func(time.Duration)) {
	ctx := t.Context()
	k := Key("merchant", "crashed-owner")
	old := Begin(t, s, k, fpA, idempotency.Started)
	Begin(t, s, k, fpA, idempotency.InFlight)
	idle := Key("merchant", "slow-owner")
	slow := Begin(t, s, idle, fpA, idempotency.Started)
	advance(inFlightTTL - time.Second)
	Begin(t, s, k, fpA, idempotency.InFlight)
	advance(2 * time.Second)

	// The claim lapsed: a retry runs again, and the old owner can no longer
	// settle the key, even when nobody claimed it since.
	c := Begin(t, s, k, fpA, idempotency.Started)
	if c.Token == old.Token {
		t.Fatalf("the new claim reused token %q", old.Token)
	}
	if err := s.Complete(ctx, k, old.Token, Capture()); !errors.Is(err, idempotency.ErrNotHeld) {
		t.Errorf("Complete by the lapsed owner = %v, want ErrNotHeld", err)
	}
	if err := s.Abandon(ctx, k, old.Token); !errors.Is(err, idempotency.ErrNotHeld) {
		t.Errorf("Abandon by the lapsed owner = %v, want ErrNotHeld", err)
	}
	if err := s.Complete(ctx, idle, slow.Token, Capture()); !errors.Is(err, idempotency.ErrNotHeld) {
		t.Errorf("Complete after the claim lapsed = %v, want ErrNotHeld", err)
	}
	Begin(t, s, idle, fpA, idempotency.Started)
	Complete(t, s, k, c.Token, Capture())
	Begin(t, s, k, fpA, idempotency.Replay)
}

// testConcurrentBegin checks that of many simultaneous retries exactly one
// reaches the PSP, and that once it completed they all replay.
func testConcurrentBegin(t *testing.T, s idempotency.Store) {
	const n = 50
	k := Key("merchant", "concurrent")
	claims := concurrently(t, n, func() (idempotency.Claim, error) { return s.Begin(t.Context(), k, fpA) })
	counts := map[idempotency.Outcome]int{}
	var token string
	for _, c := range claims {
		counts[c.Outcome]++
		if c.Outcome == idempotency.Started {
			token = c.Token
		}
	}
	if counts[idempotency.Started] != 1 || counts[idempotency.InFlight] != n-1 {
		t.Fatalf("%d concurrent Begins: %v, want 1 started and %d in flight", n, counts, n-1)
	}
	Complete(t, s, k, token, Capture())
	for _, c := range concurrently(t, n, func() (idempotency.Claim, error) { return s.Begin(t.Context(), k, fpA) }) {
		if c.Outcome != idempotency.Replay {
			t.Fatalf("Begin after Complete = %v, want replay", c.Outcome)
		}
		SameResult(t, c.Result, Capture())
	}
}

// concurrently calls f from n goroutines released at once.
func concurrently(t *testing.T, n int, f func() (idempotency.Claim, error)) []idempotency.Claim {
	t.Helper()
	var (
		wg     sync.WaitGroup
		start  = make(chan struct{})
		claims = make([]idempotency.Claim, n)
		errs   = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			claims[i], errs[i] = f()
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return claims
}

func testLen(t *testing.T, s idempotency.Store) {
	ctx := t.Context()
	wantLen(t, s, 0)
	var claims [4]idempotency.Claim
	for i := range claims {
		claims[i] = Begin(t, s, Key("merchant", string(rune('a'+i))), fpA, idempotency.Started)
	}
	wantLen(t, s, 0) // claims in flight are not results
	Complete(t, s, Key("merchant", "a"), claims[0].Token, Capture())
	Complete(t, s, Key("merchant", "b"), claims[1].Token, idempotency.Result{Status: http.StatusForbidden})
	if err := s.Abandon(ctx, Key("merchant", "c"), claims[2].Token); err != nil {
		t.Fatal(err)
	}
	wantLen(t, s, 2)
	// Replays, conflicts and misuse add nothing.
	Begin(t, s, Key("merchant", "a"), fpA, idempotency.Replay)
	Begin(t, s, Key("merchant", "a"), fpB, idempotency.Mismatch)
	Begin(t, s, Key("merchant", "d"), fpA, idempotency.InFlight)
	wantLen(t, s, 2)
	Complete(t, s, Key("merchant", "d"), claims[3].Token, Capture())
	wantLen(t, s, 3)
}

func testLenAfterExpiry(t *testing.T, s idempotency.Store, advance func(time.Duration)) {
	for _, id := range []string{"a", "b"} {
		k := Key("merchant", id)
		Complete(t, s, k, Begin(t, s, k, fpA, idempotency.Started).Token, Capture())
	}
	wantLen(t, s, 2)
	advance(ttl + time.Second)
	wantLen(t, s, 0)
}

func wantLen(t *testing.T, s idempotency.Store, want int64) {
	t.Helper()
	n, err := s.Len(t.Context())
	if err != nil {
		t.Fatalf("Len: %v", err)
	}
	// A store may not count its results (-1).
	if n != want && n != -1 {
		t.Fatalf("Len = %d, want %d", n, want)
	}
}

func testClosed(t *testing.T, s idempotency.Store) {
	ctx := t.Context()
	k := Key("merchant", "closed")
	c := Begin(t, s, k, fpA, idempotency.Started)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Begin(ctx, k, fpA); !errors.Is(err, idempotency.ErrUnavailable) {
		t.Errorf("Begin after Close = %v, want ErrUnavailable", err)
	}
	if err := s.Complete(ctx, k, c.Token, Capture()); !errors.Is(err, idempotency.ErrUnavailable) {
		t.Errorf("Complete after Close = %v, want ErrUnavailable", err)
	}
	if err := s.Abandon(ctx, k, c.Token); !errors.Is(err, idempotency.ErrUnavailable) {
		t.Errorf("Abandon after Close = %v, want ErrUnavailable", err)
	}
	if _, err := s.Len(ctx); !errors.Is(err, idempotency.ErrUnavailable) {
		t.Errorf("Len after Close = %v, want ErrUnavailable", err)
	}
	// Close is idempotent: the suite closes the store again when done.
}
