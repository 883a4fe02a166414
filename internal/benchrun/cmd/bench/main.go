// Command bench is make bench: the Go micro-benchmarks of the hot path,
// then the same wrk load through the simulator, plain Caddy and pspguard,
// in interleaved rounds, and the table of medians (internal/benchrun).
// It runs from the repository's root, after make build.
//
// Settings (environment): BENCH_ROUNDS (7), BENCH_SECONDS per throughput
// run (4), BENCH_LATENCY_SECONDS per one-connection run (2),
// BENCH_CONNECTIONS (32), BENCH_MICRO=0 skips the micro-benchmarks,
// BENCH_PIN=1 pins wrk and the simulator to one core and Caddy to the
// other, BENCH_COMPARE=path/to/pspguard adds that binary (an earlier
// build) with the memory store as one more target.
//
// It exits non-zero only when the bench itself breaks (a tool is missing,
// a process does not start, a request fails); targets that are missed
// print FAIL.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/pspguard/pspguard/internal/benchrun"
)

func main() {
	cfg, err := config(os.Getenv)
	if err == nil {
		cfg.Root, err = os.Getwd()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	cfg.Out = os.Stdout
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := benchrun.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		os.Exit(1)
	}
}

// config reads the settings from the environment.
func config(getenv func(string) string) (benchrun.Config, error) {
	cfg := benchrun.Config{Micro: getenv("BENCH_MICRO") != "0", Pin: getenv("BENCH_PIN") == "1", Compare: getenv("BENCH_COMPARE")}
	ints := []struct {
		name string
		def  int
		set  func(int)
	}{
		{"BENCH_ROUNDS", 7, func(n int) { cfg.Rounds = n }},
		{"BENCH_SECONDS", 4, func(n int) { cfg.Seconds = time.Duration(n) * time.Second }},
		{"BENCH_LATENCY_SECONDS", 2, func(n int) { cfg.LatencySeconds = time.Duration(n) * time.Second }},
		{"BENCH_CONNECTIONS", 32, func(n int) { cfg.Conns = n }},
	}
	for _, v := range ints {
		n := v.def
		if s := getenv(v.name); s != "" {
			var err error
			if n, err = strconv.Atoi(s); err != nil || n < 1 {
				return cfg, fmt.Errorf("%s=%q: want a whole number of at least 1", v.name, s)
			}
		}
		v.set(n)
	}
	return cfg, nil
}
