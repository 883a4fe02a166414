package psp

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"testing"
)

func basic(cred string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(cred)) }

func keyName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "key:" + hex.EncodeToString(sum[:])[:16]
}

func TestKlarnaIdentity(t *testing.T) {
	tests := []struct {
		name     string
		auth     []string
		merchant string
		user     string
		cred     string // the credential digested
	}{
		{"user and password", []string{basic("PK12345_1a2b3c4d:s3cr3t")}, "PK12345", "PK12345_1a2b3c4d", "PK12345_1a2b3c4d:s3cr3t"},
		{"another credential of the merchant", []string{basic("PK12345_erp:s3cr3t")}, "PK12345", "PK12345_erp", "PK12345_erp:s3cr3t"},
		{"merchant id before the first underscore", []string{basic("PK1_web_2:pw")}, "PK1", "PK1_web_2", "PK1_web_2:pw"},
		{"user name without an underscore", []string{basic("shoeshop:pw")}, "shoeshop", "shoeshop", "shoeshop:pw"},
		{"user name starting with an underscore", []string{basic("_shop:pw")}, "_shop", "_shop", "_shop:pw"},
		{"user name ending with an underscore", []string{basic("PK1_:pw")}, "PK1", "PK1_", "PK1_:pw"},
		{"scheme in lower case", []string{"basic " + base64.StdEncoding.EncodeToString([]byte("shoeshop:pw"))}, "shoeshop", "shoeshop", "shoeshop:pw"},
		{"scheme in upper case", []string{"BASIC " + base64.StdEncoding.EncodeToString([]byte("shoeshop:pw"))}, "shoeshop", "shoeshop", "shoeshop:pw"},
		{"two spaces", []string{"Basic  " + base64.StdEncoding.EncodeToString([]byte("shoeshop:pw"))}, "shoeshop", "shoeshop", "shoeshop:pw"},
		{"password with a colon", []string{basic("shoeshop:p:w")}, "shoeshop", "shoeshop", "shoeshop:p:w"},
		{"empty password", []string{basic("shoeshop:")}, "shoeshop", "shoeshop", "shoeshop:"},
		{"raw API key", []string{basic("klarna_test_api_Zk9kSDdw")}, keyName("klarna_test_api_Zk9kSDdw"), "", "klarna_test_api_Zk9kSDdw"},
		{"API key as user name", []string{basic("klarna_live_api_Zk9kSDdw:")}, keyName("klarna_live_api_Zk9kSDdw"), "", "klarna_live_api_Zk9kSDdw:"},
		{"credential without a colon", []string{basic("opaque-secret")}, keyName("opaque-secret"), "", "opaque-secret"},
		{"credential without a colon, with an underscore", []string{basic("PK1_secret")}, keyName("PK1_secret"), "", "PK1_secret"},
		{"no header", nil, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.auth {
				h.Add("Authorization", v)
			}
			id, err := Klarna().Identity(h)
			if err != nil {
				t.Fatal(err)
			}
			var want [32]byte
			if tt.cred != "" {
				want = sha256.Sum256([]byte(tt.cred))
			}
			if id.Merchant != tt.merchant || id.User != tt.user || id.CredentialDigest != want {
				t.Errorf("Identity = %q %q %x, want %q %q %x", id.Merchant, id.User, id.CredentialDigest, tt.merchant, tt.user, want)
			}
		})
	}
}

func TestKlarnaIdentityDiffersByPassword(t *testing.T) {
	a, _ := Klarna().Identity(http.Header{"Authorization": {basic("shop:one")}})
	b, _ := Klarna().Identity(http.Header{"Authorization": {basic("shop:two")}})
	if a.Merchant != b.Merchant || a.CredentialDigest == b.CredentialDigest {
		t.Errorf("same merchant expected with different credential digests: %+v %+v", a, b)
	}
}

