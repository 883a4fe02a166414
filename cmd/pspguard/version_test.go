package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionOf(t *testing.T) {
	built := func(v string) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Path: "github.com/pspguard/pspguard", Version: v}}
	}
	for _, tc := range []struct {
		name, stamp string
		bi          *debug.BuildInfo
		want        string
	}{
		{"stamped", "v1.4.0-3-g1fcc413-dirty", built("v1.3.0"), "v1.4.0-3-g1fcc413-dirty"},
		{"go install at a release", "", built("v1.4.0"), "v1.4.0"},
		{"go build in a git checkout", "", built("v0.0.0-20261204183000-1fcc4130be39+dirty"), "v0.0.0-20261204183000-1fcc4130be39+dirty"},
		{"go build without VCS information", "", built("(devel)"), "unknown (built without version information)"},
		{"no build information", "", nil, "unknown (built without version information)"},
	} {
		if got := versionOf(tc.stamp, tc.bi); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestVersionCommand builds pspguard as `make build` does, stamped with
// git describe, and as a plain `go build` does, and runs `pspguard
// version` on each.
func TestVersionCommand(t *testing.T) {
	caddyLine := "caddy " + caddyRequired(t) + " "
	t.Run("make build", func(t *testing.T) {
		describe, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output()
		if err != nil {
			t.Skipf("not a git checkout: %v", err)
		}
		dir := t.TempDir()
		cmd := exec.Command("make", "-s", "build", "BIN="+dir)
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make build: %v\n%s", err, out)
		}
		checkVersion(t, filepath.Join(dir, "pspguard"), "pspguard "+strings.TrimSpace(string(describe)), caddyLine)
	})
	t.Run("go build", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "pspguard")
		// -buildvcs=auto: Go records the commit when it can find the
		// checkout, whatever GOFLAGS says.
		if out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, ".").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		// What Go recorded as the module's version, as `go version -m`
		// reads it from the binary.
		out, err := exec.Command("go", "version", "-m", bin).Output()
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^\tmod\tgithub\.com/pspguard/pspguard\t(\S+)`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("go version -m names no main module:\n%s", out)
		}
		want := "pspguard " + string(m[1])
		if string(m[1]) == "(devel)" {
			want = "pspguard unknown (built without version information)"
		}
		checkVersion(t, bin, want, caddyLine)
	})
}

// checkVersion runs `pspguard version` and compares its two lines.
func checkVersion(t *testing.T, bin, wantPspguard, caddyPrefix string) {
	t.Helper()
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("pspguard version: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != 2 || lines[0] != wantPspguard || !strings.HasPrefix(lines[1], caddyPrefix) {
		t.Fatalf("pspguard version printed:\n%s\nwant %q, then a line starting %q", out, wantPspguard, caddyPrefix)
	}
}

// caddyRequired is the Caddy version go.mod requires.
func caddyRequired(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/caddyserver/caddy/v2 (\S+)$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("go.mod does not require Caddy")
	}
	return string(m[1])
}
