package pspsim

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"reflect"
	"sort"
	"testing"
)

func TestErrorBodies(t *testing.T) {
	tests := []struct {
		name string
		resp response
		keys []string
	}{
		{"Klarna", klarnaError(403, "CAPTURE_NOT_ALLOWED", "Capture not allowed: %d", 7), []string{"correlation_id", "error_code", "error_messages"}},
		{"Hellgate", hellgateError(422, "CAPTURE_NOT_ALLOWED", "no"), []string{"code", "correlation_id", "message"}},
		{"neither PSP", pspError("", 404, "NOT_FOUND", "No such resource"), []string{"correlation_id", "error_code", "error_messages"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			tt.resp.write(w)
			if w.Header().Get("Content-Type") != "application/json" || w.Header().Get("Content-Length") == "" {
				t.Errorf("headers %v", w.Header())
			}
			var m map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
				t.Fatal(err)
			}
			var keys []string
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if !reflect.DeepEqual(keys, tt.keys) {
				t.Errorf("members %v, want %v", keys, tt.keys)
			}
		})
	}
	var a, b klarnaErrorBody
	json.Unmarshal(klarnaError(400, "BAD_VALUE", "x").body, &a)
	json.Unmarshal(klarnaError(400, "BAD_VALUE", "x").body, &b)
	if a.CorrelationID == b.CorrelationID {
		t.Error("correlation ids repeat")
	}
	if a.ErrorMessages[0] != "x" || a.ErrorCode != "BAD_VALUE" {
		t.Errorf("body %+v", a)
	}
}

func TestBadValue(t *testing.T) {
	var body klarnaErrorBody
	json.Unmarshal(badValue(pspKlarna, badField("order_amount", "must be an integer")).body, &body)
	if body.ErrorMessages[0] != "Bad value: order_amount: must be an integer" {
		t.Errorf("message %q", body.ErrorMessages[0])
	}
	var hg hellgateErrorBody
	json.Unmarshal(badValue(pspHellgate, errors.New("unreadable")).body, &hg)
	if hg.Code != "BAD_VALUE" || hg.Message != "Bad value: body: unreadable" {
		t.Errorf("body %+v", hg)
	}
}

func TestEmptyResponseHasNoBodyOrType(t *testing.T) {
	w := httptest.NewRecorder()
	emptyResponse(204).write(w)
	if w.Code != 204 || w.Body.Len() != 0 || w.Header().Get("Content-Type") != "" || w.Header().Get("Content-Length") != "" {
		t.Errorf("204: %d %v %q", w.Code, w.Header(), w.Body.String())
	}
	w = httptest.NewRecorder()
	emptyResponse(201, "Capture-Id", "c").write(w)
	if w.Code != 201 || w.Header().Get("Content-Length") != "0" || w.Header().Get("Capture-Id") != "c" {
		t.Errorf("201: %d %v", w.Code, w.Header())
	}
}