func TestKlarnaIdentityRefuses(t *testing.T) {
	tests := []struct {
		name string
		auth []string
		msg  string
	}{
		{"two headers", []string{basic("a:b"), basic("c:d")}, "must be sent once"},
		{"two identical headers", []string{basic("a:b"), basic("a:b")}, "must be sent once"},
		{"empty", []string{""}, "must carry HTTP Basic credentials"},
		{"scheme only", []string{"Basic"}, "not valid base64"},
		{"scheme and space", []string{"Basic "}, "not valid base64"},
		{"bearer", []string{"Bearer abc"}, "must carry HTTP Basic credentials"},
		{"digest", []string{`Digest username="a"`}, "must carry HTTP Basic credentials"},
		{"bad base64", []string{"Basic !!!"}, "not valid base64"},
		{"missing padding", []string{"Basic " + base64.RawStdEncoding.EncodeToString([]byte("shop:pw1"))}, "not valid base64"},
		{"URL alphabet", []string{"Basic " + base64.URLEncoding.EncodeToString([]byte("shop:pw>>>?"))}, "not valid base64"},
		{"non-zero padding bits", []string{"Basic YR=="}, "not valid base64"},
		{"two credentials", []string{basic("a:b") + ", " + basic("c:d")}, "not valid base64"},
		{"invalid UTF-8", []string{basic("sh\xffop:pw")}, "UTF-8 text without control characters"},
		{"control character", []string{basic("shop\x00:pw")}, "UTF-8 text without control characters"},
		{"newline", []string{basic("shop\n:pw")}, "UTF-8 text without control characters"},
		{"empty user name", []string{basic(":klarna_test_api_x")}, "empty user name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Klarna().Identity(http.Header{"Authorization": tt.auth})
			assertBadValue(t, err, "Authorization", tt.msg)
		})
	}
}

// Only a merchant named by a user name can be named without its secret.
func TestNamedBySecret(t *testing.T) {
	for cred, want := range map[string]bool{
		"shoeshop:pw":               false,
		"key:pw":                    false, // a user name, however spelled
		"klarna_test_api_Zk9kSDdw":  true,
		"klarna_live_api_Zk9kSDdw:": true,
		"opaque-secret":             true,
	} {
		id, err := Klarna().Identity(http.Header{"Authorization": {basic(cred)}})
		if err != nil || id.NamedBySecret() != want {
			t.Errorf("%q: NamedBySecret = %v (%v), want %v", cred, id.NamedBySecret(), err, want)
		}
	}
	if id, _ := Hellgate().Identity(http.Header{"X-Api-Key": {"hg_1"}}); !id.NamedBySecret() {
		t.Error("a Hellgate API key: NamedBySecret = false")
	}
}

func TestHellgateIdentity(t *testing.T) {
	id, err := Hellgate().Identity(http.Header{"X-Api-Key": {"hg_sandbox_0123456789"}})
	if err != nil || id.Merchant != keyName("hg_sandbox_0123456789") || id.CredentialDigest != sha256.Sum256([]byte("hg_sandbox_0123456789")) {
		t.Errorf("Identity = %+v, %v", id, err)
	}
	h := http.Header{}
	h.Set("x-api-key", "k")
	if id, _ := Hellgate().Identity(h); id.Merchant != keyName("k") {
		t.Errorf("lower-case header name not read: %+v", id)
	}
	if id, err := Hellgate().Identity(http.Header{}); err != nil || id != (Identity{}) {
		t.Errorf("no key: %+v, %v", id, err)
	}
	for _, tt := range []struct {
		vals []string
		msg  string
	}{
		{[]string{"a", "b"}, "must be sent once"},
		{[]string{""}, "is empty"},
		{[]string{"k\x01ey"}, "printable ASCII"},
		{[]string{"kéy"}, "printable ASCII"},
	} {
		_, err := Hellgate().Identity(http.Header{"X-Api-Key": tt.vals})
		assertBadValue(t, err, "X-API-Key", tt.msg)
	}
	// A CGI-style PSP reads X_API_Key as X-API-Key.
	for _, h := range []http.Header{
		{"X_api_key": {"k"}},
		{"X-Api-Key": {"k"}, "X.api.key": {"other"}},
	} {
		_, err := Hellgate().Identity(h)
		assertBadValue(t, err, "X-API-Key", "must be spelled X-API-Key")
	}
}
