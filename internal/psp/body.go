package psp

import (
	"errors"
	"strings"

	"github.com/pspguard/pspguard/internal/jsonstrict"
)

// Limits of the PSPs' request bodies, from Klarna's public API reference
// (docs.klarna.com: amounts 0..200,000,000 minor units, at most 1000 order
// lines and 500 shipping_info entries).
const (
	maxAmount       = 200_000_000
	maxOrderLines   = 1000
	maxShippingInfo = 500
)

// emdContentType is the only attachment content type Klarna defines.
const emdContentType = "application/vnd.klarna.internal.emd-v2+json"

// checkBody checks a guarded body strictly and starts its Request, with
// the body's fingerprint if the route is Keyed.
func checkBody(route Route, body []byte) (*Request, jsonstrict.Value, error) {
	var fp jsonstrict.Fingerprint
	var err error
	if route.Keyed {
		fp, err = jsonstrict.Check(body)
	} else {
		err = jsonstrict.Valid(body)
	}
	if err != nil {
		return nil, jsonstrict.Value{}, fieldError(err)
	}
	req := &Request{Op: route.Op, OrderID: route.OrderID, Fingerprint: fp}
	return req, jsonstrict.Root(body), nil
}

// fieldError makes a 400 BAD_VALUE naming the field of a refused body.
func fieldError(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	var je *jsonstrict.Error
	if errors.As(err, &je) {
		e := BadValue(je.Path, "%s", je.Error())
		e.Log = je.LogMessage()
		return e
	}
	return BadValue("", "%v", err)
}

func missing(v jsonstrict.Value) *Error {
	return BadValue(v.Path(), "%s is required", v.Path())
}

// intField reads an exact integer between min and max.
func intField(v jsonstrict.Value, min, max int64, required bool) (n int64, present bool, err error) {
	n, present, err = v.Int(min, max)
	switch {
	case err != nil:
		return 0, true, fieldError(err)
	case !present && required:
		return 0, false, missing(v)
	}
	return n, present, nil
}

// autoCaptureField reads an exact boolean as an AutoCapture.
func autoCaptureField(v jsonstrict.Value) (AutoCapture, error) {
	b, present, err := v.Bool()
	switch {
	case err != nil:
		return AutoCaptureAbsent, fieldError(err)
	case !present:
		return AutoCaptureAbsent, nil
	case b:
		return AutoCaptureTrue, nil
	}
	return AutoCaptureFalse, nil
}

// currencyField reads a currency code: three letters A-Z.
func currencyField(v jsonstrict.Value, required bool) (string, error) {
	s, present, err := v.Str()
	switch {
	case err != nil:
		return "", fieldError(err)
	case !present && required:
		return "", missing(v)
	case !present:
		return "", nil
	case !isCurrency(s):
		return "", BadValue(v.Path(), "%s must be a three-letter currency code in upper case (ISO 4217, such as EUR)", v.Path())
	}
	return strings.Clone(s), nil // not a slice of the body: orders keep it
}

func isCurrency(s string) bool {
	return len(s) == 3 && isUpper(s[0]) && isUpper(s[1]) && isUpper(s[2])
}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }

var orderLineFields = []string{"type", "total_amount"}

// orderLines reads order_lines: an array of at most 1000 objects, each with
// an optional string type and an integer total_amount. It sets HasLines,
// LinesTotal and PhysicalLines, and returns the number of lines.
func orderLines(v jsonstrict.Value, req *Request, required bool) (int, error) {
	var total int64
	n := 0
	var f [2]jsonstrict.Value
	present, err := v.Array(maxOrderLines, func(line jsonstrict.Value) error {
		n++
		if _, err := line.Object(); err != nil {
			return err
		}
		line.Fields(orderLineFields, f[:])
		t, _, err := f[0].Str()
		if err != nil {
			return err
		}
		// A PSP matching its enum case-insensitively reads "PHYSICAL" as
		// physical too.
		lt := lineType(t)
		req.LineTypes |= lt
		if lt == LinePhysical {
			req.PhysicalLines = true
		}
		amount, _, err := intField(f[1], -maxAmount, maxAmount, true)
		total += amount
		return err
	})
	switch {
	case err != nil:
		return 0, fieldError(err)
	case !present && required:
		return 0, missing(v)
	case !present:
		return 0, nil
	}
	req.HasLines, req.LinesTotal = true, total
	return n, nil
}

// checkLinesSum refuses order lines that do not add up to the amount they
// describe: the PSP could read either as the amount.
func checkLinesSum(req *Request, lines int, amountField string, amount int64) error {
	if lines == 0 || req.LinesTotal == amount {
		return nil
	}
	return BadValue("order_lines", "order_lines: total_amount sum %d does not equal %s %d", req.LinesTotal, amountField, amount)
}

// arrayField checks an optional array of at most max entries.
func arrayField(v jsonstrict.Value, max int) error {
	if _, err := v.Array(max, func(jsonstrict.Value) error { return nil }); err != nil {
		return fieldError(err)
	}
	return nil
}

// stringField checks an optional string.
func stringField(v jsonstrict.Value) error {
	if _, _, err := v.Str(); err != nil {
		return fieldError(err)
	}
	return nil
}

var attachmentFields = []string{"content_type", "body"}

// attachment reads the extra merchant data: an optional object with
// content_type (the EMD media type) and body, a string holding a JSON
// object that is checked as strictly as the request itself.
func attachment(v jsonstrict.Value, req *Request) error {
	present, err := v.Object()
	switch {
	case err != nil:
		return fieldError(err)
	case !present:
		return nil
	}
	var f [2]jsonstrict.Value
	v.Fields(attachmentFields, f[:])
	ctv, bv := f[0], f[1]
	ct, present, err := ctv.Str()
	switch {
	case err != nil:
		return fieldError(err)
	case !present:
		return missing(ctv)
	case !strings.EqualFold(ct, emdContentType):
		return BadValue(ctv.Path(), "%s must be %s", ctv.Path(), emdContentType)
	}
	body, present, err := bv.Str()
	switch {
	case err != nil:
		return fieldError(err)
	case !present:
		return missing(bv)
	}
	keys, err := emdKeys(body)
	if err != nil {
		e := BadValue(bv.Path(), "%s must hold a JSON object: %v", bv.Path(), err)
		// The EMD's own member names are not the gateway's fields.
		e.Log = bv.Path() + " must hold a JSON object"
		var je *jsonstrict.Error
		if errors.As(err, &je) {
			e.Log += ": " + je.LogMessage()
		}
		return e
	}
	req.EMD = EMD{Present: true, Keys: keys}
	return nil
}

// emdKeys checks an EMD document and returns its top-level keys whose value
// is not empty (null, "", [] or {}).
func emdKeys(doc string) ([]string, error) {
	if err := jsonstrict.Valid([]byte(doc)); err != nil {
		return nil, err
	}
	var keys []string
	_, err := jsonstrict.RootString(doc).Members(func(name string, v jsonstrict.Value) error {
		if !v.Empty() {
			keys = append(keys, name)
		}
		return nil
	})
	return keys, err
}
