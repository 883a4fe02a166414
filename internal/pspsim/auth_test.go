package pspsim

import (
	"net/http"
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
		{"Klarna user", pspKlarna, http.Header{"Authorization": {basic("PK1_a:pw")}}, identity{"user:PK1_a", "PK1_a"}},
		{"Klarna password with colon", pspKlarna, http.Header{"Authorization": {basic("PK1_a:p:w")}}, identity{"user:PK1_a", "PK1_a"}},
		{"Klarna API key", pspKlarna, http.Header{"Authorization": {basic("klarna_test_api_x")}}, identity{"key:klarna_test_api_x", KeyID("klarna_test_api_x")}},
		{"Klarna none", pspKlarna, http.Header{}, identity{}},
		{"Klarna, X-API-Key only", pspKlarna, http.Header{"X-Api-Key": {"k"}}, identity{}},
		{"Hellgate key", pspHellgate, http.Header{"X-Api-Key": {"hg_1"}}, identity{"key:hg_1", KeyID("hg_1")}},
		{"Hellgate, Basic only", pspHellgate, http.Header{"Authorization": {basic("a:b")}}, identity{}},
		{"neither PSP", "", http.Header{"Authorization": {basic("a:b")}}, identity{}},
	}
	for _, tt := range tests {
		if got := identify(tt.psp, tt.header); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
	// The same string as a username and as a key is two merchants.
	if identify(pspKlarna, http.Header{"Authorization": {basic("PK1_a:pw")}}).owner == identify(pspKlarna, http.Header{"Authorization": {basic("PK1_a")}}).owner {
		t.Error("a username and an API key share an owner")
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
