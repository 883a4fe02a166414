package pspsim

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"
)

// RecordedRequest is one PSP request as the simulator received it. Of the
// headers only Content-Type and the idempotency keys are kept; credentials
// never are, only the merchant derived from them.
type RecordedRequest struct {
	Seq       uint64      `json:"seq"` // 1 for the first request since New or Reset
	Time      time.Time   `json:"time"`
	PSP       string      `json:"psp"`       // "klarna", "hellgate", or "" for neither
	Operation string      `json:"operation"` // see Stats
	Merchant  string      `json:"merchant"`  // "" without valid credentials
	Method    string      `json:"method"`
	Path      string      `json:"path"` // escaped, as sent
	RawQuery  string      `json:"raw_query"`
	Header    http.Header `json:"header"`
	Body      []byte      `json:"-"` // encoded as body_base64, and as body when it is UTF-8

	Status      int  `json:"status"`       // the status answered; 0 while in progress, or when no answer was written
	Replayed    bool `json:"replayed"`     // answered from an idempotency key
	Dropped     bool `json:"dropped"`      // the request was applied and the connection closed without an answer
	FailedAfter bool `json:"failed_after"` // the request was applied and then answered 500
}

// recordedHeaders are the request headers kept in a RecordedRequest.
var recordedHeaders = []string{"Content-Type", "Klarna-Idempotency-Key", "X-Idempotency-Key", "Idempotency-Key", "Stripe-Account"}

func recordedHeader(h http.Header) http.Header {
	out := http.Header{}
	for _, name := range recordedHeaders {
		if v := h.Values(name); len(v) > 0 {
			out[name] = slices.Clone(v)
		}
	}
	return out
}

// rr is RecordedRequest without its JSON methods, for embedding in the
// structs those methods encode and decode.
type rr RecordedRequest

// MarshalJSON encodes the body twice: as body_base64, which is exact, and
// as the string body when it is valid UTF-8.
func (r RecordedRequest) MarshalJSON() ([]byte, error) {
	out := struct {
		rr
		Body       *string `json:"body,omitempty"`
		BodyBase64 string  `json:"body_base64"`
	}{rr: rr(r), BodyBase64: base64.StdEncoding.EncodeToString(r.Body)}
	if utf8.Valid(r.Body) {
		s := string(r.Body)
		out.Body = &s
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON wrote, taking the body from
// body_base64.
func (r *RecordedRequest) UnmarshalJSON(data []byte) error {
	var in struct {
		rr
		BodyBase64 string `json:"body_base64"`
	}
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	body, err := base64.StdEncoding.DecodeString(in.BodyBase64)
	if err != nil {
		return err
	}
	*r = RecordedRequest(in.rr)
	r.Body = body
	return nil
}

// requestLog keeps the last len(buf) requests.
type requestLog struct {
	buf  []RecordedRequest
	last uint64 // Seq of the newest request
}

func newRequestLog(size int) requestLog {
	return requestLog{buf: make([]RecordedRequest, size)}
}

func (l *requestLog) add(r RecordedRequest) uint64 {
	l.last++
	r.Seq = l.last
	l.buf[(l.last-1)%uint64(len(l.buf))] = r
	return l.last
}

// answered sets the outcome of request seq, if it is still kept.
func (l *requestLog) answered(seq uint64, status int, out outcome) {
	r := &l.buf[(seq-1)%uint64(len(l.buf))]
	if r.Seq != seq {
		return
	}
	r.Status = status
	r.Replayed = out == outcomeReplayed
	r.Dropped = out == outcomeDropped
	r.FailedAfter = out == outcomeFailedAfter
}

// all returns copies of the kept requests, oldest first.
func (l *requestLog) all() []RecordedRequest {
	n := min(l.last, uint64(len(l.buf)))
	out := make([]RecordedRequest, 0, n)
	for seq := l.last - n + 1; seq <= l.last; seq++ {
		r := l.buf[(seq-1)%uint64(len(l.buf))]
		r.Header = r.Header.Clone()
		r.Body = slices.Clone(r.Body)
		out = append(out, r)
	}
	return out
}

// Requests returns the last 10000 PSP requests received, oldest first.
func (s *Server) Requests() []RecordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.all()
}
