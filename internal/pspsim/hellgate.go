package pspsim

import (
	"math"
	"net/http"
	"strings"
	"time"
)

// Hellgate payment statuses the simulator uses.
const (
	paymentAuthorized = "authorized"
	paymentCapturing  = "capturing"
	paymentCaptured   = "captured"
)

type payment struct {
	id, owner, merchant string
	requested           int64
	authorized          int64
	captured            int64
	captures            int
	currency, reference string
	sourceType          string
	status              string
	createdAt           time.Time
}

// paymentView is a payment as Hellgate shows it.
type paymentView struct {
	ID     string `json:"id"`
	Amount struct {
		Requested  int64  `json:"requested"`
		Authorized int64  `json:"authorized"`
		Captured   *int64 `json:"captured,omitempty"`
	} `json:"amount"`
	CreatedAt    string `json:"created_at"`
	CurrencyCode string `json:"currency_code"`
	Flow         string `json:"flow"`
	Reference    string `json:"reference,omitempty"`
	Status       string `json:"status"`
	Source       struct {
		Type string `json:"type"`
	} `json:"source"`
	UseCase string `json:"use_case"`
}

// view shows p with the given status; amount.captured appears once the
// capture has settled.
func (p *payment) view(status string) paymentView {
	v := paymentView{
		ID:           p.id,
		CreatedAt:    p.createdAt.UTC().Format(time.RFC3339),
		CurrencyCode: p.currency,
		Flow:         "e-commerce flow",
		Reference:    p.reference,
		Status:       status,
		UseCase:      "ONE_OFF",
	}
	v.Amount.Requested = p.requested
	v.Amount.Authorized = p.authorized
	if status == paymentCaptured {
		captured := p.captured
		v.Amount.Captured = &captured
	}
	v.Source.Type = p.sourceType
	return v
}

// hellgateRoute routes the Hellgate payments API. segs is the decoded path
// split at "/"; segs[0] is "payments".
func hellgateRoute(method string, segs []string) route {
	h := func(op string, fn func(*Server, *call) response, params ...string) route {
		return route{psp: pspHellgate, op: pspHellgate + "." + op, handle: fn, params: params}
	}
	switch {
	case len(segs) == 2 && segs[1] == "one-off":
		rt := h("create_order", (*Server).hellgateCreatePayment)
		rt.idempotent = true
		return endpoint(method, http.MethodPost, rt)
	case len(segs) == 2 && segs[1] != "":
		return endpoint(method, http.MethodGet, h("get_order", (*Server).hellgateGetPayment, segs[1]))
	case len(segs) == 3 && segs[1] != "" && segs[2] == "capture":
		rt := h("capture", (*Server).hellgateCapture, segs[1])
		rt.idempotent, rt.capture = true, true
		return endpoint(method, http.MethodPost, rt)
	}
	return notFound(pspHellgate)
}

// POST /payments/one-off
func (s *Server) hellgateCreatePayment(c *call) response {
	b, err := parseObject(c.body)
	if err != nil {
		return badValue(pspHellgate, err)
	}
	p := &payment{
		id:        newUUID(),
		owner:     c.who.owner,
		merchant:  c.who.name,
		status:    paymentAuthorized,
		createdAt: c.now,
	}
	if p.requested, _, err = b.integer("amount", 1, math.MaxInt64, true); err != nil {
		return badValue(pspHellgate, err)
	}
	p.authorized = p.requested
	if p.currency, err = b.text("currency_code", true); err != nil {
		return badValue(pspHellgate, err)
	}
	if !isCurrency(p.currency) {
		return badValue(pspHellgate, badField("currency_code", "must be an ISO 4217 code"))
	}
	p.currency = strings.ToUpper(p.currency)
	if p.reference, err = b.text("reference", false); err != nil {
		return badValue(pspHellgate, err)
	}
	src, err := b.member("source")
	if err != nil {
		return badValue(pspHellgate, err)
	}
	if p.sourceType, err = src.text("type", false); err != nil {
		return badValue(pspHellgate, badField("source.type", "must be a string"))
	}
	if p.sourceType == "" {
		p.sourceType = "card"
	}
	s.payments[p.id] = p
	return jsonResponse(http.StatusCreated, p.view(p.status))
}

// ownPayment finds a payment of the calling merchant.
func (s *Server) ownPayment(c *call) (*payment, *response) {
	// Hellgate's ids are matched as written, but for letter case.
	id := strings.ToLower(c.params[0])
	p, ok := s.payments[id]
	if !ok || p == nil || p.owner != c.who.owner {
		resp := hellgateError(http.StatusNotFound, "NOT_FOUND", "No such payment")
		return nil, &resp
	}
	return p, nil
}

// GET /payments/{payment_id}
func (s *Server) hellgateGetPayment(c *call) response {
	p, errResp := s.ownPayment(c)
	if errResp != nil {
		return *errResp
	}
	return jsonResponse(http.StatusOK, p.view(p.status))
}

// POST /payments/{payment_id}/capture
func (s *Server) hellgateCapture(c *call) response {
	p, errResp := s.ownPayment(c)
	if errResp != nil {
		return *errResp
	}
	b, err := parseObject(c.body)
	if err != nil {
		return badValue(pspHellgate, err)
	}
	amount, partial, err := b.integer("amount", 1, math.MaxInt64, false)
	if err != nil {
		return badValue(pspHellgate, err)
	}
	currency, err := b.text("currency_code", false)
	if err != nil {
		return badValue(pspHellgate, err)
	}
	if _, err := b.text("reference", true); err != nil {
		return badValue(pspHellgate, err)
	}

	const refused = http.StatusUnprocessableEntity
	switch {
	case p.captures > 0:
		return hellgateError(refused, "CAPTURE_NOT_ALLOWED", "The payment was already captured; only one capture per payment is supported")
	case p.status != paymentAuthorized:
		return hellgateError(refused, "CAPTURE_NOT_ALLOWED", "The payment is %s, not authorized", p.status)
	case currency != "" && !strings.EqualFold(currency, p.currency):
		return hellgateError(refused, "CAPTURE_NOT_ALLOWED", "currency_code %s does not match the payment's currency %s", currency, p.currency)
	case partial && amount > p.authorized:
		return hellgateError(refused, "CAPTURE_NOT_ALLOWED", "amount %d exceeds the authorized amount %d", amount, p.authorized)
	}
	if !partial {
		amount = p.authorized
	}
	p.captures++
	p.captured = amount
	// The capture settles at once; only this answer shows it in progress.
	p.status = paymentCaptured
	return jsonResponse(http.StatusOK, p.view(paymentCapturing))
}
