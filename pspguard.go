// Package pspguard adds the psp_guard HTTP handler to a Caddy build:
//
//	xcaddy build --with github.com/pspguard/pspguard
//
// It holds no code of its own; importing it registers the handler, the
// Caddyfile directive and the `rules` command, as importing
// github.com/pspguard/pspguard/caddymodule does.
package pspguard

import _ "github.com/pspguard/pspguard/caddymodule"
