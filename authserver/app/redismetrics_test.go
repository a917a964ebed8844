package app

import (
	"encoding/base64"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mcpauth/mcpauth/authserver/config"
	"github.com/mcpauth/mcpauth/internal/testutil/redisserver"
)

// TestTheRedisTrafficIsCounted: with the Redis store, /metrics counts the round trips
// and commands the server sends (what make bench reads per request).
func TestTheRedisTrafficIsCounted(t *testing.T) {
	srv := redisserver.Start(t)
	base := start(t, "tokens: {accessTokenFormat: opaque}\n", map[string]string{
		config.EnvSessionProvider: "redis", config.EnvSessionRedisURL: "redis://" + srv.Addr + "/0",
		config.EnvEncryptionKey: base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32))),
	})
	if code, body := get(t, base+"/readyz"); code != 200 { // PING and CONFIG GET
		t.Fatalf("/readyz: %d %s", code, body)
	}
	_, metrics := get(t, base+"/metrics")
	for _, name := range []string{"mcpauth_redis_round_trips_total", "mcpauth_redis_commands_total"} {
		m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(metrics)
		if m == nil {
			t.Fatalf("/metrics has no %s", name)
		}
		if v, _ := strconv.ParseFloat(m[1], 64); v < 2 {
			t.Errorf("%s = %s after /readyz, want at least 2", name, m[1])
		}
	}
}
