package config

import (
	"net/url"
	"strings"
	"testing"
)

func TestDomainPatternsRefused(t *testing.T) {
	for _, s := range []string{"", "*.com", "a.*.example.com", "https://example.com", "example.com/x", "example.com:443", "*example.com", "ex ample.com", "-a.com"} {
		if _, err := ParseDomainPattern(s); err == nil {
			t.Errorf("ParseDomainPattern(%q) accepted", s)
		}
	}
}

func TestRedirectPatterns(t *testing.T) {
	cases := []struct {
		pattern string
		uri     string
		want    bool
	}{
		{"http://127.0.0.1/*", "http://127.0.0.1:33418/callback", true},
		{"http://127.0.0.1/*", "http://127.0.0.1/callback", true},
		{"http://127.0.0.1/callback", "http://127.0.0.1:5000/callback", true},
		{"http://127.0.0.1/callback", "http://127.0.0.1:5000/callback/x", false},
		{"http://localhost:*/cb", "http://localhost:9/cb", true},
		{"http://[::1]/*", "http://[::1]:8080/x", true},
		{"https://*.example.com/oauth/*", "https://app.example.com/oauth/callback", true},
		{"https://*.example.com/oauth/*", "https://example.com/oauth/callback", false},
		{"https://*.example.com/*", "https://evil.test/.example.com/", false},
		{"https://*.example.com/*", "https://evil.test?.example.com/", false},
		{"https://*.example.com/*", "https://u@app.example.com/", false},
		{"https://app.example.com/cb", "https://app.example.com/cb", true},
		{"https://app.example.com/cb", "https://app.example.com/cb?x=1", false},
		{"https://app.example.com/cb", "https://app.example.com:8443/cb", false},
		{"https://app.example.com:*/cb", "https://app.example.com:8443/cb", true},
		{"https://app.example.com/cb", "http://app.example.com/cb", false},
		{"https://app.example.com/*", "https://app.example.com", true},
		{"cursor://*", "cursor://anysphere.cursor-retrieval/oauth/callback", true},
		{"cursor://*", "vscode://x/cb", false},
		{"com.example.app:/callback", "com.example.app:/callback", true},
		{"com.example.app:/callback", "com.example.app:/callback2", false},
	}
	for _, c := range cases {
		p, err := ParseRedirectPattern(c.pattern)
		if err != nil {
			t.Fatalf("ParseRedirectPattern(%q): %v", c.pattern, err)
		}
		if got := p.Match(c.uri); got != c.want {
			t.Errorf("%q matching %q = %v, want %v", c.pattern, c.uri, got, c.want)
		}
	}
}

func TestRedirectPatternsRefused(t *testing.T) {
	for _, s := range []string{
		"", "https://example.com/cb#x", "https://example.com*", "https://*/*", "https://ex*.com/",
		"https://example.com/*/cb", "http://example.com/*", "https:/example.com", "https://u@example.com/",
		"https://example.com:x/", "https://example.com:/", "cursor://a*b", "//example.com/", "https://*.com/",
	} {
		if _, err := ParseRedirectPattern(s); err == nil {
			t.Errorf("ParseRedirectPattern(%q) accepted", s)
		}
	}
}

