package idempotency

import "time"

// Defaults of Config.
const (
	DefaultCapacity    = 100000
	DefaultTTL         = 24 * time.Hour
	DefaultInFlightTTL = 5 * time.Minute
)

// withDefaults fills the zero (or negative) fields of c.
func (c Config) withDefaults() Config {
	if c.Capacity <= 0 {
		c.Capacity = DefaultCapacity
	}
	if c.TTL <= 0 {
		c.TTL = DefaultTTL
	}
	if c.InFlightTTL <= 0 {
		c.InFlightTTL = DefaultInFlightTTL
	}
	return c
}
