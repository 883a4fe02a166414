package benchrun

import (
	"math"
	"strings"
	"testing"
)

// rounds makes the samples of a run whose load and single-connection runs
// of op through t give rps[i] req/s and p50[i] µs in round i+1.
func rounds(op Op, t Target, rps, p50 []float64) []Sample {
	var out []Sample
	for i := range rps {
		out = append(out,
			Sample{Round: i + 1, Op: op, Target: t, Mode: Load, RPS: rps[i], P50: 1000, P99: 2000, CPU: 100},
			Sample{Round: i + 1, Op: op, Target: t, Mode: Single, RPS: 1, P50: p50[i], P99: 2 * p50[i], CPU: 100})
	}
	return out
}

func TestSummarizeRatioIsMedianOfPerRoundRatios(t *testing.T) {
	// Round 2 is slow for both. The ratio of the medians would be
	// 1000/1000 = 1; the per-round ratios are 0.9, 0.9 and 1.1.
	var s []Sample
	s = append(s, rounds(Create, Caddy, []float64{1000, 500, 1000}, []float64{300, 600, 300})...)
	s = append(s, rounds(Create, GuardMemory, []float64{900, 450, 1100}, []float64{340, 700, 320})...)
	sum := Summarize(s, []Target{Direct, Caddy, GuardMemory, GuardRedis})

	if len(sum.Rows) != 2 {
		t.Fatalf("rows = %d, want 2 (only targets with samples)", len(sum.Rows))
	}
	g, ok := sum.Row(Create, GuardMemory)
	if !ok {
		t.Fatal("no guard-memory row")
	}
	if math.Abs(g.Ratio-0.9) > 1e-9 {
		t.Errorf("ratio = %v, want 0.9 (median of 0.9, 0.9, 1.1)", g.Ratio)
	}
	if g.RPS != 900 {
		t.Errorf("req/s = %v, want the median 900", g.RPS)
	}
	// Added p50 per round: 40, 100, 20; median 40.
	if g.Added != 40 {
		t.Errorf("added p50 = %v, want 40", g.Added)
	}
	c, _ := sum.Row(Create, Caddy)
	if c.Ratio != 1 || !math.IsNaN(c.Added) {
		t.Errorf("Caddy row: ratio %v, added %v; want 1 and none", c.Ratio, c.Added)
	}
}

func TestSummarizeRedisCommandsPerRequest(t *testing.T) {
	s := []Sample{
		{Round: 1, Op: Capture, Target: GuardRedis, Mode: Load, RPS: 100, RedisSent: 2, RedisRun: 19},
		{Round: 1, Op: Capture, Target: GuardRedis, Mode: Single, RPS: 10, RedisSent: 2, RedisRun: 19},
		{Round: 2, Op: Capture, Target: GuardRedis, Mode: Load, RPS: 100, RedisSent: 2.1, RedisRun: 20},
	}
	r, _ := Summarize(s, []Target{GuardRedis}).Row(Capture, GuardRedis)
	if r.RedisSent != 2 || r.RedisRun != 19 {
		t.Errorf("Redis commands = %v sent, %v run; want the medians over both modes, 2 and 19", r.RedisSent, r.RedisRun)
	}
}

// summaryWith is a summary whose memory-store rows have the given ratios
// and added latencies.
func summaryWith(createRatio, captureRatio, added float64) Summary {
	return Summary{Rows: []Row{
		{Op: Create, Target: GuardMemory, Ratio: createRatio, Added: added},
		{Op: Capture, Target: GuardMemory, Ratio: captureRatio, Added: added},
		{Op: Capture, Target: GuardRedis, Ratio: 0.5, Added: 500},
	}}
}

func checked(checks []Check, prefix string) (Check, bool) {
	for _, c := range checks {
		if strings.HasPrefix(c.What, prefix) {
			return c, true
		}
	}
	return Check{}, false
}

