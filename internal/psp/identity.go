package psp

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"unicode/utf8"
)

// basicIdentity reads Klarna's HTTP Basic credentials. User is the user
// name and Merchant the merchant id it starts with: the part before its
// first '_' (Klarna's user names are the merchant id, '_' and a random
// suffix: PK12345_1a2b3c4d), or the whole name when it has no '_'. One
// merchant holds several credentials at once (a web shop creates orders,
// an ERP captures them), and its orders belong to the merchant whichever
// credential touches them. A raw API key (a credential without a colon, or
// a user name that starts with "klarna_") is a secret that names no
// merchant id, so Merchant is "key:" and the first 16 hex digits of its
// SHA-256 instead, and User is empty.
//
// Anything but exactly one well-formed Basic header is refused: a lenient
// PSP might accept a spelling (a second header, another scheme, sloppy
// base64) that the gateway would attribute to another merchant or none.
func basicIdentity(h http.Header) (Identity, error) {
	auth, ok, err := authorization(h)
	if !ok {
		return Identity{}, err
	}
	scheme, token, _ := strings.Cut(auth, " ")
	if !strings.EqualFold(scheme, "Basic") {
		return Identity{}, BadValue("Authorization", "the Authorization header must carry HTTP Basic credentials")
	}
	token = strings.TrimLeft(token, " ")
	// Typical credentials are decoded on the stack: the merchant name is the
	// only part of them that reaches the heap, and the secret never does.
	var in [344]byte
	var out [256]byte
	src, raw := append(in[:0], token...), out[:]
	if n := base64.StdEncoding.DecodedLen(len(src)); n > len(raw) {
		raw = make([]byte, n)
	}
	n, err := base64.StdEncoding.Strict().Decode(raw, src)
	raw = raw[:n]
	if err != nil || len(raw) == 0 {
		return Identity{}, BadValue("Authorization", "the Authorization header's Basic credentials are not valid base64")
	}
	if !printableBytes(raw) {
		return Identity{}, BadValue("Authorization", "the Authorization header's Basic credentials must be UTF-8 text without control characters")
	}
	user, _, hasColon := bytes.Cut(raw, []byte{':'})
	id := Identity{CredentialDigest: sha256.Sum256(raw)}
	switch {
	case !hasColon:
		id.Merchant = keyMerchant(raw)
	case bytes.HasPrefix(user, []byte("klarna_")):
		id.Merchant = keyMerchant(user)
	case len(user) == 0:
		return Identity{}, BadValue("Authorization", "the Authorization header's Basic credentials have an empty user name")
	default:
		id.User = string(user)
		id.Merchant = merchantID(id.User)
	}
	return id, nil
}

// merchantID is the merchant id a Klarna user name starts with: the part
// before its first '_', or the whole name if that part is empty.
func merchantID(user string) string {
	if i := strings.IndexByte(user, '_'); i > 0 {
		return user[:i]
	}
	return user
}

// apiKeyIdentity reads an API key header (Hellgate's X-API-Key).
func apiKeyIdentity(h http.Header, header string) (Identity, error) {
	if alias, ok := headerAlias(h, header); ok {
		return Identity{}, aliasError(header, alias)
	}
	vals := h.Values(header)
	switch len(vals) {
	case 0:
		return Identity{}, nil
	case 1:
	default:
		return Identity{}, BadValue(header, "the %s header must be sent once", header)
	}
	key := vals[0]
	if key == "" {
		return Identity{}, BadValue(header, "the %s header is empty", header)
	}
	if !visibleASCII(key) {
		return Identity{}, BadValue(header, "the %s header must be printable ASCII", header)
	}
	return Identity{Merchant: keyMerchant(key), CredentialDigest: sha256.Sum256([]byte(key))}, nil
}

// keyMerchant names a merchant known only by a secret key without revealing
// the key: "key:" and the first 16 hex digits of its SHA-256.
func keyMerchant[T string | []byte](key T) string {
	sum := sha256.Sum256([]byte(key))
	return "key:" + hex.EncodeToString(sum[:8])
}

// printableBytes reports whether b is valid UTF-8 without control
// characters.
func printableBytes(b []byte) bool {
	for _, r := range string(b) { // no copy: a range over a conversion does not allocate
		if r == utf8.RuneError || r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}

// visibleASCII reports whether s is printable ASCII (spaces allowed).
func visibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' {
			return false
		}
	}
	return true
}

// authorization is the request's one Authorization header and whether it
// has one; more than one is refused.
func authorization(h http.Header) (string, bool, error) {
	vals := h.Values("Authorization")
	switch len(vals) {
	case 0:
		return "", false, nil
	case 1:
		return vals[0], true, nil
	}
	return "", false, BadValue("Authorization", "the Authorization header must be sent once")
}
