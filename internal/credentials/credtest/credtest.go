// Package credtest is the test suite every credentials.Store passes.
package credtest

import (
	"context"
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/credentials"
)

// Factory makes a fresh, empty store with the given options. expire makes
// every acceptance older than the TTL: it advances opts.Now, and for a
// store whose server expires keys by a clock of its own, the expiry of
// every key the store wrote (redistest.Advance).
type Factory func(t *testing.T, opts credentials.Options) (s credentials.Store, expire func())

// Run runs the suite.
func Run(t *testing.T, newStore Factory) {
	ctx := context.Background()
	a, b := credentials.Digest{1}, credentials.Digest{2}

	t.Run("accepted only when accepted", func(t *testing.T) {
		s, _ := newStore(t, options())
		if ok, err := s.Accepted(ctx, a); err != nil || ok {
			t.Fatalf("Accepted before Accept = %v, %v", ok, err)
		}
		if err := s.Accept(ctx, a); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Accepted(ctx, a); err != nil || !ok {
			t.Fatalf("Accepted after Accept = %v, %v", ok, err)
		}
		if ok, err := s.Accepted(ctx, b); err != nil || ok {
			t.Fatalf("another digest: Accepted = %v, %v", ok, err)
		}
	})

	t.Run("an acceptance expires", func(t *testing.T) {
		s, expire := newStore(t, options())
		if err := s.Accept(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := s.Accept(ctx, a); err != nil { // again: changes nothing
			t.Fatal(err)
		}
		expire()
		if ok, err := s.Accepted(ctx, a); err != nil || ok {
			t.Fatalf("after the TTL: Accepted = %v, %v", ok, err)
		}
		if err := s.Accept(ctx, a); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Accepted(ctx, a); err != nil || !ok {
			t.Fatalf("accepted again after the TTL: Accepted = %v, %v", ok, err)
		}
	})
}

// options has a TTL short enough for a store that keeps real time.
func options() credentials.Options {
	return credentials.Options{TTL: time.Minute, Capacity: 16}
}
