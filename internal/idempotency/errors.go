package idempotency

import "fmt"

// errClosed is returned by every call on a closed store.
var errClosed = fmt.Errorf("%w: store closed", ErrUnavailable)
