package caddymodule

import (
	"context"
	"errors"
	"maps"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// ServeHTTP hands the request to the guard (internal/guard), with
// reverse_proxy, the next handler, as the way to the PSP.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return h.guard.ServeHTTP(w, r, next)
}

// upstreamStatus is the status of reverse_proxy's error: 502 when it could
// not reach the PSP, 504 when the PSP did not answer in time; 0 for an
// error of any other kind.
func upstreamStatus(err error) int {
	var he caddyhttp.HandlerError
	if errors.As(err, &he) {
		return he.StatusCode
	}
	return 0
}

// readContext gives the guard's own order read its own copy of Caddy's
// request variables: a connection net/http dials for it may still be
// reading them after the read is done, while reverse_proxy writes them for
// the capture.
func readContext(ctx context.Context) context.Context {
	if vars, ok := ctx.Value(caddyhttp.VarsCtxKey).(map[string]any); ok {
		return context.WithValue(ctx, caddyhttp.VarsCtxKey, maps.Clone(vars))
	}
	return ctx
}
