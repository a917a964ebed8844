package app

import (
	"time"

	"github.com/mcpauth/mcpauth/authserver"
	"github.com/mcpauth/mcpauth/authserver/config"
)

// registrationRateLimit maps the file's rate limit to the server's: in the file a
// burst of 0 turns the limit off, in Options a negative one does (0 means default).
func registrationRateLimit(rl config.RateLimit) authserver.RateLimit {
	if rl.Burst == 0 {
		return authserver.RateLimit{Burst: -1}
	}
	return authserver.RateLimit{Burst: rl.Burst, Every: rl.Every.Duration()}
}

// offIfZero maps a file value where 0 turns a limit off to Options, where a negative
// value does (0 means default).
func offIfZero[T int | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}
