// Package benchrun is make bench: the Go micro-benchmarks of the hot path,
// then the same wrk load through the simulator on its own, plain Caddy and
// pspguard (memory and Redis stores), in interleaved rounds, and a table of
// medians with the performance targets checked against it.
//
// The arithmetic (medians, ratios, targets, the table) is plain Go over
// plain values, tested without a process; run.go starts the processes.
package benchrun

import "slices"

// Median is the middle of xs, or the mean of the two middle values for an
// even count; 0 for none. xs is left as it was.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
