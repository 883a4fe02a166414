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
	"net"
	"os"
	"testing"

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
