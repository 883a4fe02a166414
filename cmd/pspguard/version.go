package main

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/caddyserver/caddy/v2"
)

// version is pspguard's version, stamped at build time by `make build`
// (-ldflags "-X main.version=$(git describe --tags --always --dirty)").
var version string

// pspguardVersion is the stamped version or, for a build that was not
// stamped, the one Go recorded: the module version for `go install
// ...@v1.2.0`, a pseudo-version naming the commit (with +dirty for
// uncommitted changes) for a build in a git checkout.
func pspguardVersion() string {
	bi, _ := debug.ReadBuildInfo()
	return versionOf(version, bi)
}

func versionOf(stamp string, bi *debug.BuildInfo) string {
	if stamp != "" {
		return stamp
	}
	if bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "unknown (built without version information)"
}

// printVersion writes what `pspguard version` prints: pspguard's own
// version next to Caddy's.
func printVersion(w io.Writer) {
	_, caddyVersion := caddy.Version()
	fmt.Fprintf(w, "pspguard %s\ncaddy %s\n", pspguardVersion(), caddyVersion)
}
