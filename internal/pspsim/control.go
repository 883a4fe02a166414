package pspsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Limits of the control API.
const (
	maxLatency        = time.Minute // POST /_sim/faults latency_ms and read_delay_ms
	maxStreamChunks   = 10000       // GET /_sim/stream chunks
	maxStreamInterval = time.Minute // GET /_sim/stream interval_ms
)

// faultsJSON is Faults as POST /_sim/faults takes it and GET returns it.
type faultsJSON struct {
	LatencyMS        int64 `json:"latency_ms"`
	FailPercent      int   `json:"fail_percent"`
	DropAfterCapture int   `json:"drop_after_capture"`
	FailAfterCapture int   `json:"fail_after_capture"`
	DropAfterChange  int   `json:"drop_after_change"`
	FailAfterChange  int   `json:"fail_after_change"`
	ReadDelayMS      int64 `json:"read_delay_ms"`
}

func (f faultsJSON) faults() Faults {
	return Faults{
		Latency:          time.Duration(f.LatencyMS) * time.Millisecond,
		FailPercent:      f.FailPercent,
		DropAfterCapture: f.DropAfterCapture,
		FailAfterCapture: f.FailAfterCapture,
		DropAfterChange:  f.DropAfterChange,
		FailAfterChange:  f.FailAfterChange,
		ReadDelay:        time.Duration(f.ReadDelayMS) * time.Millisecond,
	}
}

func toFaultsJSON(f Faults) faultsJSON {
	return faultsJSON{
		LatencyMS:        f.Latency.Milliseconds(),
		FailPercent:      f.FailPercent,
		DropAfterCapture: f.DropAfterCapture,
		FailAfterCapture: f.FailAfterCapture,
		DropAfterChange:  f.DropAfterChange,
		FailAfterChange:  f.FailAfterChange,
		ReadDelayMS:      f.ReadDelay.Milliseconds(),
	}
}

// modeJSON is the mode as POST /_sim/mode takes it and GET returns it.
type modeJSON struct {
	NoLimits bool `json:"no_limits"`
}

// serveControl answers the simulator's own API under /_sim/:
//
//	GET  /_sim/stats     Stats as JSON
//	GET  /_sim/books     Books as JSON: every Klarna order's history, and violations
//	GET  /_sim/requests  the recorded requests as a JSON array
//	GET  /_sim/faults    the faults in effect
//	POST /_sim/faults    {"latency_ms":..,"fail_percent":..,"drop_after_capture":..,
//	                      "fail_after_capture":..,"drop_after_change":..,
//	                      "fail_after_change":..,"read_delay_ms":..}
//	                     replaces them all (absent members are 0); 204
//	GET  /_sim/mode      {"no_limits":..}
//	POST /_sim/mode      {"no_limits":true|false}: SetNoLimits; 204
//	POST /_sim/reset     Reset; 204
//	GET  /_sim/stream?chunks=N&interval_ms=M
//	                     N lines of text, each flushed, M ms apart
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/_sim/stats":
		if allow(w, r, http.MethodGet) {
			writeJSON(w, s.Stats())
		}
	case "/_sim/books":
		if allow(w, r, http.MethodGet) {
			writeJSON(w, s.Books())
		}
	case "/_sim/mode":
		if r.Method == http.MethodGet {
			writeJSON(w, modeJSON{NoLimits: s.NoLimits()})
			return
		}
		if allow(w, r, http.MethodGet, http.MethodPost) {
			s.postMode(w, r)
		}
	case "/_sim/requests":
		if allow(w, r, http.MethodGet) {
			writeJSON(w, s.Requests())
		}
	case "/_sim/faults":
		if r.Method == http.MethodGet {
			writeJSON(w, toFaultsJSON(s.Faults()))
			return
		}
		if allow(w, r, http.MethodGet, http.MethodPost) {
			s.postFaults(w, r)
		}
	case "/_sim/reset":
		if allow(w, r, http.MethodPost) {
			s.Reset()
			w.WriteHeader(http.StatusNoContent)
		}
	case "/_sim/stream":
		if allow(w, r, http.MethodGet) {
			s.stream(w, r)
		}
	default:
		http.NotFound(w, r)
	}
}

// allow reports whether r's method is one of methods, and answers 405
// otherwise.
func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func (s *Server) postFaults(w http.ResponseWriter, r *http.Request) {
	var in faultsJSON
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		http.Error(w, "faults: "+err.Error(), http.StatusBadRequest)
		return
	}
	pct := func(p int) bool { return p >= 0 && p <= 100 }
	ms := func(d int64) bool { return d >= 0 && d <= maxLatency.Milliseconds() }
	if !ms(in.LatencyMS) || !ms(in.ReadDelayMS) || !pct(in.FailPercent) || !pct(in.DropAfterCapture) ||
		!pct(in.FailAfterCapture) || !pct(in.DropAfterChange) || !pct(in.FailAfterChange) {
		http.Error(w, fmt.Sprintf("faults: latency_ms and read_delay_ms must be 0..%d, percentages 0..100", maxLatency.Milliseconds()), http.StatusBadRequest)
		return
	}
	s.SetFaults(in.faults())
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) postMode(w http.ResponseWriter, r *http.Request) {
	var in modeJSON
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		http.Error(w, "mode: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.SetNoLimits(in.NoLimits)
	w.WriteHeader(http.StatusNoContent)
}

// stream writes chunks lines, flushing each, interval apart: a response a
// proxy must pass through as it comes rather than buffer.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	chunks, err1 := queryInt(q.Get("chunks"), 10, maxStreamChunks)
	ms, err2 := queryInt(q.Get("interval_ms"), 100, int(maxStreamInterval.Milliseconds()))
	if err1 != nil || err2 != nil {
		http.Error(w, fmt.Sprintf("stream: chunks must be 0..%d and interval_ms 0..%d", maxStreamChunks, maxStreamInterval.Milliseconds()), http.StatusBadRequest)
		return
	}
	interval := time.Duration(ms) * time.Millisecond
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	for i := 1; i <= chunks; i++ {
		if i > 1 && s.sleep(r.Context(), interval) != nil {
			return
		}
		fmt.Fprintf(w, "chunk %d of %d\n", i, chunks)
		if rc.Flush() != nil {
			return
		}
	}
}

// queryInt parses a query parameter in 0..hi; empty means def.
func queryInt(v string, def, hi int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, err
	}
	if n < 0 || n > hi {
		return 0, fmt.Errorf("%d out of range 0..%d", n, hi)
	}
	return n, nil
}