func TestChecksThresholds(t *testing.T) {
	for _, c := range []struct {
		name                string
		create, capture, ad float64
		want                map[string]bool
	}{
		{"at the targets", 0.97, 0.97, 50, map[string]bool{
			"create-order, memory store: req/s": true, "capture, memory store: req/s": true,
			"create-order, memory store: added": true, "capture, Redis store": false,
		}},
		{"just below", 0.969, 0.96, 51, map[string]bool{
			"create-order, memory store: req/s": false, "capture, memory store: req/s": false,
			"create-order, memory store: added": false,
		}},
		{"no ratio", math.NaN(), 1.2, math.NaN(), map[string]bool{
			"create-order, memory store: req/s": false, "capture, memory store: req/s": true,
			"capture, memory store: added": false,
		}},
	} {
		checks := summaryWith(c.create, c.capture, c.ad).Checks(0)
		for prefix, want := range c.want {
			got, ok := checked(checks, prefix)
			if !ok {
				t.Fatalf("%s: no check %q in %v", c.name, prefix, checks)
			}
			if got.OK != want {
				t.Errorf("%s: %q passed = %v, want %v", c.name, got.What, got.OK, want)
			}
		}
	}
}

func TestChecksMissingRowFails(t *testing.T) {
	checks := Summary{}.Checks(0)
	for _, c := range checks {
		if c.OK {
			t.Errorf("%q passes without its row", c.What)
		}
	}
	if _, ok := checked(checks, "1M"); ok {
		t.Error("footprint checked although the micro-benchmarks did not run")
	}
}

func TestChecksFootprint(t *testing.T) {
	for _, c := range []struct {
		mib  float64
		want bool
	}{{421, true}, {511.9, true}, {512, false}} {
		got, ok := checked(Summary{}.Checks(c.mib), "1M")
		if !ok || got.OK != c.want {
			t.Errorf("footprint %v MiB: %+v, want passed = %v", c.mib, got, c.want)
		}
	}
}

func TestWriteTable(t *testing.T) {
	var s []Sample
	s = append(s, rounds(Capture, Caddy, []float64{6899}, []float64{294})...)
	s = append(s, rounds(Capture, GuardMemory, []float64{6401}, []float64{370})...)
	s = append(s, Sample{Round: 1, Op: Capture, Target: GuardRedis, Mode: Load, RPS: 3390, P50: 8760, P99: 18140, CPU: 382, RedisSent: 2, RedisRun: 19},
		Sample{Round: 1, Op: Capture, Target: GuardRedis, Mode: Single, RPS: 1000, P50: 840, P99: 3599, RedisSent: 2, RedisRun: 19})
	var b strings.Builder
	Summarize(s, []Target{Direct, Caddy, GuardMemory, GuardRedis}).Write(&b, 32, 421.3)
	out := b.String()
	for _, want := range []string{
		"| operation | target | req/s | ratio to Caddy | p50, 32 conns | p99, 32 conns | p50, 1 conn | p99, 1 conn | added p50, 1 conn | proxy CPU per request | Redis commands per request |\n",
		"| capture, fresh key | Caddy, reverse_proxy | 6899 | 1 | 1.00 ms | 2.00 ms | 294 µs | 588 µs |  | 100 µs |  |\n",
		"| capture, fresh key | pspguard, memory store | 6401 | 0.928 | 1.00 ms | 2.00 ms | 370 µs | 740 µs | +76 µs | 100 µs |  |\n",
		"| capture, fresh key | pspguard, Redis store | 3390 | 0.491 | 8.76 ms | 18.14 ms | 840 µs | 3599 µs | +546 µs | 382 µs (with Redis) | 2.00 sent (19.0 run, inside the scripts too) |\n",
		"capture, fresh key, pspguard, memory store: ratio to Caddy per round 0.928; added p50 per round +76 µs\n",
		"FAIL  capture, memory store: req/s >= 0.97 x Caddy\n",
		"PASS  1M idempotency results + 1M ledger orders < 512 MiB (421.3 MiB)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks\n%s\ngot:\n%s", want, out)
		}
	}
}
