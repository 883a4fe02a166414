package benchrun

import (
	"fmt"
	"regexp"
	"strconv"
)

// The wrk scripts. Every request is unique: create-order takes a fresh
// authorization token in its path, capture a fresh idempotency key. Each
// prints one RESULT line; statuses of 400 and above count as failures.
const commonLua = `threads = 0
function setup(thread)
	threads = threads + 1
	thread:set("tid", threads)
end
function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d failed=%d\n",
		summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
		e.status + e.connect + e.read + e.write + e.timeout))
end
`

// createLua: a create-order with auto_capture for a merchant the rules
// allow; args[1] makes the tokens of a run unique.
const createLua = commonLua + `
local body = '{"purchase_country":"SE","purchase_currency":"SEK","locale":"sv-SE",' ..
	'"order_amount":10000,"order_tax_amount":0,"auto_capture":true,"order_lines":[' ..
	'{"type":"digital","reference":"ebook-1","name":"E-book","quantity":1,' ..
	'"unit_price":10000,"tax_rate":0,"total_amount":10000,"total_tax_amount":0}]}'
local prefix, n = "", 0
function init(args)
	prefix = "/payments/v1/authorizations/" .. args[1] .. "-" .. tid .. "-"
end
function request()
	n = n + 1
	return wrk.format("POST", prefix .. n .. "/order", nil, body)
end
`

// captureLua: a capture of 1 from one of the orders listed in the file
// args[2], with a fresh key made unique by args[1].
const captureLua = commonLua + `
local body = '{"captured_amount":1,"description":"shipped"}'
local orders, headers, key, n = {}, {}, "", 0
function init(args)
	key = args[1] .. "-" .. tid .. "-"
	for line in io.lines(args[2]) do orders[#orders + 1] = line end
	for k, v in pairs(wrk.headers) do headers[k] = v end
	n = tid
end
function request()
	n = n + 1
	headers["Klarna-Idempotency-Key"] = key .. n
	local order = orders[n % #orders + 1]
	return wrk.format("POST", "/ordermanagement/v1/orders/" .. order .. "/captures", headers, body)
end
`

// WrkResult is what a run's RESULT line reports.
type WrkResult struct {
	Requests int64
	Duration int64 // µs
	P50, P99 int64 // µs
	Failed   int64
}

// RPS is the requests per second of the run.
func (r WrkResult) RPS() float64 { return float64(r.Requests) * 1e6 / float64(r.Duration) }

var resultLine = regexp.MustCompile(`(?m)^RESULT requests=(\d+) duration_us=(\d+) p50_us=(\d+) p99_us=(\d+) failed=(\d+)$`)

// ParseWrk reads the RESULT line of wrk's output. A run without one, with
// no request, or with a failed request is an error: the numbers of a run
// whose requests failed measure the failures.
func ParseWrk(out string) (WrkResult, error) {
	m := resultLine.FindStringSubmatch(out)
	if m == nil {
		return WrkResult{}, fmt.Errorf("wrk printed no RESULT line:\n%s", out)
	}
	var v [5]int64
	for i := range v {
		n, err := strconv.ParseInt(m[i+1], 10, 64)
		if err != nil {
			return WrkResult{}, fmt.Errorf("wrk RESULT line %q: %w", m[0], err)
		}
		v[i] = n
	}
	r := WrkResult{Requests: v[0], Duration: v[1], P50: v[2], P99: v[3], Failed: v[4]}
	if r.Requests == 0 || r.Duration == 0 || r.Failed > 0 {
		return r, fmt.Errorf("%d of %d requests failed:\n%s", r.Failed, r.Requests, out)
	}
	return r, nil
}
