package benchrun

import (
	"strings"
	"testing"
)

func TestParseWrk(t *testing.T) {
	out := "Running 4s test @ http://127.0.0.1:1\n  1 threads and 32 connections\n" +
		"RESULT requests=24000 duration_us=4000000 p50_us=4540 p99_us=15610 failed=0\n"
	r, err := ParseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r != (WrkResult{Requests: 24000, Duration: 4000000, P50: 4540, P99: 15610}) {
		t.Errorf("parsed %+v", r)
	}
	if r.RPS() != 6000 {
		t.Errorf("req/s = %v, want 6000", r.RPS())
	}
}

func TestParseWrkRefusesBrokenRuns(t *testing.T) {
	for _, c := range []struct{ out, want string }{
		{"unable to connect to 127.0.0.1:1 Connection refused\n", "no RESULT line"},
		{"RESULT requests=100 duration_us=1000000 p50_us=1 p99_us=2 failed=3\n", "3 of 100 requests failed"},
		{"RESULT requests=0 duration_us=1000000 p50_us=0 p99_us=0 failed=0\n", "0 of 0 requests failed"},
	} {
		_, err := ParseWrk(c.out)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseWrk(%q) = %v, want an error with %q", c.out, err, c.want)
		}
	}
}