func TestValidateClientPolicy(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string
	}{
		{"no client policy", func(*Config) {}, nil},
		{"every rule", func(c *Config) {
			c.ScopesSupported = []string{"mcp", "tools:write"}
			c.ClientPolicy = ClientPolicy{
				MetadataDocumentDomains: []string{"*.example.com", "claude.ai"},
				RedirectURIPatterns:     []string{"http://127.0.0.1/*", "https://*.example.com/oauth/*", "cursor://*"},
				MaxScopes:               MaxScopes{PreRegistered: []string{"mcp", "tools:write"}, Dynamic: []string{"mcp"}, MetadataDocument: []string{"mcp"}},
				RequireApproval:         true,
			}
		}, nil},
		{"bad domain and redirect patterns", func(c *Config) {
			c.ClientPolicy.MetadataDocumentDomains = []string{"*.com", "https://example.com"}
			c.ClientPolicy.RedirectURIPatterns = []string{"http://example.com/*", "https://example.com/*/cb"}
		}, []string{
			`clientPolicy.metadataDocumentDomains[0]: domain pattern "*.com": a wildcard needs at least two labels after it`,
			`clientPolicy.metadataDocumentDomains[1]: domain pattern "https://example.com" is not a host name`,
			`clientPolicy.redirectURIPatterns[0]: redirect URI pattern "http://example.com/*": http is allowed only on a loopback host`,
			`clientPolicy.redirectURIPatterns[1]: redirect URI pattern "https://example.com/*/cb": '*' may only end the pattern`,
		}},
		{"max scopes outside scopesSupported, and a duplicate", func(c *Config) {
			c.ClientPolicy.MaxScopes = MaxScopes{Dynamic: []string{"admin"}, MetadataDocument: []string{"mcp", "mcp"}}
		}, []string{
			`clientPolicy.maxScopes.dynamic[0]: "admin" is not in scopesSupported`,
			`clientPolicy.maxScopes.metadataDocument[1]: duplicate scope "mcp"`,
		}},
		{"domains without metadata documents", func(c *Config) {
			c.ClientIDMetadataDocuments.Enabled = false
			c.ClientPolicy.MetadataDocumentDomains = []string{"example.com"}
		}, []string{`clientPolicy.metadataDocumentDomains: set, but clientIDMetadataDocuments.enabled is false`}},
		{"approval with nothing to approve", func(c *Config) {
			c.ClientIDMetadataDocuments.Enabled = false
			c.DynamicRegistration.Enabled = false
			c.ClientPolicy.RequireApproval = true
		}, []string{`clientPolicy.requireApproval: set, but dynamic registration and metadata documents are both off`}},
		{"too many domains", func(c *Config) {
			c.ClientPolicy.MetadataDocumentDomains = make([]string, maxPolicyEntries+1)
			for i := range c.ClientPolicy.MetadataDocumentDomains {
				c.ClientPolicy.MetadataDocumentDomains[i] = "example.com"
			}
		}, []string{`clientPolicy.metadataDocumentDomains: 101 entries; at most 100`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(c)
			assertProblems(t, c.Validate(), tt.want...)
		})
	}
}

func TestParseClientPolicyYAML(t *testing.T) {
	c, err := Parse([]byte(`issuer: https://auth.example.com
upstream: {type: github, clientID: gh, clientSecretFile: /s}
clientPolicy:
  metadataDocumentDomains: ["*.example.com"]
  redirectURIPatterns: ["http://127.0.0.1/*"]
  maxScopes: {dynamic: [mcp]}
  requireApproval: true
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := c.ClientPolicy
	if !p.RequireApproval || p.MetadataDocumentDomains[0] != "*.example.com" || p.RedirectURIPatterns[0] != "http://127.0.0.1/*" || p.MaxScopes.Dynamic[0] != "mcp" {
		t.Errorf("parsed %+v", p)
	}
}

// FuzzRedirectPattern: whatever the pattern and the URI, matching never panics, and a
// web pattern never matches a URI whose parsed scheme or host it does not allow.
func FuzzRedirectPattern(f *testing.F) {
	for _, s := range [][2]string{
		{"https://*.example.com/*", "https://evil.test/.example.com/"},
		{"https://*.example.com/*", "https://a.example.com@evil.test/"},
		{"http://127.0.0.1/*", "http://127.0.0.1.evil.test/"},
		{"https://app.example.com/cb", "https://app.example.com/cb"},
		{"cursor://*", "cursor://x/cb"},
		{"https://[::1]/*", "https://[::1]:8/x"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, uri string) {
		p, err := ParseRedirectPattern(pattern)
		if err != nil || !p.Match(uri) || !p.web {
			return
		}
		u, err := url.Parse(uri)
		if err != nil {
			t.Fatalf("%q matched %q, which does not parse", pattern, uri)
		}
		if !strings.EqualFold(u.Scheme, p.scheme) || !p.host.Match(strings.ToLower(u.Hostname())) || u.User != nil {
			t.Fatalf("%q matched %q: scheme %q host %q user %v", pattern, uri, u.Scheme, u.Hostname(), u.User)
		}
	})
}
