package config

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestRegistrationRateLimitAndTrustedProxies(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want []string
	}{
		{"the defaults", func(*Config) {}, nil},
		{"the limit turned off", func(c *Config) { c.DynamicRegistration.RateLimit = RateLimit{} }, nil},
		{"a negative burst", func(c *Config) { c.DynamicRegistration.RateLimit.Burst = -1 },
			[]string{"dynamicRegistration.rateLimit.burst: -1 is outside [0, 10000]"}},
		{"a refill too fast", func(c *Config) { c.DynamicRegistration.RateLimit.Every = Duration(time.Millisecond) },
			[]string{"dynamicRegistration.rateLimit.every: "}},
		{"idle removal and the per-source limit turned off", func(c *Config) {
			c.DynamicRegistration.IdleTTL, c.DynamicRegistration.MaxPerSource = 0, 0
		}, nil},
		{"an idle TTL under an hour", func(c *Config) { c.DynamicRegistration.IdleTTL = Duration(time.Minute) },
			[]string{"dynamicRegistration.idleTTL: 1m is outside [1h, 87600h]"}},
		{"a negative idle TTL", func(c *Config) { c.DynamicRegistration.IdleTTL = Duration(-time.Hour) },
			[]string{"dynamicRegistration.idleTTL: "}},
		{"a negative per-source limit", func(c *Config) { c.DynamicRegistration.MaxPerSource = -1 },
			[]string{"dynamicRegistration.maxPerSource: -1 is outside [0, 100000]"}},
		{"addresses and networks", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "192.0.2.7", "fd00::/8"} }, nil},
		{"a proxy that is not an address", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "ingress.local"} },
			[]string{`trustedProxies[1]: "ingress.local" is not an IP address or CIDR network`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mod(c)
			assertProblems(t, c.Validate(), tt.want...)
		})
	}
}

func TestTrustedProxyPrefixes(t *testing.T) {
	c := validConfig()
	c.TrustedProxies = []string{"10.1.2.3/8", "192.0.2.7", "::1"}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("::1/128")}
	if got := c.TrustedProxyPrefixes(); !slices.Equal(got, want) {
		t.Errorf("TrustedProxyPrefixes() = %v, want %v", got, want)
	}
}
