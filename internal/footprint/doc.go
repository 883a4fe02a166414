// Package footprint holds no code, only the benchmark that measures what a
// full single-process gateway keeps in memory: a million ledger orders and
// a million cached idempotency results, the defaults of both stores. The
// two stores live in their own packages; this one puts them side by side,
// the way a gateway holds them.
package footprint
