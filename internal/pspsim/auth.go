package pspsim

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
)

// identity is the merchant behind a request's credentials.
type identity struct {
	owner string // owns orders and idempotency keys; "" when the credentials are missing or invalid
	name  string // safe to show in Stats and recorded requests
}

// identify derives the merchant from the PSP's credential header. Klarna:
// HTTP Basic, where username:password names the merchant by the merchant
// id its username starts with, the part before the first '_' (PK12345 for
// PK12345_1a2b3c4d, so all of a merchant's credentials own its orders; any
// non-empty password is accepted, unless passwords lists the user name:
// then only that one), and a raw API key without a colon is the merchant
// itself. Hellgate: the X-API-Key value is the merchant.
// Credentials that are keys are shown only as KeyID.
func identify(psp string, h http.Header, passwords map[string]string) identity {
	switch psp {
	case pspKlarna:
		scheme, enc, ok := strings.Cut(h.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Basic") {
			return identity{}
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
		if err != nil || len(raw) == 0 {
			return identity{}
		}
		user, pass, hasColon := strings.Cut(string(raw), ":")
		if !hasColon {
			return identity{owner: "key:" + user, name: KeyID(user)}
		}
		if user == "" || pass == "" {
			return identity{}
		}
		if want, ok := passwords[user]; ok && subtle.ConstantTimeCompare([]byte(pass), []byte(want)) != 1 {
			return identity{}
		}
		merchant := user
		if i := strings.IndexByte(user, '_'); i > 0 {
			merchant = user[:i]
		}
		return identity{owner: "merchant:" + merchant, name: user}
	case pspHellgate:
		if key := h.Get("X-API-Key"); key != "" {
			return identity{owner: "key:" + key, name: KeyID(key)}
		}
	case pspStripe:
		return stripeIdentity(h)
	}
	return identity{}
}

// KeyID is how an API key credential (a Klarna raw API key, a Hellgate
// X-API-Key) appears as the merchant in Stats and recorded requests: "key-"
// and the first 12 hex digits of its SHA-256, so that the key itself is
// never exposed.
func KeyID(apiKey string) string {
	sum := sha256.Sum256([]byte(apiKey))
	return "key-" + hex.EncodeToString(sum[:6])
}

func unauthorized(psp string) response {
	if psp == pspStripe {
		return stripeError(http.StatusUnauthorized, "invalid_request_error", "", "", "Invalid API Key provided")
	}
	if psp == pspHellgate {
		return hellgateError(http.StatusUnauthorized, "UNAUTHORIZED", "Missing or invalid X-API-Key")
	}
	return klarnaError(http.StatusUnauthorized, "UNAUTHORIZED", "Missing or invalid credentials")
}

func idempotencyHeader(psp string) string {
	if psp == pspStripe {
		return "Idempotency-Key"
	}
	if psp == pspHellgate {
		return "X-Idempotency-Key"
	}
	return "Klarna-Idempotency-Key"
}
