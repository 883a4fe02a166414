package pspsim

import "testing"

func TestNewUUID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := newUUID()
		norm, ok := normalizeUUID(id)
		if !ok || norm != id || id[14] != '4' || !(id[19] == '8' || id[19] == '9' || id[19] == 'a' || id[19] == 'b') {
			t.Fatalf("%q is not a lower-case version 4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("%q repeated", id)
		}
		seen[id] = true
	}
}

func TestNormalizeUUID(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"0b2e5a8e-6a41-4c38-9d2a-2b1c7b0e8d11", "0b2e5a8e-6a41-4c38-9d2a-2b1c7b0e8d11", true},
		{"0B2E5A8E-6A41-4C38-9D2A-2B1C7B0E8D11", "0b2e5a8e-6a41-4c38-9d2a-2b1c7b0e8d11", true},
		{"a-0-0-0-b", "0000000a-0000-0000-0000-00000000000b", true},
		{"B2E5A8E-6A41-C38-9d2a-2B1C7B0E8D11", "0b2e5a8e-6a41-0c38-9d2a-2b1c7b0e8d11", true},
		{"0b2e5a8e-6a41-4c38-9d2a-02b1c7b0e8d11", "", false},
		{"0b2e5a8e-6a41-4c38-9d2a", "", false},
		{"0b2e5a8e-6a41--4c38-9d2a-2b1c7b0e8d11", "", false},
		{"0b2e5a8e6a414c389d2a2b1c7b0e8d11", "", false},
		{"{0b2e5a8e-6a41-4c38-9d2a-2b1c7b0e8d1}", "", false},
		{"0b2e5a8e-6a41-4c38-9d2a-2b1c7b0e8d1g", "", false},
		{"0b2e5a8e+6a41-4c38-9d2a-2b1c7b0e8d11", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := normalizeUUID(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("normalizeUUID(%q) = %q, %v", tt.in, got, ok)
		}
	}
}
