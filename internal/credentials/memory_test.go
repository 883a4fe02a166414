package credentials_test

import (
	"context"
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/credentials"
	"github.com/pspguard/pspguard/internal/credentials/credtest"
	"github.com/pspguard/pspguard/internal/testclock"
)

func newClock() *testclock.Clock {
	return testclock.New(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
}

func TestMemory(t *testing.T) {
	credtest.Run(t, func(t *testing.T, opts credentials.Options) (credentials.Store, func()) {
		c := newClock()
		opts.Now = c.Now
		return credentials.NewMemory(opts), func() { c.Add(opts.TTL) }
	})
}

// Credentials in steady use stay accepted: an acceptance is written again
// once half the TTL has passed.
func TestMemoryRefresh(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := credentials.NewMemory(credentials.Options{TTL: time.Minute, Now: c.Now})
	d := credentials.Digest{7}
	_ = s.Accept(ctx, d)
	c.Add(20 * time.Second)
	_ = s.Accept(ctx, d) // within half the TTL: not written
	c.Add(40 * time.Second)
	if ok, _ := s.Accepted(ctx, d); ok {
		t.Fatal("an acceptance counted past its TTL")
	}
	_ = s.Accept(ctx, d)
	c.Add(40 * time.Second)
	_ = s.Accept(ctx, d) // past half the TTL: written again
	c.Add(40 * time.Second)
	if ok, _ := s.Accepted(ctx, d); !ok {
		t.Fatal("credentials in steady use expired")
	}
}

// The store is bounded: the least recently used digest goes first.
func TestMemoryCapacity(t *testing.T) {
	ctx := context.Background()
	s := credentials.NewMemory(credentials.Options{Capacity: 2})
	a, b, c := credentials.Digest{1}, credentials.Digest{2}, credentials.Digest{3}
	_ = s.Accept(ctx, a)
	_ = s.Accept(ctx, b)
	if ok, _ := s.Accepted(ctx, a); !ok { // a is now the most recently used
		t.Fatal("a not accepted")
	}
	_ = s.Accept(ctx, c)
	for d, want := range map[credentials.Digest]bool{a: true, b: false, c: true} {
		if ok, _ := s.Accepted(ctx, d); ok != want {
			t.Errorf("digest %d: Accepted = %v, want %v", d[0], ok, want)
		}
	}
}
