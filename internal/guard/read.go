package guard

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"sync"

	"github.com/pspguard/pspguard/internal/psp"
)

// read reads who the caller is, checks the headers, reads the body once
// within max_body and parses it once into x.req. It answers the caller
// itself and returns false when the request is refused. The returned
// buffer holds the body and comes from a pool: the caller returns it once
// the request is done.
func (g *Guard) read(w http.ResponseWriter, r *http.Request, x *exchange) (*bytes.Buffer, bool) {
	op := x.route.Op
	id, err := g.dialect.Identity(r.Header)
	if err != nil {
		g.refuseErr(w, x, err)
		return nil, false
	}
	x.id = id
	if err := g.dialect.CheckQuery(x.route, r.URL.RawQuery); err != nil {
		g.refuseErr(w, x, err)
		return nil, false
	}
	// A release or cancel may come without a body; anything that carries one
	// must say it is of the dialect's media type.
	hasBody := op.HasBody() && r.ContentLength != 0
	key, e := psp.CheckHeaders(r.Header, g.dialect, hasBody)
	if e != nil {
		g.refuseErr(w, x, e)
		return nil, false
	}
	x.idemID = key
	if h := g.dialect.IdempotencyHeader(); key != "" && r.Header.Get(h) != key {
		// A quoted key: the PSP reads the header as it is sent, quotes
		// included, so the two spellings the gateway takes for one key
		// would be two keys there, and a retry spelled the other way would
		// run again. The PSP gets the key as the gateway reads it.
		r.Header.Set(h, key)
	}

	// Only a key's claim compares the body's fingerprint.
	x.route.Keyed = r.Header.Get(g.dialect.IdempotencyHeader()) != ""

	var buf *bytes.Buffer
	if op.HasBody() {
		buf, err = g.readBody(r, x)
		if err != nil {
			g.refuseErr(w, x, err)
			return buf, false
		}
		x.body = buf.Bytes()
	}
	req, err := g.dialect.ParseRequest(x.route, x.body)
	if err != nil {
		var pe *psp.Error
		if errors.As(err, &pe) {
			x.param = pe.Field // the caller's own parameter, never logged
		}
		g.refuseErr(w, x, err)
		return buf, false
	}
	x.req = req
	x.amount, x.currency = req.Amount, req.Currency
	if op.AsksCapture() {
		x.amount = req.OrderAmount
	}
	return buf, true
}

// readBody reads a guarded body once, within max_body. The returned buffer
// comes from a pool; the caller returns it once the request is done.
func (g *Guard) readBody(r *http.Request, x *exchange) (*bytes.Buffer, error) {
	if r.ContentLength > g.maxBody {
		return nil, g.tooLarge()
	}
	buf := getBuffer()
	if r.Body == nil || r.Body == http.NoBody {
		return buf, nil
	}
	lr := &x.limited
	lr.R, lr.N = r.Body, g.maxBody+1
	n, err := buf.ReadFrom(lr)
	if err != nil {
		return buf, psp.BadValue("", "reading the request body: %v", err)
	}
	if n > g.maxBody {
		return buf, g.tooLarge()
	}
	return buf, nil
}

// tooLarge is the answer to a body over max_body, built only when needed.
func (g *Guard) tooLarge() error {
	return &psp.Error{Status: http.StatusRequestEntityTooLarge, Code: psp.CodeRequestTooLarge,
		Message: "request body exceeds the limit of " + strconv.FormatInt(g.maxBody, 10) + " bytes"}
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuffer() *bytes.Buffer {
	b := bufPool.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

// putBuffer returns a buffer to the pool; oversized ones are dropped so one
// large body does not pin memory.
func putBuffer(b *bytes.Buffer) {
	if b.Cap() > 64<<10 {
		return
	}
	bufPool.Put(b)
}
