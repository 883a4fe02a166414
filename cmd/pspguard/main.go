// Command pspguard is Caddy with the psp_guard handler compiled in: a
// compliance gateway for payment service provider traffic. It runs like
// `caddy` (`pspguard run --config Caddyfile`) and adds `pspguard rules`
// for compliance teams.
package main

import (
	"fmt"
	"os"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// Caddy's standard modules and ours.
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/pspguard/pspguard/caddymodule"
)

func main() {
	// Caddy registers its own version command, which names only Caddy,
	// and its command set cannot be changed once registered.
	if len(os.Args) > 1 && os.Args[1] == "version" {
		if len(os.Args) > 2 {
			fmt.Fprintln(os.Stderr, "usage: pspguard version (it takes no arguments)")
			os.Exit(1)
		}
		printVersion(os.Stdout)
		return
	}
	caddycmd.Main()
}
