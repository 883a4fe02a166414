package benchrun

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// Micro are the Go micro-benchmarks of the hot path make bench prints:
// classify, parse (JSON and form bodies), decide, ledger, cache, the whole
// handler.
var Micro = []struct{ Pattern, Package string }{
	{"Classify|ParseRequest", "./internal/psp/"},
	// The strict readers of the two body encodings, side by side.
	{"Check|Valid", "./internal/jsonstrict/"},
	{"Parse", "./internal/formstrict/"},
	{"Decide", "./rules/"},
	{"ReserveCommit", "./internal/ledger/"},
	{"Memory(BeginComplete|BeginAbandon|Replay)", "./internal/idempotency/"},
	{"ReadBody", "./internal/guard/"},
	{"ServeHTTP", "./caddymodule/"},
}

// micro runs the micro-benchmarks and the footprint of a full gateway,
// prints their result lines, and returns the footprint in MiB.
func (b *bench) micro(ctx context.Context) (float64, error) {
	fmt.Fprintln(b.cfg.Out, "== Go micro-benchmarks (-benchmem)")
	for _, m := range Micro {
		out, err := b.goBench(ctx, m.Pattern, "300ms", m.Package)
		if err != nil {
			return 0, err
		}
		fmt.Fprint(b.cfg.Out, benchLines(out))
	}
	out, err := b.goBench(ctx, "Footprint", "1x", "./internal/footprint/")
	if err != nil {
		return 0, err
	}
	fmt.Fprint(b.cfg.Out, benchLines(out))
	mib, err := parseFootprint(out)
	if err != nil {
		return 0, err
	}
	fmt.Fprintln(b.cfg.Out)
	return mib, nil
}

func (b *bench) goBench(ctx context.Context, pattern, benchtime, pkg string) (string, error) {
	c := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-benchmem", "-benchtime="+benchtime, "-bench", pattern, pkg)
	c.Dir = b.cfg.Root
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Run(); err != nil {
		return "", fmt.Errorf("go test -bench %s %s: %w:\n%s", pattern, pkg, err, out.String())
	}
	return out.String(), nil
}

// benchLines keeps the result lines of go test -bench output.
func benchLines(out string) string {
	var b strings.Builder
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "Benchmark") {
			b.WriteString(line)
		}
	}
	return b.String()
}

var footprintMetric = regexp.MustCompile(`([0-9.]+) MiB-total`)

// parseFootprint reads the MiB-total metric of the footprint benchmark.
func parseFootprint(out string) (float64, error) {
	m := footprintMetric.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("the footprint benchmark reported no MiB-total:\n%s", out)
	}
	return strconv.ParseFloat(m[1], 64)
}
