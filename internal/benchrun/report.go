package benchrun

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// Op is a benchmarked operation.
type Op string

// The operations, in the table's order.
const (
	Create  Op = "create"
	Capture Op = "capture"
)

// Ops lists the operations in the table's order.
var Ops = []Op{Create, Capture}

func (o Op) label() string {
	if o == Create {
		return "create-order (auto_capture)"
	}
	return "capture, fresh key"
}

// Target is what the load goes through.
type Target string

// The targets, in the table's order.
const (
	Direct      Target = "direct"        // the simulator on its own
	Caddy       Target = "caddy"         // plain reverse_proxy
	GuardMemory Target = "guard-memory"  // psp_guard, memory store
	GuardRedis  Target = "guard-redis"   // psp_guard, Redis store
	Baseline    Target = "guard-compare" // psp_guard of another binary, memory store
)

var targetLabels = map[Target]string{
	Direct:      "pspsim directly",
	Caddy:       "Caddy, reverse_proxy",
	GuardMemory: "pspguard, memory store",
	GuardRedis:  "pspguard, Redis store",
	Baseline:    "pspguard (BENCH_COMPARE), memory store",
}

func (t Target) label() string { return targetLabels[t] }

// guarded reports whether the target runs psp_guard: its rows get a ratio
// to Caddy and an added latency.
func (t Target) guarded() bool { return t == GuardMemory || t == GuardRedis || t == Baseline }

// Mode is how a run loads its target.
type Mode string

// The modes of a run.
const (
	Load   Mode = "load"   // many connections: throughput and latency under load
	Single Mode = "single" // one connection: what one request costs
)

// Sample is one wrk run.
type Sample struct {
	Round  int
	Op     Op
	Target Target
	Mode   Mode
	RPS    float64
	P50    float64 // µs
	P99    float64 // µs
	CPU    float64 // µs of proxy CPU (and Redis's, for the Redis target) per request
	// Redis commands per request: the scripts the gateway sent, and every
	// command Redis ran, the scripts' own included. Only for GuardRedis.
	RedisSent, RedisRun float64
}

// Row is a line of the table: the medians of one operation and target.
type Row struct {
	Op                   Op
	Target               Target
	RPS                  float64
	Ratio                float64 // median of the per-round ratios to Caddy; NaN unguarded
	P50Load, P99Load     float64
	P50Single, P99Single float64
	Added                float64 // median of the per-round single-connection p50 differences to Caddy, µs
	CPU                  float64
	RedisSent, RedisRun  float64
	Ratios, Adds         []float64 // per round, in round order
}

// Summary is the table.
type Summary struct {
	Rows []Row
}

// cell holds the samples of one operation, target and mode by round.
type cell struct {
	round map[int]Sample
	order []int // rounds in the order they were added
}

func (c *cell) lookup(round int) (Sample, bool) {
	if c == nil {
		return Sample{}, false
	}
	s, ok := c.round[round]
	return s, ok
}

// Summarize takes the medians of the samples. A ratio is the median of
// the per-round ratios, each against the Caddy run of the same round, so
// that a round slowed down for every target alike (another process on the
// machine) moves the ratio little.
func Summarize(samples []Sample, targets []Target) Summary {
	type key struct {
		op     Op
		target Target
		mode   Mode
	}
	cells := map[key]*cell{}
	for _, s := range samples {
		k := key{s.Op, s.Target, s.Mode}
		c := cells[k]
		if c == nil {
			c = &cell{round: map[int]Sample{}}
			cells[k] = c
		}
		if _, seen := c.round[s.Round]; !seen {
			c.order = append(c.order, s.Round)
		}
		c.round[s.Round] = s
	}
	values := func(k key, f func(Sample) float64) []float64 {
		c := cells[k]
		if c == nil {
			return nil
		}
		var v []float64
		for _, r := range c.order {
			v = append(v, f(c.round[r]))
		}
		return v
	}
	rps := func(s Sample) float64 { return s.RPS }
	p50 := func(s Sample) float64 { return s.P50 }
	p99 := func(s Sample) float64 { return s.P99 }
	cpu := func(s Sample) float64 { return s.CPU }
	var sum Summary
	for _, op := range Ops {
		for _, t := range targets {
			load, single := key{op, t, Load}, key{op, t, Single}
			if cells[load] == nil {
				continue
			}
			row := Row{
				Op: op, Target: t,
				RPS:       Median(values(load, rps)),
				P50Load:   Median(values(load, p50)),
				P99Load:   Median(values(load, p99)),
				P50Single: Median(values(single, p50)),
				P99Single: Median(values(single, p99)),
				CPU:       Median(values(load, cpu)),
				Ratio:     math.NaN(),
				Added:     math.NaN(),
			}
			if t == GuardRedis {
				sent := append(values(load, func(s Sample) float64 { return s.RedisSent }),
					values(single, func(s Sample) float64 { return s.RedisSent })...)
				run := append(values(load, func(s Sample) float64 { return s.RedisRun }),
					values(single, func(s Sample) float64 { return s.RedisRun })...)
				row.RedisSent, row.RedisRun = Median(sent), Median(run)
			}
			if t.guarded() {
				caddyLoad, caddySingle := cells[key{op, Caddy, Load}], cells[key{op, Caddy, Single}]
				for _, r := range cells[load].order {
					if c, ok := caddyLoad.lookup(r); ok && c.RPS > 0 {
						row.Ratios = append(row.Ratios, cells[load].round[r].RPS/c.RPS)
					}
				}
				if s := cells[single]; s != nil {
					for _, r := range s.order {
						if c, ok := caddySingle.lookup(r); ok {
							row.Adds = append(row.Adds, s.round[r].P50-c.P50)
						}
					}
				}
				if len(row.Ratios) > 0 {
					row.Ratio = Median(row.Ratios)
				}
				if len(row.Adds) > 0 {
					row.Added = Median(row.Adds)
				}
			} else if t == Caddy {
				row.Ratio = 1
			}
			sum.Rows = append(sum.Rows, row)
		}
	}
	return sum
}

