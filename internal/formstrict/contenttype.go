package formstrict

import (
	"mime"
	"strings"
)

// MediaType is the media type of the bodies Parse reads.
const MediaType = "application/x-www-form-urlencoded"

// CheckContentType checks a request's Content-Type for a form body:
// application/x-www-form-urlencoded, with no parameter but an optional
// charset of utf-8. A reader honouring another charset would decode the
// percent escapes into other text than the gateway checked. It returns what
// is wrong, or "".
func CheckContentType(v string) string {
	switch v {
	case MediaType, MediaType + "; charset=utf-8", MediaType + "; charset=UTF-8":
		// The spellings clients send, accepted without a parse.
		return ""
	}
	mt, params, err := mime.ParseMediaType(v)
	if err != nil || mt != MediaType {
		return "the Content-Type must be " + MediaType
	}
	for name, value := range params {
		if name != "charset" {
			return "the Content-Type must have no parameter but charset"
		}
		if !strings.EqualFold(value, "utf-8") {
			return "the Content-Type charset must be utf-8"
		}
	}
	return ""
}
