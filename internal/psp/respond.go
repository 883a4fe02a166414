package psp

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// writeJSON writes an error answer the gateway makes itself: a JSON body in
// the PSP's format, with the correlation id also in correlationHeader.
func writeJSON(w http.ResponseWriter, status int, correlationHeader, correlationID string, body any) {
	// The bodies are structs of strings and string slices, which always
	// encode (invalid UTF-8 becomes U+FFFD).
	b, _ := json.Marshal(body)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set(correlationHeader, correlationID)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
