// Command pspguard is Caddy with the psp_guard handler compiled in: a
// compliance gateway for payment service provider traffic. It runs like
// `caddy` (`pspguard run --config Caddyfile`) and adds `pspguard rules`
// for compliance teams.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// Caddy's standard modules and ours.
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/pspguard/pspguard/caddymodule"
)

func main() {
	caddycmd.Main()
}
