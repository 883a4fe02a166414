package pspsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// fieldError is a request body member that is missing or has a bad value.
// It becomes a 400 BAD_VALUE whose message names the member.
type fieldError struct {
	field  string
	reason string
}

func (e *fieldError) Error() string { return "Bad value: " + e.field + ": " + e.reason }

func badField(field, format string, args ...any) error {
	return &fieldError{field: field, reason: fmt.Sprintf(format, args...)}
}

// object is a JSON object whose members are decoded on demand, so that an
// error can name the member at fault. A member that is null counts as absent.
type object map[string]json.RawMessage

// parseObject decodes a request body that must be a JSON object.
func parseObject(body []byte) (object, error) {
	var o object
	if err := json.Unmarshal(body, &o); err != nil || o == nil {
		return nil, badField("body", "must be a JSON object")
	}
	return o, nil
}

// parseOptionalObject is parseObject for operations whose body may be empty.
func parseOptionalObject(body []byte) (object, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return object{}, nil
	}
	return parseObject(body)
}

func (o object) get(name string) (json.RawMessage, bool) {
	raw, ok := o[name]
	raw = bytes.TrimSpace(raw)
	if !ok || string(raw) == "null" {
		return nil, false
	}
	return raw, true
}

func missing(field string) error { return badField(field, "is required") }

// integer reads an integral JSON number in [lo, hi]. Fractions, exponents
// and strings are refused: every amount is an integer in minor units.
func (o object) integer(field string, lo, hi int64, required bool) (n int64, present bool, err error) {
	raw, ok := o.get(field)
	if !ok {
		if required {
			return 0, false, missing(field)
		}
		return 0, false, nil
	}
	n, err = strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, true, badField(field, "must be an integer")
	}
	if n < lo || n > hi {
		return 0, true, badField(field, "must be between %d and %d", lo, hi)
	}
	return n, true, nil
}

func (o object) text(field string, required bool) (string, error) {
	raw, ok := o.get(field)
	if !ok {
		if required {
			return "", missing(field)
		}
		return "", nil
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", badField(field, "must be a string")
	}
	if required && s == "" {
		return "", missing(field)
	}
	return s, nil
}

func (o object) boolean(field string) (bool, error) {
	raw, ok := o.get(field)
	if !ok {
		return false, nil
	}
	switch string(raw) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, badField(field, "must be a boolean")
}

func (o object) array(field string, maxLen int, required bool) ([]json.RawMessage, error) {
	raw, ok := o.get(field)
	if !ok {
		if required {
			return nil, missing(field)
		}
		return nil, nil
	}
	var a []json.RawMessage
	if raw[0] != '[' || json.Unmarshal(raw, &a) != nil {
		return nil, badField(field, "must be an array")
	}
	if len(a) > maxLen {
		return nil, badField(field, "must have at most %d entries", maxLen)
	}
	return a, nil
}

func (o object) member(field string) (object, error) {
	raw, ok := o.get(field)
	if !ok {
		return nil, nil
	}
	var m object
	if raw[0] != '{' || json.Unmarshal(raw, &m) != nil {
		return nil, badField(field, "must be an object")
	}
	return m, nil
}
