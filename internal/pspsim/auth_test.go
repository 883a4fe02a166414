package pspsim

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestIdentify(t *testing.T) {
	tests := []struct {
		name   string
		psp    string
		header http.Header
		want   identity
	}{
		{"Klarna user", pspKlarna, http.Header{"Authorization": {basic("PK1_a:pw")}}, identity{"merchant:PK1", "PK1_a"}},
		{"Klarna user of the same merchant", pspKlarna, http.Header{"Authorization": {basic("PK1_b:pw")}}, identity{"merchant:PK1", "PK1_b"}},
		{"Klarna user without underscore", pspKlarna, http.Header{"Authorization": {basic("shop:pw")}}, identity{"merchant:shop", "shop"}},
		{"Klarna password with colon", pspKlarna, http.Header{"Authorization": {basic("PK1_a:p:w")}}, identity{"merchant:PK1", "PK1_a"}},
		{"Klarna API key", pspKlarna, http.Header{"Authorization": {basic("klarna_test_api_x")}}, identity{"key:klarna_test_api_x", KeyID("klarna_test_api_x")}},
		{"Klarna none", pspKlarna, http.Header{}, identity{}},
		{"Klarna, X-API-Key only", pspKlarna, http.Header{"X-Api-Key": {"k"}}, identity{}},
		{"Hellgate key", pspHellgate, http.Header{"X-Api-Key": {"hg_1"}}, identity{"key:hg_1", KeyID("hg_1")}},
		{"Hellgate, Basic only", pspHellgate, http.Header{"Authorization": {basic("a:b")}}, identity{}},
		{"neither PSP", "", http.Header{"Authorization": {basic("a:b")}}, identity{}},
	}
	for _, tt := range tests {
		if got := identify(tt.psp, tt.header, nil); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
	// The same string as a username and as a key is two merchants.
	if identify(pspKlarna, http.Header{"Authorization": {basic("PK1_a:pw")}}, nil).owner == identify(pspKlarna, http.Header{"Authorization": {basic("PK1_a")}}, nil).owner {
		t.Error("a username and an API key share an owner")
	}
}

// A user name with a known password is refused with any other password;
// other user names keep accepting any non-empty one.
func TestIdentifyPasswords(t *testing.T) {
	passwords := map[string]string{"PK1_a": "right"}
	for _, tt := range []struct {
		cred string
		want identity
	}{
		{"PK1_a:right", identity{"merchant:PK1", "PK1_a"}},
		{"PK1_a:wrong", identity{}},
		{"PK1_a:righ", identity{}},
		{"PK2_b:anything", identity{"merchant:PK2", "PK2_b"}},
		{"PK1_b:anything", identity{"merchant:PK1", "PK1_b"}},
	} {
		if got := identify(pspKlarna, http.Header{"Authorization": {basic(tt.cred)}}, passwords); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.cred, got, tt.want)
		}
	}
	s := New(Options{Seed: 1, Passwords: passwords})
	for cred, want := range map[string]int{"PK1_a:wrong": http.StatusUnauthorized, "PK1_a:right": http.StatusNotFound} {
		r := httptest.NewRequest(http.MethodGet, "/ordermanagement/v1/orders/5f1e7c7a-0000-4000-8000-000000000001", nil)
		r.Header.Set("Authorization", basic(cred))
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("order read as %s: %d, want %d", cred, w.Code, want)
		}
	}
}

func TestKeyID(t *testing.T) {
	id := KeyID("klarna_test_api_secret")
	if !strings.HasPrefix(id, "key-") || len(id) != 16 || strings.Contains(id, "secret") {
		t.Errorf("KeyID %q", id)
	}
	if KeyID("a") == KeyID("b") || KeyID("a") != KeyID("a") {
		t.Error("KeyID does not tell keys apart")
	}
}
