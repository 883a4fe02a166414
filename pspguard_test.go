package pspguard_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// These tests build a Caddy the way `xcaddy build --with
// github.com/pspguard/pspguard` does, from this working tree, and check
// that the result has the psp_guard handler and the rules command.

const modulePath = "github.com/pspguard/pspguard"

// TestCaddyBuildWithPlugin builds what xcaddy builds: a main package that
// imports Caddy's command, its standard modules and this module's root
// package, in a module that requires Caddy at the version pspguard uses
// and replaces pspguard with this working tree. The build uses the module
// cache; it needs the network only for modules the cache lacks.
func TestCaddyBuildWithPlugin(t *testing.T) {
	repo := repoRoot(t)
	dir := t.TempDir()
	gomod := "module caddy\n\ngo " + goVersion(t, repo) + "\n\n" +
		"require (\n" +
		"\tgithub.com/caddyserver/caddy/v2 " + caddyVersion(t, repo) + "\n" +
		"\t" + modulePath + " v0.0.0-00010101000000-000000000000\n" +
		")\n\nreplace " + modulePath + " => " + repo + "\n"
	writeFile(t, filepath.Join(dir, "go.mod"), gomod)
	// pspguard's go.sum holds the sums of every module this build needs:
	// cmd/pspguard imports the same packages.
	writeFile(t, filepath.Join(dir, "go.sum"), string(readFile(t, filepath.Join(repo, "go.sum"))))
	writeFile(t, filepath.Join(dir, "main.go"), `package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// plug in Caddy modules here
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/pspguard/pspguard"
)

func main() {
	caddycmd.Main()
}
`)
	bin := filepath.Join(dir, "caddy")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS="+os.Getenv("GOFLAGS")+" -mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		skipIfOffline(t, out)
		t.Fatalf("go build: %v\n%s", err, out)
	}
	checkCaddy(t, bin, repo)
}

// TestXcaddyBuild runs xcaddy itself, as the README tells users to, with
// pspguard replaced by this working tree. CI installs xcaddy (.ci/run);
// elsewhere the test skips without it. It resolves modules from the module
// cache only (GOPROXY=off; .ci/run fills the cache with go mod download,
// and its modules were verified when they were downloaded, so the checksum
// database is not asked again), and keeps
// Go's default compile flags, so the packages compiled for the other tests
// are reused rather than compiled again with -trimpath.
func TestXcaddyBuild(t *testing.T) {
	xcaddy, err := exec.LookPath("xcaddy")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("xcaddy is not installed: CI must build pspguard the way users do (.ci/run installs it)")
		}
		t.Skip("xcaddy is not installed (go install github.com/caddyserver/xcaddy/cmd/xcaddy@latest)")
	}
	repo := repoRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "caddy")
	cmd := exec.Command(xcaddy, "build", caddyVersion(t, repo), "--output", bin, "--with", modulePath+"="+repo)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOPROXY=off", "GOSUMDB=off",
		"GOFLAGS="+os.Getenv("GOFLAGS")+" -mod=mod", "XCADDY_GO_BUILD_FLAGS=-ldflags '-w -s'")
	if out, err := cmd.CombinedOutput(); err != nil {
		skipIfOffline(t, out)
		t.Fatalf("xcaddy build: %v\n%s", err, out)
	}
	checkCaddy(t, bin, repo)
}

// checkCaddy asserts that a Caddy binary lists the psp_guard handler and
// runs pspguard's rules command.
func checkCaddy(t *testing.T, bin, repo string) {
	t.Helper()
	out, err := exec.Command(bin, "list-modules").CombinedOutput()
	if err != nil {
		t.Fatalf("list-modules: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^http\.handlers\.psp_guard$`).Match(out) {
		t.Fatalf("list-modules does not list http.handlers.psp_guard:\n%s", out)
	}
	rulesFile := filepath.Join(repo, "testdata", "rules", "example.yaml")
	out, err = exec.Command(bin, "rules", "validate", rulesFile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": ok (version 1") {
		t.Fatalf("rules validate: %v\n%s", err, out)
	}
}

// offline is what the go command says when it needs a module that is not in
// the module cache and cannot fetch it.
var offline = regexp.MustCompile(`dial tcp|no such host|network is unreachable|GOPROXY=off|i/o timeout|Could not resolve host`)

// skipIfOffline skips when the build failed only for want of the network;
// CI has the network, so there the failure stands.
func skipIfOffline(t *testing.T, out []byte) {
	t.Helper()
	if os.Getenv("CI") == "" && offline.Match(out) {
		t.Skipf("the module cache lacks modules this build needs and the network is not reachable:\n%s", out)
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// caddyVersion is the Caddy version pspguard's go.mod requires.
func caddyVersion(t *testing.T, repo string) string {
	t.Helper()
	return goModField(t, repo, `(?m)^\s*github\.com/caddyserver/caddy/v2 (\S+)$`)
}

// goVersion is the go directive of pspguard's go.mod.
func goVersion(t *testing.T, repo string) string {
	t.Helper()
	return goModField(t, repo, `(?m)^go (\S+)$`)
}

func goModField(t *testing.T, repo, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindSubmatch(readFile(t, filepath.Join(repo, "go.mod")))
	if m == nil {
		t.Fatalf("go.mod has no match for %s", re)
	}
	return string(m[1])
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
