package pspsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// klarnaErrorBody is the error body of every Klarna API.
type klarnaErrorBody struct {
	ErrorCode     string   `json:"error_code"`
	ErrorMessages []string `json:"error_messages"`
	CorrelationID string   `json:"correlation_id"`
}

// hellgateErrorBody is the error body pspguard expects from Hellgate, whose
// own schema is not published.
type hellgateErrorBody struct {
	Code          string `json:"code"`
	Message       string `json:"message"`
	CorrelationID string `json:"correlation_id"`
}

func klarnaError(status int, code, format string, args ...any) response {
	return jsonResponse(status, klarnaErrorBody{
		ErrorCode:     code,
		ErrorMessages: []string{fmt.Sprintf(format, args...)},
		CorrelationID: newUUID(),
	})
}

func hellgateError(status int, code, format string, args ...any) response {
	return jsonResponse(status, hellgateErrorBody{
		Code:          code,
		Message:       fmt.Sprintf(format, args...),
		CorrelationID: newUUID(),
	})
}

// pspError writes an error in the format of psp; paths of neither PSP get
// Klarna's, the format of most of the API surface.
func pspError(psp string, status int, code, message string) response {
	if psp == pspStripe {
		typ := "invalid_request_error"
		if status >= 500 {
			typ = "api_error"
		}
		return stripeError(status, typ, strings.ToLower(code), "", "%s", message)
	}
	if psp == pspHellgate {
		return hellgateError(status, code, "%s", message)
	}
	return klarnaError(status, code, "%s", message)
}

// badValue turns a request body error into the PSP's 400 BAD_VALUE.
func badValue(psp string, err error) response {
	var fe *fieldError
	if !errors.As(err, &fe) {
		fe = &fieldError{field: "body", reason: err.Error()}
	}
	return pspError(psp, http.StatusBadRequest, "BAD_VALUE", fe.Error())
}

// jsonResponse encodes v, which is always one of this package's own
// encodable types.
func jsonResponse(status int, v any, header ...string) response {
	body, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("pspsim: encoding %T: %v", v, err))
	}
	h := http.Header{"Content-Type": {"application/json"}}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	return response{status: status, header: h, body: body}
}

// emptyResponse is an answer without a body, such as Klarna's 201 capture
// and its 204s.
func emptyResponse(status int, header ...string) response {
	h := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	return response{status: status, header: h}
}