// Row returns the row of op and t.
func (s Summary) Row(op Op, t Target) (Row, bool) {
	for _, r := range s.Rows {
		if r.Op == op && r.Target == t {
			return r, true
		}
	}
	return Row{}, false
}

// Threshold is a performance target the table is checked against.
type Threshold struct {
	Op        Op
	Target    Target
	MinRatio  float64 // req/s at least this times Caddy's; 0: not checked
	MaxAdded  float64 // added single-connection p50 at most this many µs; 0: not checked
	Statement string
}

// Thresholds are the targets make bench checks. A target missed prints
// FAIL; it does not fail the run, since timings depend on the machine.
var Thresholds = []Threshold{
	{Op: Create, Target: GuardMemory, MinRatio: 0.97, Statement: "create-order, memory store: req/s >= 0.97 x Caddy"},
	{Op: Capture, Target: GuardMemory, MinRatio: 0.97, Statement: "capture, memory store: req/s >= 0.97 x Caddy"},
	{Op: Capture, Target: GuardRedis, MinRatio: 0.80, Statement: "capture, Redis store: req/s >= 0.80 x Caddy"},
	{Op: Create, Target: GuardMemory, MaxAdded: 50, Statement: "create-order, memory store: added p50 latency <= 50 µs"},
	{Op: Capture, Target: GuardMemory, MaxAdded: 50, Statement: "capture, memory store: added p50 latency <= 50 µs"},
}

// MaxFootprintMiB bounds the memory of a million cached results and a
// million ledger orders (internal/footprint).
const MaxFootprintMiB = 512

// Check is a target and whether the table meets it.
type Check struct {
	What string
	OK   bool
}

// Checks holds the table against Thresholds, and footprintMiB (when above
// 0, that is when the micro-benchmarks ran) against MaxFootprintMiB. A
// target whose row is missing or has no ratio fails.
func (s Summary) Checks(footprintMiB float64) []Check {
	var out []Check
	for _, th := range Thresholds {
		r, ok := s.Row(th.Op, th.Target)
		pass := ok
		if th.MinRatio > 0 {
			pass = pass && !math.IsNaN(r.Ratio) && r.Ratio >= th.MinRatio
		}
		if th.MaxAdded > 0 {
			pass = pass && !math.IsNaN(r.Added) && r.Added <= th.MaxAdded
		}
		out = append(out, Check{What: th.Statement, OK: pass})
	}
	if footprintMiB > 0 {
		out = append(out, Check{
			What: fmt.Sprintf("1M idempotency results + 1M ledger orders < %d MiB (%.1f MiB)", MaxFootprintMiB, footprintMiB),
			OK:   footprintMiB < MaxFootprintMiB,
		})
	}
	return out
}

// Write prints the table (Markdown, as the README shows it), the
// per-round ratios and added latencies of the guarded rows, and the
// checks.
func (s Summary) Write(w io.Writer, conns int, footprintMiB float64) {
	fmt.Fprintf(w, "| operation | target | req/s | ratio to Caddy | p50, %d conns | p99, %d conns | p50, 1 conn | p99, 1 conn | added p50, 1 conn | proxy CPU per request | Redis commands per request |\n", conns, conns)
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range s.Rows {
		ratio, added, cpu, calls := "", "", "", ""
		switch {
		case r.Target == Caddy:
			ratio = "1"
		case r.Target.guarded():
			if !math.IsNaN(r.Ratio) {
				ratio = fmt.Sprintf("%.3f", r.Ratio)
			}
			if !math.IsNaN(r.Added) {
				added = fmt.Sprintf("%+d µs", int(math.Round(r.Added)))
			}
		}
		if r.Target != Direct {
			cpu = fmt.Sprintf("%d µs", int(math.Round(r.CPU)))
		}
		if r.Target == GuardRedis {
			cpu += " (with Redis)"
			calls = fmt.Sprintf("%.2f sent (%.1f run, inside the scripts too)", r.RedisSent, r.RedisRun)
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %.2f ms | %.2f ms | %d µs | %d µs | %s | %s | %s |\n",
			r.Op.label(), r.Target.label(), int(math.Round(r.RPS)), ratio,
			r.P50Load/1000, r.P99Load/1000, int(math.Round(r.P50Single)), int(math.Round(r.P99Single)),
			added, cpu, calls)
	}
	fmt.Fprintln(w)
	for _, r := range s.Rows {
		if !r.Target.guarded() {
			continue
		}
		fmt.Fprintf(w, "%s, %s: ratio to Caddy per round%s; added p50 per round%s µs\n",
			r.Op.label(), r.Target.label(), list(r.Ratios, "%.3f"), list(r.Adds, "%+.0f"))
	}
	fmt.Fprintln(w)
	for _, c := range s.Checks(footprintMiB) {
		verdict := "FAIL"
		if c.OK {
			verdict = "PASS"
		}
		fmt.Fprintf(w, "%s  %s\n", verdict, c.What)
	}
}

func list(xs []float64, format string) string {
	var b strings.Builder
	for _, x := range xs {
		b.WriteByte(' ')
		fmt.Fprintf(&b, format, x)
	}
	return b.String()
}
