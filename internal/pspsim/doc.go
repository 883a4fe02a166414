// Package pspsim is an in-memory simulator of the Klarna, Hellgate and
// Stripe APIs that pspguard sits in front of. One Server answers every PSP
// on one listener: Klarna under /payments/v1/, /checkout/v3/ and
// /ordermanagement/v1/, Hellgate under /payments/one-off and /payments/{id},
// Stripe under /v1/. Paths under /_sim/ control the simulator and are not
// PSP requests.
//
// The simulator is the PSP the gateway is tested against, so it enforces the
// PSPs' own rules (amounts, order states, single Hellgate captures, merchant
// ownership) and can misbehave on request: added latency, a share of requests
// answered 503 without effect, captures and order changes (PATCH
// authorization, release, cancel) that are applied but whose connection is
// dropped or that are answered 500, which is the case that makes idempotency
// keys and uncertain outcomes matter, and order reads that take their
// snapshot when they arrive but answer only after a delay, so that a capture
// can land in between.
//
// In the no-limits mode (Options.NoLimits, POST /_sim/mode) Klarna Order
// Management applies every well-formed capture whatever the order's state or
// remaining authorization, and a PATCH authorization even below the captured
// amount: whatever a gateway in front lets through is then money moved. The
// simulator's books (Books, GET /_sim/books) keep every order's history of
// amounts and captures, Capture-Id included, and each moment a capture took
// more than the order authorized.
//
// Where the real PSPs involve a customer or time, the simulator decides at
// once, and these choices are part of its contract:
//
//   - Klarna Payments: any authorization token is accepted once; there is no
//     session behind it. A second create-order with the same token is 403
//     INVALID_OPERATION.
//   - Klarna Checkout v3: the customer completes checkout immediately. The
//     201 answer still says "checkout_incomplete" as Klarna's does, but the
//     order is already in Order Management as AUTHORIZED, or CAPTURED when
//     options.auto_capture is true, and GET /checkout/v3/orders/{id} reads
//     "checkout_complete".
//   - An auto-captured Klarna order is CAPTURED with one capture of the whole
//     order amount.
//   - Release of the remaining authorization leaves an order CAPTURED when
//     something was captured and CLOSED when nothing was, as Klarna does.
//   - Klarna authorizations expire 28 days after creation; extending adds 28
//     days. Past expires_at nothing can be captured, nothing remains
//     authorized, and an order with no capture reads EXPIRED.
//   - Hellgate settles a capture at once: the capture answer shows the
//     payment "capturing", every later read shows it "captured".
//   - Order and payment ids are matched case-insensitively, as a UUID-typed
//     server matches them.
//   - Stripe reads form bodies as Rack's parse_nested_query does
//     (internal/rackform): a repeated key's last value wins, %5B and %5D
//     are brackets; a POST's query parameters are read too, the body's
//     winning a top-level key both carry. A PaymentIntent is paid by card at once when confirmed:
//     the capture method in force for cards (payment_method_options[card]
//     [capture_method] over capture_method, automatic by default) makes it
//     succeeded, captured in full, or requires_capture. A Checkout Session
//     whose line_items carry price_data is completed at once the same way,
//     with payment_intent_data[capture_method]. A Charge is captured unless
//     capture=false. A PaymentIntent capture without final_capture=false,
//     and every Charge capture, releases the rest; final_capture=false
//     needs payment_method_options[card][request_multicapture]=if_available.
//     In the no-limits mode every well-formed Stripe capture is applied, and
//     Books shows Stripe's objects beside Klarna's orders.
//
// Idempotency keys (Klarna-Idempotency-Key on Klarna Payments create-order
// and on Order Management POST and PATCH, X-Idempotency-Key on Hellgate POST,
// Idempotency-Key on every Stripe POST) are scoped to the merchant and kept
// 24 hours. Like Klarna, the simulator compares only the key of Klarna and
// Hellgate requests: a repeat gets the first answer's status, headers and
// body whatever its own method, path and body. A repeat that arrives while
// the first is still being processed waits for it and then gets its answer.
// Like Stripe, it compares a Stripe repeat's method, path and parameters (as
// Rack reads them): other parameters are a 400 idempotency_error, a repeat
// of a request still running a 409 idempotency_error, and a replay carries
// Idempotent-Replayed: true.
package pspsim
