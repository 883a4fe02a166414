// Package redistest gives tests real Redis servers: the shared one of
// the test run, and servers, Sentinels and Clusters of their own.
//
// Tests that need a Redis call URL. It reads PSPGUARD_REDIS_URL (make test and
// .ci/run start a redis-server on a free port and set it). Without it the test
// is skipped on a developer machine, and fails in CI (CI=true), where a
// missing Redis means the run did not test what it claims to. Tests that
// need a topology of their own start it with Server, StartSentinels,
// StartCluster or TLSServer (servers.go), which run the machine's
// redis-server and redis-cli under the same rule.
package redistest

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// EnvVar names the environment variable holding the test Redis URL.
const EnvVar = "PSPGUARD_REDIS_URL"

// URL returns the test Redis URL, skipping (or, in CI, failing) the test when
// none is configured.
func URL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(EnvVar); u != "" {
		return u
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not set: CI must run the Redis tests against a real redis-server", EnvVar)
	}
	t.Skipf("%s is not set; run `make test` to start a local redis-server", EnvVar)
	return ""
}

// Client connects to the test Redis server (see URL); the client is closed
// when the test ends.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(URL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// ClosedAddr returns a loopback address nothing listens on: a Redis, or
// any other server, that is down.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Advance moves the expiry of every key whose name starts with prefix as
// if the server's clock had moved forward by d: a key that would have
// expired within d is deleted, every other key with a TTL expires d
// sooner. Tests of stores whose keys Redis expires by its own clock use it
// with their injected clock instead of waiting.
func Advance(t testing.TB, c redis.Cmdable, prefix string, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	iter := c.Scan(ctx, 0, globEscaper.Replace(prefix)+"*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		left, err := c.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatalf("PTTL %s: %v", k, err)
		}
		switch {
		case left < 0: // -1: no expiry; -2: gone since the scan
		case left <= d:
			err = c.Del(ctx, k).Err()
		default:
			err = c.PExpire(ctx, k, left-d).Err()
		}
		if err != nil {
			t.Fatalf("advancing %s by %v: %v", k, d, err)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN %s*: %v", prefix, err)
	}
}

// globEscaper escapes the characters SCAN's MATCH pattern treats as glob.
var globEscaper = strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)
