package psp

import (
	"fmt"
	"strings"
	"time"

	"github.com/pspguard/pspguard/internal/jsonstrict"
)

// maxAnswerAmount bounds the amounts read from a PSP's answer: wider than
// any request may ask for, narrow enough that sums cannot overflow.
const maxAnswerAmount = 1 << 50

// answerInt reads an amount from a PSP's answer.
func answerInt(v jsonstrict.Value, required bool) (int64, bool, error) {
	n, present, err := v.Int(0, maxAnswerAmount)
	switch {
	case err != nil:
		return 0, true, err
	case !present && required:
		return 0, false, fmt.Errorf("%s is missing", v.Path())
	}
	return n, present, nil
}

// answerString reads a string from a PSP's answer.
func answerString(v jsonstrict.Value, required bool) (string, bool, error) {
	s, present, err := v.Str()
	switch {
	case err != nil:
		return "", true, err
	case !present && required:
		return "", false, fmt.Errorf("%s is missing", v.Path())
	}
	return s, present, nil
}

// parseKlarnaOrder reads an Order Management order.
func parseKlarnaOrder(body []byte, now time.Time) (Order, error) {
	if err := jsonstrict.Valid(body); err != nil {
		return Order{}, err
	}
	root := jsonstrict.Root(body)
	amount, _, err := answerInt(root.Get("order_amount"), true)
	if err != nil {
		return Order{}, err
	}
	captured, _, err := answerInt(root.Get("captured_amount"), true)
	if err != nil {
		return Order{}, err
	}
	remaining, _, err := answerInt(root.Get("remaining_authorized_amount"), true)
	if err != nil {
		return Order{}, err
	}
	currency, _, err := answerString(root.Get("purchase_currency"), true)
	if err != nil {
		return Order{}, err
	}
	if !isCurrency(currency) {
		return Order{}, fmt.Errorf("purchase_currency %q is not a currency code", currency)
	}
	status, _, err := answerString(root.Get("status"), true)
	if err != nil {
		return Order{}, err
	}
	// The currency is cloned: the ledger keeps it, and it must not hold on
	// to the whole answer.
	o := Order{Amount: amount, Currency: strings.Clone(currency), Captured: captured}
	if r := amount - captured - remaining; r > 0 {
		o.Released = r
	}
	expires, present, err := answerString(root.Get("expires_at"), false)
	if err != nil {
		return Order{}, err
	}
	if present {
		if o.ExpiresAt, err = time.Parse(time.RFC3339, expires); err != nil {
			return Order{}, fmt.Errorf("expires_at %q is not an RFC 3339 time", expires)
		}
	}
	switch status {
	case "AUTHORIZED", "PART_CAPTURED":
		o.State = StateAuthorized
		// Klarna may not have marked the order expired yet; captures stop
		// at expires_at all the same.
		if !o.ExpiresAt.IsZero() && !now.Before(o.ExpiresAt) {
			o.State = StateExpired
		}
	case "CAPTURED":
		o.State = StateCaptured
	case "CANCELLED":
		o.State = StateCancelled
	case "EXPIRED":
		o.State = StateExpired
	case "CLOSED":
		o.State = StateClosed
	default:
		return Order{}, fmt.Errorf("unknown order status %q", status)
	}
	return o, nil
}

func (klarna) ParseOrder(body []byte, now time.Time) (Order, error) {
	o, err := parseKlarnaOrder(body, now)
	if err != nil {
		return Order{}, fmt.Errorf("reading the Klarna order: %w", err)
	}
	return o, nil
}
