package benchrun

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPreflightNamesWhatIsMissing(t *testing.T) {
	root := t.TempDir()
	none := func(string) (string, error) { return "", errors.New("not found") }
	err := Preflight(Config{Root: root}, none)
	if err == nil {
		t.Fatal("preflight passed with nothing installed or built")
	}
	for _, want := range []string{
		"wrk is not installed (on Debian or Ubuntu: apt-get install wrk)",
		"redis-server is not installed (on Debian or Ubuntu: apt-get install redis-server)",
		filepath.Join(root, "bin", "pspguard") + " is missing (make bench builds bin/ first)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}

	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"pspguard", "pspsim"} {
		if err := os.WriteFile(filepath.Join(root, "bin", b), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	all := func(name string) (string, error) { return "/usr/bin/" + name, nil }
	if err := Preflight(Config{Root: root}, all); err != nil {
		t.Errorf("preflight with everything there: %v", err)
	}
	if err := Preflight(Config{Root: root, Compare: filepath.Join(root, "old")}, all); err == nil ||
		!strings.Contains(err.Error(), "old is missing") {
		t.Errorf("preflight with a missing BENCH_COMPARE binary: %v", err)
	}
}
